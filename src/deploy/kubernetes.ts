import YAML from 'yaml';
import type { Config } from '../config/index.ts';
import { BerthaError, ValidationError } from '../core/errors.ts';
import { renderMonitoring } from '../monitor/index.ts';
import {
  argoReferenceProblems,
  type RenderedManifest,
  renderArgoManifests,
  renderEventBus,
  strictSchemaProblems,
} from '../pipelines/argo/index.ts';
import { argoCdApplication, type GitSource } from './argocd.ts';
import { clusterConfig } from './cluster-config.ts';
import { ENVIRONMENTS, type Environment, namespaceOf } from './environments.ts';
import { unpinnedImageProblem } from './image.ts';
import type { KubernetesObject } from './kubernetes-object.ts';
import {
  CONFIG_MAP,
  CONTAINER_SECURITY_CONTEXT,
  environmentWorkloads,
  POD_SECURITY_CONTEXT,
  podEnv,
  podVolumeMounts,
  podVolumes,
  sharedWorkloads,
} from './workloads.ts';

type PipelineDefinitions = Parameters<typeof renderArgoManifests>[0];

export interface KubernetesRenderInput {
  /** The effective config (`bertha.yaml`, environment, flags). */
  config: Config;
  definitions: PipelineDefinitions;
  /** The image every pod runs, with a pinned tag or digest. */
  image: string;
  git: GitSource;
}

export interface RenderedFile {
  /** Relative to the output folder. */
  path: string;
  content: string;
}

export interface KubernetesRender {
  files: RenderedFile[];
  /** What the operator has to provide or know (printed on stderr by the CLI). */
  notes: string[];
}

const HEADER = '# Rendered by `bertha deploy render --target k8s` (docs/deploy.md): render again rather than edit.\n';

function yaml(value: unknown): string {
  return YAML.stringify(value, { lineWidth: 0, aliasDuplicateObjects: false });
}

function documents(objects: KubernetesObject[]): string {
  return HEADER + objects.map(yaml).join('---\n');
}

/** Namespaces come from each overlay's `namespace:`, so that one base serves every environment. */
function withoutNamespace<T extends KubernetesObject>(object: T): T {
  const { namespace: _namespace, ...metadata } = object.metadata;
  return { ...object, metadata } as T;
}

/**
 * The Prometheus-operator resources `bertha monitor render` writes, for one namespace's config,
 * read back from the file it renders (the monitor capability's public face is that renderer).
 */
function monitoringResources(config: Config): KubernetesObject[] {
  const file = renderMonitoring(config, { berthaUrl: config.monitor.berthaUrl || 'http://127.0.0.1', token: '' }).find(
    (rendered) => rendered.path === 'kubernetes/monitoring.yaml',
  );
  if (!file) throw new BerthaError('render_invalid', 'monitor render wrote no kubernetes/monitoring.yaml');
  return YAML.parseAllDocuments(file.content).map((document) => document.toJS() as KubernetesObject);
}

/**
 * Alertmanager's receiver also posts to Argo Events' webhook EventSource, with the same
 * bearer token, so that the retraining Sensor sees the alert Bertha's gateway records.
 */
function withEventSourceWebhook(alertmanagerConfig: KubernetesObject, config: Config): KubernetesObject {
  const { namespace, webhookPort } = config.pipelines.argo;
  const copy = structuredClone(alertmanagerConfig) as KubernetesObject & {
    spec: { receivers: { webhookConfigs: Record<string, unknown>[] }[] };
  };
  const receiver = copy.spec.receivers[0];
  const gateway = receiver?.webhookConfigs[0];
  if (!receiver || !gateway) throw new BerthaError('render_invalid', 'the AlertmanagerConfig has no webhook receiver');
  receiver.webhookConfigs.push({
    ...gateway,
    url: `http://alertmanager-eventsource-svc.${namespace}.svc:${webhookPort}/alertmanager`,
  });
  return copy;
}

/** Refuses to write what Argo would reject or silently ignore, as `--target argo` does. */
function refuseInvalid(manifests: RenderedManifest[], environment: Environment): void {
  const problems = [
    ...manifests.flatMap(({ file, manifest }) =>
      strictSchemaProblems(manifest).map((problem) => `${file}: ${problem}`),
    ),
    ...argoReferenceProblems(manifests),
  ];
  if (problems.length > 0) {
    throw new BerthaError(
      'render_invalid',
      `rendered ${environment.name} manifests are invalid:\n${problems.join('\n')}`,
    );
  }
}

function environmentFiles(
  input: KubernetesRenderInput,
  environment: Environment,
  withheld: Set<string>,
): RenderedFile[] {
  const namespace = namespaceOf(input.config.pipelines.argo.namespace, environment);
  const cluster = clusterConfig(input.config, environment, namespace, input.image);
  for (const name of cluster.withheld) withheld.add(name);
  const { config } = cluster;
  const { argo } = config.pipelines;
  const rendered = renderArgoManifests(input.definitions, {
    ...argo,
    minioEndpoint: config.objects.s3.endpoint.replace(/^[a-z]+:\/\//, '') || argo.minioEndpoint,
    uploadsPrefix: `${config.objects.s3.prefix}${config.objects.documentsPrefix}`,
    webhookAuthSecret: { name: config.monitor.kubernetes.tokenSecret, key: 'token' },
    stepPod: {
      env: podEnv(config),
      volumes: podVolumes(),
      volumeMounts: podVolumeMounts(),
      resources: { ...environment.step },
      podSecurityContext: POD_SECURITY_CONTEXT,
      securityContext: CONTAINER_SECURITY_CONTEXT,
    },
  });
  refuseInvalid(rendered, environment);
  const argoManifests = rendered.map(({ manifest }) => manifest as KubernetesObject);
  const ofKind = (kind: string) => argoManifests.filter((manifest) => manifest.kind === kind).map(withoutNamespace);
  const alertmanagerConfig = monitoringResources(config).find((resource) => resource.kind === 'AlertmanagerConfig');
  if (!alertmanagerConfig) throw new BerthaError('render_invalid', 'monitor render wrote no AlertmanagerConfig');

  const dir = `overlays/${environment.name}`;
  const resources = ['workloads.yaml', 'monitoring.yaml', 'argo-events.yaml', 'workflowtemplates.yaml'];
  const kustomization = {
    namespace,
    // kustomize v2 (Debian's kubectl 1.20) reads a folder only under `bases`; later ones still
    // do, with a deprecation warning. Nothing here needs more than kustomize v2 offers.
    bases: ['../../base'],
    resources,
    configMapGenerator: [{ name: CONFIG_MAP, files: ['bertha.yaml'] }],
    configurations: ['kustomizeconfig.yaml'],
  };
  return [
    {
      path: `${dir}/kustomization.yaml`,
      content: `${HEADER}# ${environment.name}: namespace ${namespace}; ArgoCD Application ../../argocd/${namespace}.yaml.\n${yaml(kustomization)}`,
    },
    // The effective config of this environment's pods (serve, worker and every Argo step).
    { path: `${dir}/bertha.yaml`, content: HEADER + yaml(config) },
    {
      path: `${dir}/kustomizeconfig.yaml`,
      content: `${HEADER}# The generated ConfigMap's hashed name also replaces its name in the WorkflowTemplates' volumes.\n${yaml(
        {
          nameReference: [
            {
              kind: 'ConfigMap',
              version: 'v1',
              fieldSpecs: [{ group: 'argoproj.io', kind: 'WorkflowTemplate', path: 'spec/volumes/configMap/name' }],
            },
          ],
        },
      )}`,
    },
    { path: `${dir}/workloads.yaml`, content: documents(environmentWorkloads(config, environment, input.image)) },
    {
      path: `${dir}/monitoring.yaml`,
      content: documents([withoutNamespace(withEventSourceWebhook(alertmanagerConfig, config))]),
    },
    { path: `${dir}/argo-events.yaml`, content: documents([...ofKind('EventSource'), ...ofKind('Sensor')]) },
    { path: `${dir}/workflowtemplates.yaml`, content: documents(ofKind('WorkflowTemplate')) },
  ];
}

function baseFiles(input: KubernetesRenderInput): RenderedFile[] {
  const monitoring = monitoringResources(input.config).filter((resource) => resource.kind !== 'AlertmanagerConfig');
  const eventBus = renderEventBus(input.config.pipelines.argo).manifest as KubernetesObject;
  const resources = ['workloads.yaml', 'monitoring.yaml', 'eventbus.yaml'];
  return [
    {
      path: 'base/kustomization.yaml',
      content: `${HEADER}# What every environment shares; each overlays/<env> adds what differs or names its namespace.\n${yaml({ resources })}`,
    },
    { path: 'base/workloads.yaml', content: documents(sharedWorkloads(input.config)) },
    { path: 'base/monitoring.yaml', content: documents(monitoring.map(withoutNamespace)) },
    { path: 'base/eventbus.yaml', content: documents([withoutNamespace(eventBus)]) },
  ];
}

/**
 * `bertha deploy render --target k8s`: a kustomize base, `dev`/`staging`/`prod` overlays
 * (a namespace each) and an ArgoCD Application per overlay, from the effective config and
 * the pipeline definitions the local runner runs.
 */
export function renderKubernetes(input: KubernetesRenderInput): KubernetesRender {
  const unpinned = unpinnedImageProblem(input.image);
  if (unpinned) throw new ValidationError(`image ${unpinned}; name a version tag or a digest`);
  const notes: string[] = [];
  const withheld = new Set<string>();
  const applications = ENVIRONMENTS.map((environment) =>
    argoCdApplication(environment, namespaceOf(input.config.pipelines.argo.namespace, environment), input.git),
  );
  const files = [
    ...baseFiles(input),
    ...ENVIRONMENTS.flatMap((environment) => environmentFiles(input, environment, withheld)),
    ...applications.map((application) => ({
      path: `argocd/${application.metadata.name}.yaml`,
      content: documents([application]),
    })),
    {
      path: 'argocd/kustomization.yaml',
      content: `${HEADER}${yaml({ resources: applications.map((application) => `${application.metadata.name}.yaml`) })}`,
    },
  ];
  if (withheld.size > 0) {
    notes.push(`left out of the ConfigMaps (set them in the Secret instead): ${[...withheld].sort().join(', ')}`);
  }
  if (!input.config.serving.model && !input.config.serving.upstream.baseUrl) {
    notes.push(
      'no model configured: serve answers chat once serving.model names a GGUF on the models volume (/models/<file>), serving.upstream names a server, or the registry names a champion',
    );
  }
  return { files, notes };
}
