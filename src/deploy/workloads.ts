import type { Config } from '../config/index.ts';
import { CONFIG_DIR, CONFIG_FILE, DATA_DIR, MODELS_DIR } from './cluster-config.ts';
import type { ContainerSize, Environment } from './environments.ts';
import { IMAGE_USER, type KubernetesObject, PART_OF } from './kubernetes-object.ts';

export type Role = 'serve' | 'worker';

/** Names the workloads share with one another and with the Argo step pods. */
export const CONFIG_MAP = 'bertha-yaml';
export const MODELS_CLAIM = 'bertha-models';
export const POD_SERVICE_ACCOUNT = 'bertha';

export function deploymentName(role: Role): string {
  return `bertha-${role}`;
}

function podLabels(config: Config, role: Role): Record<string, string> {
  return { 'app.kubernetes.io/name': config.monitor.kubernetes.serviceLabel, 'app.kubernetes.io/component': role };
}

/** Not root, no privilege escalation, nothing writable but the volumes (Pod Security Standards, restricted). */
export const POD_SECURITY_CONTEXT = {
  runAsNonRoot: true,
  runAsUser: IMAGE_USER,
  runAsGroup: IMAGE_USER,
  fsGroup: IMAGE_USER,
  seccompProfile: { type: 'RuntimeDefault' },
};
export const CONTAINER_SECURITY_CONTEXT = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  capabilities: { drop: ['ALL'] },
};

/** The settings file, the models, and writable scratch space: what every Bertha pod mounts. */
export function podVolumes(): Record<string, unknown>[] {
  return [
    { name: 'config', configMap: { name: CONFIG_MAP } },
    { name: 'models', persistentVolumeClaim: { claimName: MODELS_CLAIM, readOnly: true } },
    // dataDir holds only caches here (the state is in PostgreSQL and S3); tsx compiles into /tmp.
    { name: 'data', emptyDir: {} },
    { name: 'tmp', emptyDir: {} },
  ];
}

export function podVolumeMounts(): Record<string, unknown>[] {
  return [
    { name: 'config', mountPath: CONFIG_DIR, readOnly: true },
    { name: 'models', mountPath: MODELS_DIR, readOnly: true },
    { name: 'data', mountPath: DATA_DIR },
    { name: 'tmp', mountPath: '/tmp' },
  ];
}

/** Environment every Bertha container gets beside the Secret's `BERTHA_*` (envFrom). */
export function podEnv(config: Config): Record<string, unknown>[] {
  return [
    { name: 'BERTHA_CONFIG', value: CONFIG_FILE },
    // The bearer token Alertmanager sends to /events/alertmanager, from the Secret the AlertmanagerConfig reads.
    {
      name: 'BERTHA_MONITOR_GATEWAY_TOKEN',
      valueFrom: { secretKeyRef: { name: config.monitor.kubernetes.tokenSecret, key: 'token' } },
    },
  ];
}

function httpProbe(path: string, port: string, periodSeconds: number, failureThreshold: number) {
  return { httpGet: { path, port }, periodSeconds, timeoutSeconds: 3, failureThreshold };
}

function deployment(
  config: Config,
  role: Role,
  image: string,
  size: ContainerSize,
  replicas: number | undefined,
): KubernetesObject {
  const labels = podLabels(config, role);
  const port = config.monitor.kubernetes.portName;
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: deploymentName(role), labels: { ...labels, ...PART_OF } },
    spec: {
      // The serve Deployment leaves replicas to its HorizontalPodAutoscaler (ArgoCD would undo its changes).
      ...(replicas !== undefined ? { replicas } : {}),
      selector: { matchLabels: labels },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: { labels: { ...labels, ...PART_OF } },
        spec: {
          serviceAccountName: POD_SERVICE_ACCOUNT,
          automountServiceAccountToken: false,
          // Service links would put BERTHA_PORT=tcp://... beside the settings; nothing needs them.
          enableServiceLinks: false,
          terminationGracePeriodSeconds: Math.ceil(config.server.shutdownTimeoutMs / 1000) + 5,
          securityContext: POD_SECURITY_CONTEXT,
          containers: [
            {
              name: 'bertha',
              image,
              imagePullPolicy: 'IfNotPresent',
              args: [role],
              env: podEnv(config),
              envFrom: [{ secretRef: { name: config.pipelines.argo.configSecret } }],
              ports: [{ name: port, containerPort: config.server.port, protocol: 'TCP' }],
              // /healthz answers once the process listens; /readyz once the database, the
              // knowledge base and (serve) the model are ready.
              startupProbe: httpProbe('/healthz', port, 2, 60),
              livenessProbe: httpProbe('/healthz', port, 10, 3),
              readinessProbe: httpProbe('/readyz', port, 5, 3),
              resources: size,
              securityContext: CONTAINER_SECURITY_CONTEXT,
              volumeMounts: podVolumeMounts(),
            },
          ],
          volumes: podVolumes(),
        },
      },
    },
  };
}

/** One environment's Deployments, the serve autoscaler and the models volume. */
export function environmentWorkloads(config: Config, environment: Environment, image: string): KubernetesObject[] {
  return [
    deployment(config, 'serve', image, environment.serve, undefined),
    {
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: { name: deploymentName('serve'), labels: { ...podLabels(config, 'serve'), ...PART_OF } },
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: deploymentName('serve') },
        minReplicas: environment.serveReplicas.min,
        maxReplicas: environment.serveReplicas.max,
        metrics: [
          { type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } } },
        ],
        // Generation is bursty: wait before giving back a replica that a loaded model sits in.
        behavior: { scaleDown: { stabilizationWindowSeconds: 300 } },
      },
    },
    deployment(config, 'worker', image, environment.worker, environment.workerReplicas),
    {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: MODELS_CLAIM, labels: PART_OF },
      spec: {
        accessModes: [environment.modelsAccessMode],
        resources: { requests: { storage: environment.modelsStorage } },
      },
    },
  ];
}

/**
 * What every environment shares: the Services (the serve one named for the ServiceMonitor's
 * label and the AlertmanagerConfig's URL), and the service accounts with the one Role Argo
 * needs: step pods report their outputs, Sensors submit Workflows from the templates.
 */
export function sharedWorkloads(config: Config): KubernetesObject[] {
  const { serviceLabel, portName } = config.monitor.kubernetes;
  const { serviceAccount } = config.pipelines.argo;
  const service = (role: Role, name: string): KubernetesObject => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, labels: { ...podLabels(config, role), ...PART_OF } },
    spec: {
      selector: podLabels(config, role),
      ports: [{ name: portName, port: config.server.port, targetPort: portName, protocol: 'TCP' }],
    },
  });
  return [
    service('serve', serviceLabel),
    // The worker serves only probes and /metrics; its Service lets the ServiceMonitor find it.
    service('worker', `${serviceLabel}-worker`),
    {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: POD_SERVICE_ACCOUNT, labels: PART_OF },
      automountServiceAccountToken: false,
    },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: serviceAccount, labels: PART_OF } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: serviceAccount, labels: PART_OF },
      rules: [
        // Argo Workflows' executor (emissary, v3.4+) records each step's outputs.
        { apiGroups: ['argoproj.io'], resources: ['workflowtaskresults'], verbs: ['create', 'patch'] },
        // Argo Events' Sensors submit Workflows that reference the WorkflowTemplates.
        { apiGroups: ['argoproj.io'], resources: ['workflows'], verbs: ['create', 'get', 'list', 'watch'] },
        { apiGroups: ['argoproj.io'], resources: ['workflowtemplates'], verbs: ['get', 'list', 'watch'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: serviceAccount, labels: PART_OF },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: serviceAccount },
      subjects: [{ kind: 'ServiceAccount', name: serviceAccount }],
    },
  ];
}
