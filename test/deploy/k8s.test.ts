import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { WorkflowTemplate } from '@kubernetes-models/argo-workflows/argoproj.io/v1alpha1';
import { PrometheusRule, ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { AlertmanagerConfig } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1alpha1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { ConfigMap, PersistentVolumeClaim, Service, ServiceAccount } from 'kubernetes-models/v1';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import YAML from 'yaml';
import { loadConfig } from '../../src/config/index.ts';
import { ENVIRONMENTS, unpinnedImageProblem } from '../../src/deploy/index.ts';
import { JETSTREAM_VERSION, strictSchemaProblems } from '../../src/pipelines/argo/index.ts';
import { type OpenApiNode, openApiProblems } from './openapi.ts';
import { toolsAvailable } from './tools.ts';

// biome-ignore lint/suspicious/noExplicitAny: rendered objects are walked by path in the assertions
type Loose = any;

const BIN = path.resolve('bin/bertha.js');
const IMAGE = 'registry.example.com/bertha/bertha:0.1.0';
const REPO = 'https://git.example.com/ops/bertha-deploy.git';
const argocd = JSON.parse(readFileSync(path.resolve('test/deploy/schemas/argocd-application.json'), 'utf8')) as {
  apiVersion: string;
  kind: string;
  schema: OpenApiNode;
};

function modelProblems(validate: () => void): string[] {
  try {
    validate();
    return [];
  } catch (error) {
    return [String((error as Error).message)];
  }
}

/** Each kind the render writes, checked against its upstream schema. */
const VALIDATORS: Record<string, (object: Loose) => string[]> = {
  'apps/v1 Deployment': (o) => modelProblems(() => new Deployment(o).validate()),
  'autoscaling/v2 HorizontalPodAutoscaler': (o) => modelProblems(() => new HorizontalPodAutoscaler(o).validate()),
  'v1 Service': (o) => modelProblems(() => new Service(o).validate()),
  'v1 ServiceAccount': (o) => modelProblems(() => new ServiceAccount(o).validate()),
  'v1 ConfigMap': (o) => modelProblems(() => new ConfigMap(o).validate()),
  'v1 PersistentVolumeClaim': (o) => modelProblems(() => new PersistentVolumeClaim(o).validate()),
  'rbac.authorization.k8s.io/v1 Role': (o) => modelProblems(() => new Role(o).validate()),
  'rbac.authorization.k8s.io/v1 RoleBinding': (o) => modelProblems(() => new RoleBinding(o).validate()),
  'monitoring.coreos.com/v1 PrometheusRule': (o) => modelProblems(() => new PrometheusRule(o).validate()),
  'monitoring.coreos.com/v1 ServiceMonitor': (o) => modelProblems(() => new ServiceMonitor(o).validate()),
  'monitoring.coreos.com/v1alpha1 AlertmanagerConfig': (o) => modelProblems(() => new AlertmanagerConfig(o).validate()),
  'argoproj.io/v1alpha1 WorkflowTemplate': (o) => [
    ...modelProblems(() => new WorkflowTemplate(o).validate()),
    ...strictSchemaProblems(o),
  ],
  'argoproj.io/v1alpha1 EventBus': strictSchemaProblems,
  'argoproj.io/v1alpha1 EventSource': strictSchemaProblems,
  'argoproj.io/v1alpha1 Sensor': strictSchemaProblems,
  [`${argocd.apiVersion} ${argocd.kind}`]: (o) => openApiProblems(argocd.schema, o),
};

function run(command: string, args: string[]): { stdout: string; stderr: string } {
  const result = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  expect(result.status, `${command} ${args.join(' ')}:\n${result.stdout}${result.stderr}`).toBe(0);
  return { stdout: result.stdout, stderr: result.stderr };
}

function render(out: string, dataDir: string, ...extra: string[]) {
  return spawnSync(
    process.execPath,
    [BIN, 'deploy', 'render', '--target', 'k8s', '-d', dataDir, '-o', out, '--repo-url', REPO, ...extra],
    { encoding: 'utf8', env: { ...process.env, BERTHA_LOG_LEVEL: 'warn' } },
  );
}

/** `kubectl kustomize <dir>`, parsed; the only thing it may say on stderr is that `bases` is deprecated. */
function kustomize(dir: string): Loose[] {
  const { stdout, stderr } = run('kubectl', ['kustomize', dir]);
  expect(stderr.split('\n').filter((line) => line && !line.includes("'bases' is deprecated"))).toEqual([]);
  return YAML.parseAllDocuments(stdout).map((document) => document.toJS());
}

/** Every container of a Deployment or of a WorkflowTemplate's steps, with the pod spec it runs in. */
function containers(object: Loose): { where: string; container: Loose; pod: Loose }[] {
  if (object.kind === 'Deployment') {
    return object.spec.template.spec.containers.map((container: Loose) => ({
      where: `Deployment/${object.metadata.name}`,
      container,
      pod: object.spec.template.spec,
    }));
  }
  if (object.kind === 'WorkflowTemplate') {
    return object.spec.templates
      .filter((template: Loose) => template.container)
      .map((template: Loose) => ({
        where: `WorkflowTemplate/${object.metadata.name}/${template.name}`,
        container: template.container,
        pod: object.spec,
      }));
  }
  return [];
}

const available = toolsAvailable('kubectl');

describe.skipIf(!available)('bertha deploy render --target k8s', () => {
  let root: string;
  let out: string;
  let stderr: string;
  const overlays: Record<string, Loose[]> = {};
  let applications: Loose[];

  beforeAll(() => {
    root = mkdtempSync(path.join(tmpdir(), 'bertha-k8s-'));
    out = path.join(root, 'out');
    const result = render(out, path.join(root, 'data'), '--image', IMAGE, '--repo-path', 'deploy/k8s');
    expect(result.status, result.stderr).toBe(0);
    stderr = result.stderr;
    for (const { name } of ENVIRONMENTS) overlays[name] = kustomize(path.join(out, 'overlays', name));
    applications = kustomize(path.join(out, 'argocd'));
  }, 120_000);

  afterAll(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  test('kubectl kustomize renders dev, staging and prod, each whole in a namespace of its own', () => {
    for (const { name } of ENVIRONMENTS) {
      const objects = overlays[name] as Loose[];
      expect(new Set(objects.map((object) => object.metadata.namespace))).toEqual(new Set([`bertha-${name}`]));
      const kinds = objects.map((object) => `${object.kind}/${object.metadata.name}`);
      expect(kinds).toEqual(
        expect.arrayContaining([
          'Deployment/bertha-serve',
          'HorizontalPodAutoscaler/bertha-serve',
          'Deployment/bertha-worker',
          'Service/bertha',
          'Service/bertha-worker',
          'PersistentVolumeClaim/bertha-models',
          'PrometheusRule/bertha-feedback-quality',
          'ServiceMonitor/bertha',
          'AlertmanagerConfig/bertha-gateway',
          'EventBus/default',
          'EventSource/alertmanager',
          'EventSource/minio',
          'Sensor/vector-ingestion-on-uploads',
          'Sensor/llm-retraining-on-alertmanager',
          'WorkflowTemplate/vector-ingestion',
          'WorkflowTemplate/llm-retraining',
        ]),
      );
      expect(kinds.filter((kind) => kind.startsWith('ConfigMap/bertha-yaml-'))).toHaveLength(1);
      expect(kinds.some((kind) => kind.startsWith('Secret/'))).toBe(false);
    }
  });

  test('every object passes its schema: kubernetes-models, the Prometheus-operator models, Argo strictly, the ArgoCD CRD', () => {
    for (const object of [...Object.values(overlays).flat(), ...applications]) {
      const validator = VALIDATORS[`${object.apiVersion} ${object.kind}`];
      expect(validator, `no schema for ${object.apiVersion} ${object.kind}`).toBeDefined();
      expect({ object: `${object.kind}/${object.metadata.name}`, problems: validator?.(object) }).toEqual({
        object: `${object.kind}/${object.metadata.name}`,
        problems: [],
      });
    }
  });

  test('the schema checks catch a misspelt or mistyped field', () => {
    const application = structuredClone(applications[0]);
    application.spec.syncPolicy.automatd = {};
    expect(openApiProblems(argocd.schema, application)).toEqual(['spec.syncPolicy.automatd: unknown field']);
    const serve = structuredClone((overlays.dev as Loose[]).find((object) => object.kind === 'Deployment'));
    serve.spec.template.spec.containers[0].ports[0].containerPort = 'http';
    expect(VALIDATORS['apps/v1 Deployment']?.(serve)).toHaveLength(1);
  });

  test('every pod runs as non-root, read-only, without capabilities, with CPU and memory requests; services have probes', () => {
    for (const object of Object.values(overlays).flat()) {
      for (const { where, container, pod } of containers(object)) {
        expect(pod.securityContext, where).toMatchObject({
          runAsNonRoot: true,
          seccompProfile: { type: 'RuntimeDefault' },
        });
        expect(pod.securityContext.runAsUser, where).toBeGreaterThan(0);
        expect(container.securityContext, where).toMatchObject({
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ['ALL'] },
        });
        expect(container.resources.requests, where).toEqual({ cpu: expect.any(String), memory: expect.any(String) });
        expect(container.resources.limits.memory, where).toEqual(expect.any(String));
        if (object.kind === 'Deployment') {
          const port = container.ports[0].name;
          for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe'])
            expect(container[probe]?.httpGet?.port, `${where} ${probe}`).toBe(port);
          expect(container.livenessProbe.httpGet.path).toBe('/healthz');
          expect(container.readinessProbe.httpGet.path).toBe('/readyz');
        }
      }
    }
  });

  test('every image is the one pinned image, and the JetStream EventBus names its NATS version', () => {
    for (const object of Object.values(overlays).flat()) {
      for (const { where, container } of containers(object)) {
        expect(container.image, where).toBe(IMAGE);
        expect(unpinnedImageProblem(container.image), where).toBeUndefined();
      }
      if (object.kind === 'EventBus') expect(object.spec.jetstream.version).toBe(JETSTREAM_VERSION);
    }
    expect(JETSTREAM_VERSION).toMatch(/^\d+\.\d+\.\d+$/);
    expect(unpinnedImageProblem('ghcr.io/bertha/bertha:latest')).toContain('latest');
    expect(unpinnedImageProblem('localhost:5000/bertha')).toContain('no tag');
    expect(unpinnedImageProblem(`ghcr.io/bertha/bertha@sha256:${'a'.repeat(64)}`)).toBeUndefined();
  });

  test('every name an object refers to resolves inside its overlay', () => {
    for (const [name, objects] of Object.entries(overlays)) {
      const named = (kind: string) => new Set(objects.filter((o) => o.kind === kind).map((o) => o.metadata.name));
      const configMaps = named('ConfigMap');
      const claims = named('PersistentVolumeClaim');
      const accounts = named('ServiceAccount');
      const deployments = objects.filter((object) => object.kind === 'Deployment');
      for (const object of objects) {
        const pods = containers(object);
        for (const pod of new Set(pods.map(({ pod }) => pod))) {
          for (const volume of pod.volumes ?? []) {
            if (volume.configMap)
              expect(configMaps, `${name} ${object.metadata.name}`).toContain(volume.configMap.name);
            if (volume.persistentVolumeClaim) expect(claims).toContain(volume.persistentVolumeClaim.claimName);
          }
          expect(accounts).toContain(pod.serviceAccountName);
        }
        if (object.kind === 'Service') {
          const matching = deployments.filter((deployment) =>
            Object.entries(object.spec.selector).every(
              ([key, value]) => deployment.spec.template.metadata.labels[key] === value,
            ),
          );
          expect(matching, `${name} Service/${object.metadata.name}`).toHaveLength(1);
          const portNames = matching[0].spec.template.spec.containers[0].ports.map((port: Loose) => port.name);
          expect(portNames).toContain(object.spec.ports[0].targetPort);
        }
        if (object.kind === 'HorizontalPodAutoscaler') {
          expect(deployments.map((d) => d.metadata.name)).toContain(object.spec.scaleTargetRef.name);
          expect(
            deployments.find((d) => d.metadata.name === object.spec.scaleTargetRef.name).spec.replicas,
          ).toBeUndefined();
        }
        if (object.kind === 'ServiceMonitor') {
          const services = objects.filter(
            (o) =>
              o.kind === 'Service' &&
              Object.entries(object.spec.selector.matchLabels).every(
                ([key, value]) => o.metadata.labels[key] === value,
              ),
          );
          expect(services.map((service) => service.metadata.name).sort()).toEqual(['bertha', 'bertha-worker']);
          for (const service of services) expect(service.spec.ports[0].name).toBe(object.spec.endpoints[0].port);
        }
        if (object.kind === 'RoleBinding') expect(object.subjects[0].namespace).toBe(`bertha-${name}`);
        if (object.kind === 'AlertmanagerConfig') {
          const urls = object.spec.receivers[0].webhookConfigs.map((webhook: Loose) => webhook.url);
          const service = objects.find((o) => o.kind === 'Service' && o.metadata.name === 'bertha');
          const source = objects.find((o) => o.kind === 'EventSource' && o.metadata.name === 'alertmanager');
          expect(urls).toEqual([
            `http://bertha.bertha-${name}.svc:${service.spec.ports[0].port}/events/alertmanager`,
            // Argo Events names the EventSource's Service <name>-eventsource-svc.
            `http://alertmanager-eventsource-svc.bertha-${name}.svc:${source.spec.service.ports[0].port}${source.spec.webhook.alertmanager.endpoint}`,
          ]);
        }
        if (object.kind === 'Sensor') {
          const workflow = object.spec.triggers[0].template.argoWorkflow.source.resource;
          expect(workflow.metadata.namespace).toBe(`bertha-${name}`);
        }
      }
    }
  });

  test("each overlay's ConfigMap holds the config its pods load: PostgreSQL, NATS, S3 and Prometheus, no credential", () => {
    for (const [name, objects] of Object.entries(overlays)) {
      const configMap = objects.find((object) => object.kind === 'ConfigMap');
      const dir = mkdtempSync(path.join(tmpdir(), 'bertha-k8s-config-'));
      try {
        const file = path.join(dir, 'bertha.yaml');
        writeFileSync(file, configMap.data['bertha.yaml']);
        const { config } = loadConfig({ config: file }, { BERTHA_DATABASE_URL: 'postgres://bertha@db/bertha' }, dir);
        expect(config.database).toMatchObject({ driver: 'postgres', url: 'postgres://bertha@db/bertha' });
        expect(config.events.bus).toBe('nats');
        expect(config.events.nats.stream).toBe(`BERTHA_EVENTS_${name.toUpperCase()}`);
        expect(config.objects).toMatchObject({ driver: 's3', s3: { bucket: `documents-${name}` } });
        expect(config.knowledge.vectorStore).toBe('postgres');
        expect(config.monitor.mode).toBe('prometheus');
        expect(config.sensors).toEqual([]);
        expect(config.dataDir).toBe('/data');
        expect(config.server.host).toBe('0.0.0.0');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });

  test('one ArgoCD Application per overlay: dev and staging sync themselves, prod waits', () => {
    expect(applications.map((application) => application.metadata.name).sort()).toEqual([
      'bertha-dev',
      'bertha-prod',
      'bertha-staging',
    ]);
    for (const application of applications) {
      const environment = application.metadata.name.replace('bertha-', '');
      expect(application.metadata.namespace).toBe('argocd');
      expect(application.spec.source).toEqual({
        repoURL: REPO,
        targetRevision: 'HEAD',
        path: `deploy/k8s/overlays/${environment}`,
      });
      expect(application.spec.destination.namespace).toBe(`bertha-${environment}`);
      expect(Boolean(application.spec.syncPolicy.automated)).toBe(environment !== 'prod');
    }
    expect(stderr).toContain(`image: ${IMAGE}`);
  });

  test('credentials in bertha.yaml stay out of every file, and an unpinned image is refused', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bertha-k8s-secrets-'));
    try {
      const secrets = render(
        path.join(dir, 'out'),
        path.join(dir, 'data'),
        '--image',
        IMAGE,
        '--set',
        'serving.upstream.apiKey=sk-not-for-configmaps',
        '--set',
        'objects.s3.secretAccessKey=minio-not-for-configmaps',
        '--set',
        'knowledge.postgres.url=postgres://bertha:pg-not-for-configmaps@db/bertha',
      );
      expect(secrets.status, secrets.stderr).toBe(0);
      const written = secrets.stdout
        .trim()
        .split('\n')
        .map((file) => readFileSync(file, 'utf8'))
        .join('\n');
      expect(written).not.toMatch(/not-for-configmaps/);
      expect(secrets.stderr).toContain(
        'BERTHA_KNOWLEDGE_POSTGRES_URL, BERTHA_OBJECTS_S3_SECRET_ACCESS_KEY, BERTHA_SERVING_UPSTREAM_API_KEY',
      );

      const latest = render(
        path.join(dir, 'latest'),
        path.join(dir, 'data'),
        '--image',
        'ghcr.io/bertha/bertha:latest',
      );
      expect(latest.status).not.toBe(0);
      expect(latest.stderr).toContain('tagged latest');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
