/** One turn of a conversation as the runtime sees it (OpenAI's roles, tool calls aside). */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** Sampling settings; unset fields fall back to the runtime's defaults. */
export interface GenerationParams {
  temperature?: number | undefined;
  topP?: number | undefined;
  maxTokens?: number | undefined;
  /** Generation ends before any of these strings; they are not part of the answer. */
  stop?: string[] | undefined;
  seed?: number | undefined;
}

export interface GenerationRequest extends GenerationParams {
  messages: ChatMessage[];
  /** Aborting stops generation; the result then has `finishReason: 'cancelled'`. */
  signal?: AbortSignal | undefined;
  /** Called with each piece of answer text as soon as it is final (stop sequences held back). */
  onText?: ((text: string) => void) | undefined;
}

export type FinishReason = 'stop' | 'length' | 'cancelled';

export interface GenerationResult {
  text: string;
  finishReason: FinishReason;
  /** The exact prompt the model read: the chat template applied to the messages. */
  prompt: string;
  promptTokens: number;
  /** Prompt tokens a runtime reused from its cache instead of evaluating them again. */
  cachedPromptTokens?: number;
  completionTokens: number;
  /** Time the runtime spent on this request (prompt evaluation + generation). */
  computeMs: number;
}

export interface RuntimeStatus {
  state: 'idle' | 'loading' | 'ready' | 'failed' | 'closed';
  detail: string;
  /** 0..1 while loading. */
  progress?: number;
}

/**
 * The port every model runtime implements: a local GGUF through node-llama-cpp, or any
 * OpenAI-compatible server. Callers respect `parallelism`: at most that many `generate`
 * calls run at once (the chat service queues the rest).
 */
export interface LlmRuntime {
  /** `llama-cpp` prices by compute time, `openai` by tokens. */
  readonly kind: 'llama-cpp' | 'openai';
  readonly parallelism: number;
  /** Loads weights or checks the upstream; safe to call once. */
  load(signal?: AbortSignal): Promise<void>;
  status(): RuntimeStatus;
  generate(request: GenerationRequest): Promise<GenerationResult>;
  /** Releases memory; generations still running are aborted. */
  close(): Promise<void>;
}
