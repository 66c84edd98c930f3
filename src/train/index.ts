export { type Checkpoint, readCheckpoint, writeCheckpoint } from './checkpoint.ts';
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
export { type RunTrainingOptions, runTraining, TrainingCancelledError, TrainingFailedError } from './supervisor.ts';
