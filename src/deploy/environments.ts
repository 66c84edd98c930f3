/** Requests and limits of one container, as Kubernetes quantities. */
export interface ContainerSize {
  requests: { cpu: string; memory: string };
  limits: { memory: string };
}

/** What differs between the seed's environments; everything else is the base. */
export interface Environment {
  name: 'dev' | 'staging' | 'prod';
  /** The serve Deployment's HorizontalPodAutoscaler bounds. */
  serveReplicas: { min: number; max: number };
  workerReplicas: number;
  serve: ContainerSize;
  worker: ContainerSize;
  /** Every `bertha step` pod Argo Workflows starts (retraining runs in one). */
  step: ContainerSize;
  logLevel: 'debug' | 'info';
  /**
   * The models volume: serve replicas on several nodes need ReadWriteMany; a one-node dev
   * cluster's default storage class (local-path, hostpath) offers only ReadWriteOnce.
   */
  modelsAccessMode: 'ReadWriteOnce' | 'ReadWriteMany';
  modelsStorage: string;
  /** ArgoCD syncs dev and staging on every commit; prod waits for someone to press sync. */
  autoSync: boolean;
}

const SMALL: ContainerSize = { requests: { cpu: '250m', memory: '512Mi' }, limits: { memory: '2Gi' } };

export const ENVIRONMENTS: readonly Environment[] = [
  {
    name: 'dev',
    serveReplicas: { min: 1, max: 2 },
    workerReplicas: 1,
    serve: { requests: { cpu: '500m', memory: '1Gi' }, limits: { memory: '4Gi' } },
    worker: SMALL,
    step: { requests: { cpu: '500m', memory: '1Gi' }, limits: { memory: '4Gi' } },
    logLevel: 'debug',
    modelsAccessMode: 'ReadWriteOnce',
    modelsStorage: '10Gi',
    autoSync: true,
  },
  {
    name: 'staging',
    serveReplicas: { min: 2, max: 4 },
    workerReplicas: 2,
    serve: { requests: { cpu: '2', memory: '4Gi' }, limits: { memory: '8Gi' } },
    worker: { requests: { cpu: '500m', memory: '1Gi' }, limits: { memory: '4Gi' } },
    step: { requests: { cpu: '2', memory: '4Gi' }, limits: { memory: '8Gi' } },
    logLevel: 'info',
    modelsAccessMode: 'ReadWriteMany',
    modelsStorage: '50Gi',
    autoSync: true,
  },
  {
    name: 'prod',
    serveReplicas: { min: 2, max: 10 },
    workerReplicas: 2,
    serve: { requests: { cpu: '2', memory: '4Gi' }, limits: { memory: '8Gi' } },
    worker: { requests: { cpu: '1', memory: '2Gi' }, limits: { memory: '4Gi' } },
    step: { requests: { cpu: '4', memory: '8Gi' }, limits: { memory: '16Gi' } },
    logLevel: 'info',
    modelsAccessMode: 'ReadWriteMany',
    modelsStorage: '100Gi',
    autoSync: false,
  },
];

/** `bertha` -> `bertha-dev`: every environment has a namespace of its own. */
export function namespaceOf(base: string, environment: Environment): string {
  return `${base}-${environment.name}`;
}
