import type { Environment } from './environments.ts';
import { type KubernetesObject, PART_OF } from './kubernetes-object.ts';

export interface GitSource {
  /** The Git repository ArgoCD syncs from. */
  repoUrl: string;
  /** Branch, tag or commit ArgoCD follows. */
  revision: string;
  /** The rendered folder inside that repository (its `overlays/<env>` are the Applications' paths). */
  path: string;
}

/** ArgoCD's own namespace, where Application objects must live (argo-cd's install manifests). */
export const ARGOCD_NAMESPACE = 'argocd';

/**
 * One ArgoCD Application per overlay (argoproj.io/v1alpha1, argo-cd manifests/crds/application-crd.yaml):
 * dev and staging follow every commit and undo hand edits; prod syncs when someone asks.
 */
export function argoCdApplication(environment: Environment, namespace: string, source: GitSource): KubernetesObject {
  return {
    apiVersion: 'argoproj.io/v1alpha1',
    kind: 'Application',
    metadata: {
      name: namespace,
      namespace: ARGOCD_NAMESPACE,
      labels: { 'app.kubernetes.io/instance': namespace, ...PART_OF },
      // Deleting the Application deletes what it deployed.
      finalizers: ['resources-finalizer.argocd.argoproj.io'],
    },
    spec: {
      project: 'default',
      source: {
        repoURL: source.repoUrl,
        targetRevision: source.revision,
        path: `${source.path.replace(/\/+$/, '')}/overlays/${environment.name}`,
      },
      destination: { server: 'https://kubernetes.default.svc', namespace },
      syncPolicy: {
        ...(environment.autoSync ? { automated: { prune: true, selfHeal: true } } : {}),
        syncOptions: ['CreateNamespace=true'],
      },
      // The autoscaler owns the serve Deployment's replica count.
      ignoreDifferences: [
        { group: 'apps', kind: 'Deployment', name: 'bertha-serve', jsonPointers: ['/spec/replicas'] },
      ],
    },
  };
}
