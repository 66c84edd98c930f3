export type {
  ChatMessage,
  CompletionRequest,
  CompletionResult,
  FinishReason,
  GenerationParams,
  GenerationRequest,
  GenerationResult,
  LlmRuntime,
  LogLikelihoodRequest,
  LogLikelihoodResult,
  PromptMeter,
  ResponseFormat,
  RuntimeStatus,
  TokenAlternative,
  TokenLogprob,
} from './runtime.ts';
export { PromptTooLongError, UnsupportedValueError } from './runtime.ts';
