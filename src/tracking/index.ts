/**
 * Experiment tracking and the model registry: an embedded MLflow-compatible server (REST API
 * 2.0 over the metadata DB and the ObjectStore), a client for it or a remote MLflow, and the
 * registry functions the chat service uses to find the bundle behind an alias.
 */
export { ARTIFACT_PREFIX } from './artifacts.ts';
export { createTrackingClient, TrackingApiError, type TrackingClient, type TrackingClientOptions } from './client.ts';
export { MlflowError, type MlflowErrorCode } from './errors.ts';
export { type FilterComparison, parseFilter } from './filter.ts';
export { type FollowAliasOptions, followAlias } from './follow.ts';
export {
  ALIAS_CHANGED,
  type AliasChangedPayload,
  BUNDLE_TAG,
  BundleInvalidError,
  createModelRegistry,
  type ModelRegistry,
  type RegisterBundleInput,
} from './registry.ts';
export { type AliasChange, createRegistryStore, type RegistryStore } from './registry-store.ts';
export type { ModelStage, ModelVersion, RegisteredModel, RegisteredModelAlias } from './registry-types.ts';
export { registerModelBundleRoutes, registerTrackingRoutes, type TrackingRouteDeps } from './routes.ts';
export { createTrackingStore, experimentIdFor, RUN_NAME_TAG, type TrackingStore } from './store.ts';
export type { Experiment, KeyValue, Metric, Run, RunInfo, RunStatus } from './types.ts';
export { LIMITS } from './validation.ts';

/** The champion serves all traffic; the challenger is the candidate (canary, shadow). */
export const CHAMPION = 'champion';
export const CHALLENGER = 'challenger';
