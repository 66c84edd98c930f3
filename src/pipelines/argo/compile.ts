import type { ArgoEventsTrigger, PipelineDefinition, ResolvedStep } from '../definition.ts';

export interface ArgoRenderOptions {
  namespace: string;
  image: string;
  /** How the image starts the CLI, e.g. `['bertha']` or `['node', '/app/bin/bertha.js']`. */
  command: string[];
  serviceAccount: string;
  /** Secret whose keys are BERTHA_* variables (database URL, object store) for every step pod. */
  configSecret: string;
  minioEndpoint: string;
  uploadsBucket: string;
  /** Secret with `accesskey` and `secretkey` for MinIO. */
  minioSecret: string;
  webhookPort: number;
  /** Only objects under this key prefix start uploads/removals Sensors (Bertha's documents, not its artifacts). */
  uploadsPrefix?: string;
  /** Secret key whose value Alertmanager must send as a bearer token to the webhook EventSource. */
  webhookAuthSecret?: { name: string; key: string };
  /** What every step pod gets besides the Secret: settings file, volumes, sizes, security (`deploy render --target k8s`). */
  stepPod?: StepPodSettings;
}

/** Kubernetes fields added to every step pod; loose records, checked by the Argo schema before writing. */
export interface StepPodSettings {
  env: Record<string, unknown>[];
  volumes: Record<string, unknown>[];
  volumeMounts: Record<string, unknown>[];
  resources: Record<string, unknown>;
  podSecurityContext: Record<string, unknown>;
  securityContext: Record<string, unknown>;
}

export interface RenderedManifest {
  /** File name under the output folder. */
  file: string;
  manifest: Record<string, unknown> & { kind: string; metadata: { name: string; [key: string]: unknown } };
}

const API_VERSION = 'argoproj.io/v1alpha1';
const EVENT_BUS = 'default';
/**
 * NATS version of the JetStream EventBus: one the Argo Events controller lists in its
 * `argo-events-controller-config` (v1.9.11: 2.8.1 ... 2.10.29, and `latest`, which moves).
 */
export const JETSTREAM_VERSION = '2.10.29';
const OUTPUTS_DIR = '/tmp/bertha/outputs';
const LABELS = { 'app.kubernetes.io/part-of': 'bertha', 'app.kubernetes.io/managed-by': 'bertha-deploy-render' };

/** Argo Events sources Bertha renders: each a (EventSource, event name) pair a Sensor depends on. */
const EVENT_SOURCES: Record<ArgoEventsTrigger['source'], { eventSource: string; eventName: string }> = {
  uploads: { eventSource: 'minio', eventName: 'uploads' },
  removals: { eventSource: 'minio', eventName: 'removals' },
  alertmanager: { eventSource: 'alertmanager', eventName: 'alertmanager' },
};

function seconds(ms: number): string {
  return `${Math.max(1, Math.round(ms / 1000))}s`;
}

function stepTemplate(definition: PipelineDefinition, step: ResolvedStep, options: ArgoRenderOptions) {
  const inputs = Object.keys(step.inputs);
  // Every pod gets every run parameter: whichever pod starts first creates the run row.
  const params = Object.keys(definition.params);
  return {
    name: step.name,
    ...(inputs.length > 0 ? { inputs: { parameters: inputs.map((name) => ({ name })) } } : {}),
    ...(step.outputs.length > 0
      ? {
          outputs: {
            parameters: step.outputs.map((name) => ({ name, valueFrom: { path: `${OUTPUTS_DIR}/${name}` } })),
          },
        }
      : {}),
    ...(step.retry.limit > 0
      ? {
          retryStrategy: {
            limit: String(step.retry.limit),
            retryPolicy: 'Always',
            backoff: {
              duration: seconds(step.retry.backoffMs),
              factor: String(step.retry.factor),
              cap: seconds(step.retry.maxBackoffMs),
            },
          },
        }
      : {}),
    activeDeadlineSeconds: String(Math.ceil(step.timeoutMs / 1000)),
    container: {
      name: 'main',
      image: options.image,
      command: options.command,
      args: [
        'step',
        definition.name,
        step.name,
        '--run',
        '{{workflow.name}}',
        '--single-attempt',
        '--outputs-dir',
        OUTPUTS_DIR,
        ...params.flatMap((name) => ['--param', `${name}={{workflow.parameters.${name}}}`]),
        ...inputs.flatMap((name) => ['--input', `${name}={{inputs.parameters.${name}}}`]),
      ],
      envFrom: [{ secretRef: { name: options.configSecret } }],
      ...(options.stepPod
        ? {
            env: options.stepPod.env,
            volumeMounts: options.stepPod.volumeMounts,
            resources: options.stepPod.resources,
            securityContext: options.stepPod.securityContext,
          }
        : {}),
    },
  };
}

export function renderWorkflowTemplate(definition: PipelineDefinition, options: ArgoRenderOptions): RenderedManifest {
  const params = Object.entries(definition.params);
  return {
    file: `workflowtemplate-${definition.name}.yaml`,
    manifest: {
      apiVersion: API_VERSION,
      kind: 'WorkflowTemplate',
      metadata: { name: definition.name, namespace: options.namespace, labels: LABELS },
      spec: {
        entrypoint: 'main',
        serviceAccountName: options.serviceAccount,
        ...(options.stepPod
          ? { securityContext: options.stepPod.podSecurityContext, volumes: options.stepPod.volumes }
          : {}),
        ...(params.length > 0
          ? {
              arguments: {
                parameters: params.map(([name, spec]) => ({
                  name,
                  description: spec.description,
                  ...(spec.default !== undefined ? { value: String(spec.default) } : {}),
                })),
              },
            }
          : {}),
        templates: [
          {
            name: 'main',
            dag: {
              tasks: definition.steps.map((step) => {
                const inputs = Object.entries(step.inputs);
                return {
                  name: step.name,
                  template: step.name,
                  ...(step.dependsOn.length > 0 ? { dependencies: step.dependsOn } : {}),
                  ...(inputs.length > 0
                    ? {
                        arguments: {
                          parameters: inputs.map(([name, ref]) => ({
                            name,
                            value: `{{tasks.${ref.from}.outputs.parameters.${ref.artifact}}}`,
                          })),
                        },
                      }
                    : {}),
                };
              }),
            },
          },
          ...definition.steps.map((step) => stepTemplate(definition, step, options)),
        ],
      },
    },
  };
}

export function renderEventBus(options: ArgoRenderOptions): RenderedManifest {
  return {
    file: 'eventbus.yaml',
    manifest: {
      apiVersion: API_VERSION,
      kind: 'EventBus',
      metadata: { name: EVENT_BUS, namespace: options.namespace, labels: LABELS },
      spec: { jetstream: { version: JETSTREAM_VERSION, replicas: 3 } },
    },
  };
}

export function renderEventSources(options: ArgoRenderOptions): RenderedManifest[] {
  const minioBucket = (events: string[]) => ({
    bucket: { name: options.uploadsBucket },
    endpoint: options.minioEndpoint,
    events,
    insecure: true,
    accessKey: { name: options.minioSecret, key: 'accesskey' },
    secretKey: { name: options.minioSecret, key: 'secretkey' },
    ...(options.uploadsPrefix ? { filter: { prefix: options.uploadsPrefix, suffix: '' } } : {}),
  });
  const port = String(options.webhookPort);
  return [
    {
      file: 'eventsource-alertmanager.yaml',
      manifest: {
        apiVersion: API_VERSION,
        kind: 'EventSource',
        metadata: { name: 'alertmanager', namespace: options.namespace, labels: LABELS },
        spec: {
          eventBusName: EVENT_BUS,
          service: { ports: [{ port: options.webhookPort, targetPort: options.webhookPort }] },
          webhook: {
            // Alertmanager's webhook_config posts here: http://alertmanager-eventsource-svc:<port>/alertmanager
            alertmanager: {
              endpoint: '/alertmanager',
              method: 'POST',
              port,
              url: `http://alertmanager-eventsource-svc.${options.namespace}.svc:${port}`,
              ...(options.webhookAuthSecret ? { authSecret: options.webhookAuthSecret } : {}),
            },
          },
        },
      },
    },
    {
      file: 'eventsource-minio.yaml',
      manifest: {
        apiVersion: API_VERSION,
        kind: 'EventSource',
        metadata: { name: 'minio', namespace: options.namespace, labels: LABELS },
        spec: {
          eventBusName: EVENT_BUS,
          minio: {
            uploads: minioBucket(['s3:ObjectCreated:Put', 's3:ObjectCreated:CompleteMultipartUpload']),
            removals: minioBucket(['s3:ObjectRemoved:Delete']),
          },
        },
      },
    },
  ];
}

/** One Sensor per pipeline trigger: the event's fields become the submitted Workflow's parameters. */
export function renderSensors(definition: PipelineDefinition, options: ArgoRenderOptions): RenderedManifest[] {
  const params = Object.entries(definition.params);
  return definition.argoEvents.map((trigger) => {
    const source = EVENT_SOURCES[trigger.source];
    const name = `${definition.name}-on-${trigger.source}`;
    const dependency = trigger.source;
    return {
      file: `sensor-${name}.yaml`,
      manifest: {
        apiVersion: API_VERSION,
        kind: 'Sensor',
        metadata: { name, namespace: options.namespace, labels: LABELS },
        spec: {
          eventBusName: EVENT_BUS,
          template: { serviceAccountName: options.serviceAccount },
          dependencies: [
            {
              name: dependency,
              eventSourceName: source.eventSource,
              eventName: source.eventName,
              ...(trigger.source === 'alertmanager'
                ? { filters: { data: [{ path: 'body.status', type: 'string', value: ['firing'] }] } }
                : {}),
            },
          ],
          triggers: [
            {
              template: {
                name: `submit-${definition.name}`,
                argoWorkflow: {
                  operation: 'submit',
                  source: {
                    resource: {
                      apiVersion: API_VERSION,
                      kind: 'Workflow',
                      metadata: { generateName: `${definition.name}-`, namespace: options.namespace },
                      spec: {
                        workflowTemplateRef: { name: definition.name },
                        ...(params.length > 0
                          ? {
                              arguments: {
                                parameters: params.map(([param, spec]) => ({
                                  name: param,
                                  value:
                                    trigger.constants?.[param] ??
                                    (spec.default !== undefined ? String(spec.default) : ''),
                                })),
                              },
                            }
                          : {}),
                      },
                    },
                  },
                  parameters: Object.entries(trigger.parameters).map(([param, dataKey]) => ({
                    // An event without the field submits the parameter's default, as the local sensor does.
                    src: {
                      dependencyName: dependency,
                      dataKey,
                      ...(definition.params[param]?.default !== undefined
                        ? { value: String(definition.params[param]?.default) }
                        : {}),
                    },
                    dest: `spec.arguments.parameters.${params.findIndex(([candidate]) => candidate === param)}.value`,
                  })),
                },
              },
              retryStrategy: { steps: 3, duration: '2s' },
            },
          ],
        },
      },
    };
  });
}

/** Everything `bertha deploy render --target argo` writes, from the same definitions the local runner runs. */
export function renderArgoManifests(definitions: PipelineDefinition[], options: ArgoRenderOptions): RenderedManifest[] {
  return [
    renderEventBus(options),
    ...renderEventSources(options),
    ...definitions.map((definition) => renderWorkflowTemplate(definition, options)),
    ...definitions.flatMap((definition) => renderSensors(definition, options)),
  ];
}
