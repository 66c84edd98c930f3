/** What `runCommandTrainer` takes: the `trainer.command` section of the config. */
export type { CommandTrainerSpec } from '../config/index.ts';
export { runCommandTrainer } from './command.ts';
export {
  type BuiltDataset,
  buildDataset,
  type DatasetExample,
  heldOutQuestions,
  heldOutTexts,
  readExamples,
} from './dataset.ts';
export { exportLoraGguf, tokenizerFromMetadata } from './export.ts';
export { type FewShotExample, fewShotExamples, fewShotSystemPrompt } from './few-shot.ts';
export { readModelCheckpoint, type TrainingJobInput } from './job.ts';
export type { LoraTarget } from './model.ts';
export {
  baseVersion,
  findTrainedVersion,
  type RetrainDeps,
  RetrainingError,
  type RetrainReporter,
  resolveBase,
  retrain,
  type TrainingOutcome,
} from './retrain.ts';
export { ensureStarterModel, prepareStarterModel } from './starter.ts';
export { runTraining } from './supervisor.ts';
