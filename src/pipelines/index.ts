export { createPipelineCatalog, type PipelineCatalog } from './catalog.ts';
export {
  type ArgoEventsTrigger,
  type ArtifactRef,
  definePipeline,
  type ParamSpec,
  type ParamValue,
  type PipelineDefinition,
  PipelineDefinitionError,
  type PipelineSpec,
  type ResolvedStep,
  type RetryPolicy,
  type RunParams,
  resolveRunParams,
  type StepSpec,
} from './definition.ts';
export { artifactKey, executeStep, type StepOutcome } from './execute-step.ts';
export {
  type ArtifactWriter,
  createStepHandlerRegistry,
  type StepContext,
  type StepHandler,
  type StepHandlerRegistry,
  type StepInputs,
  type StepLogger,
} from './handlers.ts';
export { describePipeline, type RunDetail, runDetail, runProgress, type StepState } from './run-detail.ts';
export { type RunOneStepOptions, runOneStep } from './run-step.ts';
export { createLocalRunner, type LocalRunner, type LocalRunnerOptions, type PipelineSchedule } from './runner.ts';
export { createRunStore, type RunRecord, type RunStore, type StepRecord } from './store.ts';
