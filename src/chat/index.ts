export type { AnswerRecord, AnswerSource, AnswerStatus, AnswerStore } from './answers.ts';
export { createAnswerStore } from './answers.ts';
export { answerCost, type Pricing } from './cost.ts';
export { ModelNotFoundError, ModelNotReadyError, OverloadedError, RequestCancelledError } from './errors.ts';
export { createServingMetrics, type ServingMetrics } from './metrics.ts';
export type { PromptSettings } from './prompt.ts';
export {
  type ChatAnswer,
  type ChatEvents,
  type ChatRequest,
  type ChatService,
  type ChatServiceDeps,
  type ChatServiceStatus,
  type ChatStart,
  createChatService,
} from './service.ts';
