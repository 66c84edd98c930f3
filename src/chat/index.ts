export type { AnswerRecord, AnswerSource, AnswerStatus, AnswerStore } from './answers.ts';
export { createAnswerStore } from './answers.ts';
export type { PromptTrim } from './context-budget.ts';
export { answerCost, type Pricing } from './cost.ts';
export {
  ContextLengthExceededError,
  ModelNotFoundError,
  ModelNotReadyError,
  OverloadedError,
  RequestCancelledError,
  UnsupportedParameterError,
} from './errors.ts';
export { createServingMetrics, type ServingMetrics } from './metrics.ts';
export { buildPromptMessages, type PromptPassage, type PromptSettings } from './prompt.ts';
export { type AnswerProvenance, type EffectiveGeneration, provenanceJson } from './provenance.ts';
export {
  type ChatAnswer,
  type ChatChoice,
  type ChatEvents,
  type ChatRequest,
  type ChatService,
  type ChatServiceDeps,
  type ChatServiceStatus,
  type ChatStart,
  createChatService,
  type PromptCompletion,
  type PromptCompletionEvents,
  type PromptCompletionRequest,
} from './service.ts';
