export type {
  ChatMessage,
  FinishReason,
  GenerationParams,
  GenerationRequest,
  GenerationResult,
  LlmRuntime,
  RuntimeStatus,
} from './runtime.ts';
