export { type Checkpoint, readCheckpoint, writeCheckpoint } from './checkpoint.ts';
export {
  type CommandProgress,
  CommandTrainerError,
  type CommandTrainerInputs,
  type CommandTrainerResult,
  runCommandTrainer,
} from './command.ts';
export { type CommandTrainerSpec, commandTrainerSchema } from './command-spec.ts';
export {
  type BuildDatasetDeps,
  type BuildDatasetOptions,
  type BuiltDataset,
  buildDataset,
  type DatasetExample,
  type NegativeExample,
} from './dataset.ts';
export { exportLoraGguf, exportModelGguf, tokenizerFromMetadata } from './export.ts';
export {
  readAdapterCheckpoint,
  readModelCheckpoint,
  type TrainingJob,
  type TrainingJobInput,
  type TrainingProgress,
  type TrainingResult,
  trainingJobSchema,
} from './job.ts';
export { type LlamaConfig, LORA_TARGETS, type LoraConfig, type LoraTarget, parameterCount } from './model.ts';
export {
  type EnsureStarterModelOptions,
  ensureStarterModel,
  prepareStarterModel,
  STARTER_RECIPE,
  type StarterModel,
  type StarterModelPreparation,
  type StarterProgress,
} from './starter.ts';
export { type RunTrainingOptions, runTraining, TrainingCancelledError, TrainingFailedError } from './supervisor.ts';
