import { BerthaError } from '../core/errors.ts';

/** A function the model called: its arguments are JSON text, as OpenAI's `tool_calls` carry them. */
export interface ToolCall {
  /** OpenAI's `call_…` id; a `tool` message answers the call with this id. */
  id: string;
  name: string;
  arguments: string;
}

/**
 * One turn of a conversation as the runtime sees it, with OpenAI's roles: an assistant turn
 * may call tools (`toolCalls`), and a `tool` turn answers one call (`toolCallId`).
 */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool';
  content: string;
  toolCalls?: ToolCall[] | undefined;
  toolCallId?: string | undefined;
}

/** A function the model may call (OpenAI's `tools[].function`). */
export interface ToolDefinition {
  name: string;
  description?: string | undefined;
  /** JSON Schema of the arguments object; unset: no arguments. */
  parameters?: Record<string, unknown> | undefined;
}

/**
 * OpenAI's `tool_choice`: `none` never calls, `auto` lets the model choose between text and
 * calls, `required` calls at least one tool, `{ name }` calls that one.
 */
export type ToolChoice = 'none' | 'auto' | 'required' | { name: string };

/** Sampling settings; unset fields fall back to the runtime's defaults. */
export interface GenerationParams {
  temperature?: number | undefined;
  topP?: number | undefined;
  maxTokens?: number | undefined;
  /** Generation ends before any of these strings; they are not part of the answer. */
  stop?: string[] | undefined;
  /** The same seed, prompt and settings give the same text; unset: a fresh random seed per generation. */
  seed?: number | undefined;
  /** Added to a token's logit before sampling, by token id (OpenAI's `logit_bias`, -100..100); -100 bans it in practice. */
  logitBias?: Readonly<Record<string, number>> | undefined;
  /** Subtracted once from the logit of every token already in the answer (OpenAI's `presence_penalty`, -2..2). */
  presencePenalty?: number | undefined;
  /** Subtracted from a token's logit once per time it is already in the answer (OpenAI's `frequency_penalty`, -2..2). */
  frequencyPenalty?: number | undefined;
}

/**
 * OpenAI's `response_format`: any JSON object, or JSON valid against a schema. Runtimes that
 * constrain decoding with a grammar refuse a schema they cannot enforce (`UnsupportedValueError`).
 */
export type ResponseFormat =
  | { type: 'json_object' }
  | { type: 'json_schema'; name: string; schema?: Record<string, unknown> | undefined; strict?: boolean | undefined };

export interface GenerationRequest extends GenerationParams {
  messages: ChatMessage[];
  /** Unset: free text. */
  responseFormat?: ResponseFormat | undefined;
  /**
   * Functions the model may call, shown to it through its chat template. A runtime whose
   * template has no tool calling refuses them (`UnsupportedValueError`).
   */
  tools?: ToolDefinition[] | undefined;
  /** Unset: `auto` when there are tools. */
  toolChoice?: ToolChoice | undefined;
  /** False: at most one call per answer (OpenAI's `parallel_tool_calls`); unset: several allowed. */
  parallelToolCalls?: boolean | undefined;
  /**
   * Asks for the log-probability of every answer token with this many most likely
   * alternatives each (0..20, OpenAI's `top_logprobs`); unset: none.
   */
  logprobs?: number | undefined;
  /** Aborting stops generation; the result then has `finishReason: 'cancelled'`. */
  signal?: AbortSignal | undefined;
  /** Called with each piece of answer text as soon as it is final (stop sequences held back). */
  onText?: ((text: string) => void) | undefined;
}

/** One token, as OpenAI's `logprobs` describe it. */
export interface TokenAlternative {
  /** The token's text; a piece of a multi-byte character reads as `bytes:\xe2\x80` (OpenAI's way). */
  token: string;
  /** The token's UTF-8 bytes. */
  bytes: number[];
  /** Natural log of the model's own probability (softmax at temperature 1, before any sampling filter). */
  logprob: number;
}

export interface TokenLogprob extends Omit<TokenAlternative, 'logprob'> {
  /** Null for the first token of a prompt: nothing comes before it to predict it. */
  logprob: number | null;
  /** The most likely tokens at this position, most likely first (as many as asked). */
  top: TokenAlternative[];
}

/** `tool_calls`: the answer ends with calls for the client to run (`GenerationResult.toolCalls`). */
export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'cancelled';

export interface GenerationResult {
  /** The answer's text; with tool calls, what the model wrote before them (often empty). */
  text: string;
  finishReason: FinishReason;
  /** The calls the answer ends with; set only when `finishReason` is `tool_calls`. */
  toolCalls?: ToolCall[];
  /** The exact prompt the model read: the chat template applied to the messages. */
  prompt: string;
  promptTokens: number;
  /** Prompt tokens a runtime reused from its cache instead of evaluating them again. */
  cachedPromptTokens?: number;
  completionTokens: number;
  /** Time the runtime spent on this request (prompt evaluation + generation). */
  computeMs: number;
  /** One per answer token when `logprobs` was asked. */
  logprobs?: TokenLogprob[];
}

/** A raw-text completion (OpenAI's legacy `/v1/completions`): no chat template, no retrieval. */
export interface CompletionRequest extends GenerationParams {
  /** Read as is; the runtime adds BOS where the model asks for it, as llama.cpp's server does. */
  prompt: string;
  /** As `GenerationRequest.logprobs`, for the generated tokens. */
  logprobs?: number | undefined;
  /** Also scores every prompt token (`echo` with `logprobs`); needs `logprobs`. */
  promptLogprobs?: boolean | undefined;
  signal?: AbortSignal | undefined;
  onText?: ((text: string) => void) | undefined;
}

export interface CompletionResult {
  /** The generated text only; echoing the prompt is the caller's business. */
  text: string;
  finishReason: FinishReason;
  promptTokens: number;
  cachedPromptTokens?: number;
  completionTokens: number;
  computeMs: number;
  /** With `promptLogprobs`: every prompt token (BOS included where the model has one), the first with a null logprob. */
  promptLogprobs?: TokenLogprob[];
  /** With `logprobs`: the generated tokens that make up `text`. */
  logprobs?: TokenLogprob[];
}

/** The tools a model is shown: none when the request has none or `tool_choice` is `none`. */
export function offeredTools(
  tools: readonly ToolDefinition[] | undefined,
  choice: ToolChoice | undefined,
): readonly ToolDefinition[] | undefined {
  return choice === 'none' || !tools || tools.length === 0 ? undefined : tools;
}

/** The prompt alone fills the model's context (OpenAI's `context_length_exceeded`). */
export class PromptTooLongError extends BerthaError {
  constructor(contextSize: number, promptTokens: number) {
    super(
      'context_length_exceeded',
      `This model's maximum context length is ${contextSize} tokens, but the prompt has ${promptTokens} tokens; shorten the prompt.`,
      400,
      { param: 'prompt', contextSize, promptTokens },
    );
  }
}

/** The request asks for something the runtime cannot do, in a field OpenAI's API has (OpenAI's `unsupported_value`). */
export class UnsupportedValueError extends BerthaError {
  constructor(param: string, message: string) {
    super('unsupported_value', message, 400, { param });
  }
}

export interface RuntimeStatus {
  state: 'idle' | 'loading' | 'ready' | 'failed' | 'closed';
  detail: string;
  /** 0..1 while loading. */
  progress?: number;
}

/** One log-likelihood question, as lm-evaluation-harness asks it: how likely is `continuation` after `context`? */
export interface LogLikelihoodRequest {
  /** Raw text, no chat template: the evaluator decides the format. */
  context: string;
  continuation: string;
}

export interface LogLikelihoodResult {
  /** Sum of the natural-log probabilities of the continuation's tokens. */
  logprob: number;
  /** Tokens of the continuation that were scored. */
  tokens: number;
  /** Whether every continuation token was the model's most likely next token. */
  greedy: boolean;
  /** Context tokens dropped from the left because context + continuation exceeded the window. */
  truncated: number;
}

/** How a runtime counts a prompt against its context; the chat service budgets prompts with it. */
export interface PromptMeter {
  /** Tokens one request may use, prompt and answer together. */
  readonly contextSize: number;
  /**
   * Tokens of `messages` with the chat template applied, exactly as `generate` would evaluate
   * them, with `tools` shown to the model (see `offeredTools`).
   */
  count(messages: ChatMessage[], tools?: readonly ToolDefinition[] | undefined): number;
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
  /**
   * Continues raw prompt text, optionally with per-token log-probabilities of the prompt and
   * of what it generated; counted against `parallelism` like `generate`. Throws
   * `PromptTooLongError` when the prompt leaves no room in the context.
   */
  complete(request: CompletionRequest): Promise<CompletionResult>;
  /**
   * Set once loaded when the runtime knows its context (a local GGUF); undefined for an
   * upstream server, which enforces its own limit and answers its own 400.
   */
  promptMeter(): PromptMeter | undefined;
  /**
   * Scores continuations by the model's own probabilities (for evaluation suites and
   * perplexity). Runs on one of the runtime's sequences, so callers count it against
   * `parallelism` like a generation. Throws `UnsupportedError` where the runtime cannot.
   */
  logLikelihood(requests: LogLikelihoodRequest[], signal?: AbortSignal): Promise<LogLikelihoodResult[]>;
  /** Releases memory; generations still running are aborted. */
  close(): Promise<void>;
}
