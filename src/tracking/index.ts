/**
 * Experiment tracking and the model registry: an embedded MLflow-compatible server (REST API
 * 2.0 over the metadata DB and the ObjectStore), a client for it or a remote MLflow, and the
 * registry functions the chat service uses to find the bundle behind an alias.
 */
export { CHALLENGER, CHAMPION, PROMPT_CHALLENGER } from './aliases.ts';
export { createTrackingClient, type TrackingClient } from './client.ts';
export { followAlias } from './follow.ts';
export {
  type PromptChallenger,
  RETRAINING_EXPERIMENT,
  type RegisteredRetraining,
  type RegisterRetrainedDeps,
  type RetrainedModel,
  registerPromptChallenger,
  registerRetrained,
} from './register-retrained.ts';
export { createModelRegistry, type ModelRegistry } from './registry.ts';
export { createRegistryStore } from './registry-store.ts';
export { registerModelBundleRoutes, registerTrackingRoutes } from './routes.ts';
export type { RunInput, RunLog, RunValues } from './run-log.ts';
export { createTrackingStore, experimentIdFor, type TrackingStore } from './store.ts';
export type { Run } from './types.ts';
