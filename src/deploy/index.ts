export { ARGOCD_NAMESPACE, type GitSource } from './argocd.ts';
export { type ClusterConfig, clusterConfig } from './cluster-config.ts';
export { ENVIRONMENTS, type Environment, namespaceOf } from './environments.ts';
export { imageForVersion, unpinnedImageProblem } from './image.ts';
export {
  type KubernetesRender,
  type KubernetesRenderInput,
  type RenderedFile,
  renderKubernetes,
} from './kubernetes.ts';
export type { KubernetesObject } from './kubernetes-object.ts';
