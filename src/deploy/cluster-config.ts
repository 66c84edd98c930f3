import path from 'node:path';
import { type Config, configSchema, envNameFor } from '../config/index.ts';
import type { Environment } from './environments.ts';

/** Where the pods keep things (the image's volumes, the ConfigMap's mount). */
export const DATA_DIR = '/data';
export const MODELS_DIR = '/models';
export const CONFIG_DIR = '/etc/bertha';
export const CONFIG_FILE = `${CONFIG_DIR}/bertha.yaml`;

/**
 * Bertha's own NATS with JetStream when bertha.yaml names a loopback one: the NATS Helm
 * chart's release `nats` in namespace `nats` (docs/deploy.md). Argo Events runs another,
 * managed by its EventBus controller.
 */
export const CLUSTER_NATS = 'nats://nats.nats.svc:4222';

/** Settings that hold credentials: never written to a ConfigMap, set from the Secret's `BERTHA_*` instead. */
const SECRET_SETTING = /(password|token|apikey|secretaccesskey|accesskeyid)$/i;
const URL_WITH_PASSWORD = /^[a-z][a-z0-9+.-]*:\/\/[^/@]*:[^/@]*@/i;

export interface ClusterConfig {
  /** The effective config the pods of one environment read from their ConfigMap. */
  config: Config;
  /** `BERTHA_*` names whose values bertha.yaml held and the ConfigMap leaves out: the Secret must set them. */
  withheld: string[];
}

function isLoopback(servers: string): boolean {
  return servers
    .split(',')
    .every((server) => /^(nats:\/\/)?(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?$/.test(server.trim()));
}

/** A model file named in bertha.yaml, looked for on the models volume under its own name. */
function onModelsVolume(file: string): string {
  return file ? `${MODELS_DIR}/${path.basename(file)}` : '';
}

/** Blanks every credential in place, recording the environment name that sets it instead. */
function withholdSecrets(node: Record<string, unknown>, at: string[], withheld: string[]): void {
  for (const [key, value] of Object.entries(node)) {
    const where = [...at, key];
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      withholdSecrets(value as Record<string, unknown>, where, withheld);
    } else if (typeof value === 'string' && value && (SECRET_SETTING.test(key) || URL_WITH_PASSWORD.test(value))) {
      node[key] = '';
      withheld.push(envNameFor(where.join('.')));
    }
  }
}

/**
 * The config one environment's pods run with: the effective bertha.yaml, moved onto the
 * engines several replicas share (PostgreSQL, NATS JetStream, MinIO/S3, Prometheus-operator,
 * Argo Events), with paths on the pods' volumes and no credential in it.
 *
 * - `database.driver: postgres`; its URL comes from the Secret (`BERTHA_DATABASE_URL`).
 * - `events.bus: nats`; a loopback `events.nats.servers` becomes {@link CLUSTER_NATS}.
 * - `objects.driver: s3` on MinIO (`pipelines.argo.minioEndpoint`, bucket `uploadsBucket`)
 *   unless bertha.yaml already names an S3 store; the bucket's name ends in `-<env>`.
 * - `events.nats.stream` and `subjectPrefix` end in the environment's name.
 * - `knowledge.vectorStore: postgres` in place of the one-process LanceDB (Milvus stays).
 * - `monitor.mode: prometheus`: the PrometheusRule replaces the embedded watcher.
 * - `sensors: []`: Argo Events' Sensors start the pipelines, so Bertha's own would start them twice.
 */
export function clusterConfig(
  config: Config,
  environment: Environment,
  namespace: string,
  image: string,
): ClusterConfig {
  const { argo } = config.pipelines;
  const store =
    config.objects.driver === 's3'
      ? config.objects.s3
      : { ...config.objects.s3, endpoint: `http://${argo.minioEndpoint}`, bucket: argo.uploadsBucket };
  // Environments may share a MinIO and a NATS: each keeps to a bucket, a stream and subjects of its own.
  const s3 = { ...store, bucket: `${store.bucket}-${environment.name}` };
  const { stream, subjectPrefix } = config.events.nats;
  const cluster: Config = {
    ...config,
    dataDir: DATA_DIR,
    server: { ...config.server, host: '0.0.0.0' },
    database: { ...config.database, driver: 'postgres', url: '' },
    log: { level: environment.logLevel },
    objects: { ...config.objects, driver: 's3', root: '', s3 },
    events: {
      bus: 'nats',
      nats: {
        servers: isLoopback(config.events.nats.servers) ? CLUSTER_NATS : config.events.nats.servers,
        stream: `${stream}_${environment.name.toUpperCase()}`,
        subjectPrefix: `${subjectPrefix}.${environment.name}`,
      },
    },
    serving: {
      ...config.serving,
      model: onModelsVolume(config.serving.model),
      adapters: config.serving.adapters.map((adapter) => ({ ...adapter, path: onModelsVolume(adapter.path) })),
    },
    monitor: {
      ...config.monitor,
      mode: 'prometheus',
      berthaUrl: '',
      kubernetes: { ...config.monitor.kubernetes, namespace },
    },
    sensors: [],
    pipelines: {
      ...config.pipelines,
      argo: { ...argo, namespace, image, uploadsBucket: s3.bucket },
    },
    knowledge: {
      ...config.knowledge,
      vectorStore: config.knowledge.vectorStore === 'lancedb' ? 'postgres' : config.knowledge.vectorStore,
      lancedbPath: '',
      postgres: { ...config.knowledge.postgres, url: '' },
    },
  };
  const withheld = [
    ...(config.database.driver === 'postgres' && config.database.url ? ['BERTHA_DATABASE_URL'] : []),
    ...(config.knowledge.postgres.url ? [envNameFor('knowledge.postgres.url')] : []),
  ];
  const plain = structuredClone(cluster) as unknown as Record<string, unknown>;
  withholdSecrets(plain, [], withheld);
  // What the pods will load must load: the schema is the one `bertha serve` reads it with.
  return { config: configSchema.parse(plain), withheld: [...new Set(withheld)].sort() };
}
