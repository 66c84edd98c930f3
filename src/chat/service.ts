import { BerthaError } from '../core/errors.ts';
import { isoNow, newId } from '../core/ids.ts';
import type { Logger } from '../core/logger.ts';
import type { RetrievedChunk, Retriever } from '../knowledge/index.ts';
import type {
  ChatMessage,
  CompletionResult,
  FinishReason,
  GenerationParams,
  LlmRuntime,
  ResponseFormat,
  RuntimeStatus,
  TokenLogprob,
  ToolCall,
  ToolChoice,
  ToolDefinition,
} from '../llm/index.ts';
import { offeredTools } from '../llm/index.ts';
import { createFileDigests, digestBundleFiles, type FileDigests, type ModelBundle } from '../models/index.ts';
import { servedByChallenger } from '../rollout/index.ts';
import type { AnswerSource, AnswerStatus, AnswerStore } from './answers.ts';
import { fitPrompt, NOTHING_TRIMMED, type PromptTrim } from './context-budget.ts';
import { answerCost, type Pricing } from './cost.ts';
import { ModelNotFoundError, ModelNotReadyError, RequestCancelledError } from './errors.ts';
import { createSlotLimiter, type SlotLimiter } from './limiter.ts';
import type { ServingMetrics } from './metrics.ts';
import { buildPromptMessages, type PromptSettings, retrievalQuery } from './prompt.ts';
import {
  type AnswerProvenance,
  type BundleStamp,
  bundleStamp,
  effectiveGeneration,
  knowledgeSnapshot,
  systemPromptSource,
  type TemplateStamp,
  templateStamp,
} from './provenance.ts';

export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  params: GenerationParams;
  /** Choices to generate, one after another on one slot (OpenAI's `n`); unset: 1. */
  n?: number | undefined;
  responseFormat?: ResponseFormat | undefined;
  /** Functions the model may call; refused by a model whose chat template has no tool calling. */
  tools?: ToolDefinition[] | undefined;
  toolChoice?: ToolChoice | undefined;
  parallelToolCalls?: boolean | undefined;
  /** Log-probabilities of the answer tokens with this many alternatives each (0..20); unset: none. */
  logprobs?: number | undefined;
  conversationId?: string | undefined;
  /** Aborted when the client goes away: generation stops and the answer is recorded as cancelled. */
  signal?: AbortSignal | undefined;
}

/**
 * Raw prompts continued as they are (`/v1/completions`), for evaluators scoring the served
 * model: no chat template, no retrieval, no answer record.
 */
export interface PromptCompletionRequest {
  model: string;
  /** Completed one after another on one generation slot; `n` choices each. */
  prompts: string[];
  params: GenerationParams;
  /** Choices per prompt (OpenAI's `n`); unset: 1. */
  n?: number | undefined;
  /** Log-probabilities of the generated tokens with this many alternatives each (0..20); unset: none. */
  logprobs?: number | undefined;
  /** Also scores every prompt token (`echo` with `logprobs`). */
  promptLogprobs?: boolean | undefined;
  /** Served like a chat turn of this conversation (a canary's share included); unset: the champion. */
  conversationId?: string | undefined;
  signal?: AbortSignal | undefined;
}

export interface PromptCompletionEvents {
  /** Sent with the first text (or once the first choice ends without any), not before. */
  onStart?(start: { id: string; created: number; modelVersion: string }): void;
  onText?(index: number, text: string): void;
  onChoice?(index: number, choice: CompletionResult): void;
}

export interface PromptCompletion {
  id: string;
  created: number;
  modelVersion: string;
  /** `n` per prompt, in order: the first prompt's choices, then the second's. */
  choices: CompletionResult[];
  promptTokens: number;
  cachedPromptTokens: number;
  completionTokens: number;
}

/** Known before the first token: what the streaming route sends in its first chunk. */
export interface ChatStart {
  id: string;
  conversationId: string;
  created: number;
  modelVersion: string;
  /** The passages in the prompt. */
  sources: AnswerSource[];
  /** What was left out of the prompt to fit the model's context. */
  trimmed: PromptTrim;
  /** What produced the answer (of the first choice, when there are several: each has its own seed). */
  provenance: AnswerProvenance;
}

export interface ChatEvents {
  /** Sent with the first text (or once the first choice ends without any), not before. */
  onStart?(start: ChatStart): void;
  onText?(text: string, index: number): void;
  /** A choice that ended (cancelled ones aside), before the next one begins. */
  onChoice?(index: number, choice: ChatChoice): void;
}

export interface ChatChoice {
  /** Its answer record: the completion's id for the first choice, `<id>-<index>` for the others. */
  answerId: string;
  text: string;
  finishReason: FinishReason;
  completionTokens: number;
  /** The calls the answer ends with (`finishReason` is `tool_calls`). */
  toolCalls?: ToolCall[];
  /** One per answer token when the request asked for `logprobs`. */
  logprobs?: TokenLogprob[];
}

export interface ChatAnswer extends ChatStart {
  /** As many as the request's `n`, fewer when cancelled. */
  choices: ChatChoice[];
  /** Counted once, however many choices. */
  promptTokens: number;
  cachedPromptTokens: number;
  /** Every choice's together. */
  completionTokens: number;
  ttftMs: number | null;
  latencyMs: number;
  cost: number;
}

/** A choice as generated, with what its answer record keeps. */
interface GeneratedChoice extends ChatChoice {
  promptTokens: number;
  cachedPromptTokens: number;
  computeMs: number;
  ttftMs: number | null;
  latencyMs: number;
  seed: number | undefined;
}

export interface ChatServiceStatus {
  ready: boolean;
  detail: string;
  progress?: number;
}

export interface ChatService {
  /** The id clients pass as `model`. */
  readonly modelName: string;
  /** Begins loading the configured bundle without waiting for it. */
  start(): void;
  status(): ChatServiceStatus;
  /** The bundle answering new requests. */
  bundle(): ModelBundle | undefined;
  complete(request: ChatRequest, events?: ChatEvents): Promise<ChatAnswer>;
  /** Continues raw prompts on the served model, admitted like a chat turn (404, 503, 429). */
  completePrompts(request: PromptCompletionRequest, events?: PromptCompletionEvents): Promise<PromptCompletion>;
  /**
   * Loads `bundle` next to the current one, then sends new requests to it; requests already
   * running (or queued) finish on the old bundle, which is released once they are done.
   */
  swapBundle(bundle: ModelBundle): Promise<void>;
  /**
   * Serves `bundle` beside the champion to `share` of conversations (sticky: a hash of the
   * conversation id), loading it first; undefined stops the canary. A canary bundle that
   * becomes the champion (`swapBundle` with its version) is taken over without a second load.
   */
  setCanary(bundle: ModelBundle | undefined, share: number): Promise<void>;
  /** The canary being served, if any. */
  canary(): { bundle: ModelBundle; share: number } | undefined;
  /** Waits for in-flight answers, then releases the runtimes. */
  close(): Promise<void>;
}

export interface ChatServiceDeps {
  modelName: string;
  /** Digests of the served files (answer provenance); kept in memory only when not given. */
  fileDigests?: FileDigests;
  bundle: ModelBundle | undefined;
  createRuntime(bundle: ModelBundle): LlmRuntime;
  retriever?: Retriever | undefined;
  answers: AnswerStore;
  metrics: ServingMetrics;
  prompt: PromptSettings;
  /** `max_tokens` when neither the request nor the bundle sets one. */
  defaultMaxTokens: number;
  /** Sampling when neither the request nor the bundle sets it (`serving.generation`). */
  generationDefaults: { temperature: number; topP: number };
  /** What answers' provenance names besides the bundle: settings chosen outside it. */
  provenance: {
    /** The chat template a GGUF without one of its own is served with (`serving.chatTemplate`). */
    chatTemplate: string;
    /** Where an upstream bundle's requests go (`serving.upstream.baseUrl`). */
    upstreamBaseUrl: string;
    /** How the retriever searches; unset when not known (a retriever given from outside). */
    search?: { mode: string; embedder: string } | undefined;
  };
  queue: { maxWaiting: number; maxWaitMs: number };
  pricing: Pricing;
  logger: Logger;
}

interface Served {
  bundle: ModelBundle;
  runtime: LlmRuntime;
  limiter: SlotLimiter;
  inflight: number;
  /** Set when a newer bundle took over; the runtime closes when `inflight` reaches 0. */
  retired: boolean;
  drained: Promise<void>;
  onDrained(): void;
  /** Aborts a load still running when the bundle is retired (shutdown during start-up). */
  loadAbort: AbortController;
  template: TemplateStamp;
  /** Set once the bundle's files are digested; no answer is given before. */
  stamp?: BundleStamp;
  /** Why the files could not be digested: the bundle is then as good as failed to load. */
  stampError?: Error;
}

function toSource(chunk: RetrievedChunk): AnswerSource {
  return {
    documentId: chunk.documentId,
    documentKey: chunk.documentKey,
    documentVersion: chunk.documentVersion,
    chunkId: chunk.chunkId,
    score: chunk.score,
  };
}

export function createChatService(deps: ChatServiceDeps): ChatService {
  const { metrics, logger } = deps;
  // One cache for every bundle this service loads: a file unchanged since the last load is not read again.
  const fileDigests = deps.fileDigests ?? createFileDigests();
  let current: Served | undefined;
  let canary: { served: Served; share: number } | undefined;
  let swapping: Promise<void> = Promise.resolve();
  let closed = false;

  function serve(bundle: ModelBundle): Served {
    const runtime = deps.createRuntime(bundle);
    let onDrained = () => {};
    const drained = new Promise<void>((resolve) => {
      onDrained = resolve;
    });
    return {
      bundle,
      runtime,
      limiter: createSlotLimiter({ slots: runtime.parallelism, ...deps.queue }),
      inflight: 0,
      retired: false,
      drained,
      onDrained,
      loadAbort: new AbortController(),
      template: templateStamp(bundle, deps.prompt, deps.provenance.chatTemplate),
    };
  }

  /**
   * Loads the runtime and digests the bundle's files side by side (both read the same files,
   * the digests from a stream of their own), so answers carry digests of what was loaded.
   */
  async function load(served: Served): Promise<void> {
    const signal = served.loadAbort.signal;
    const [loaded, hashed] = await Promise.allSettled([
      served.runtime.load(signal),
      digestBundleFiles(served.bundle, fileDigests, signal),
    ]);
    if (loaded.status === 'rejected') throw loaded.reason;
    if (hashed.status === 'rejected') {
      const reason = hashed.reason as Error;
      served.stampError = reason;
      throw new BerthaError('model_files_unreadable', `cannot digest the model files: ${reason.message}`, 500, {
        version: served.bundle.version,
      });
    }
    served.stamp = bundleStamp(served.bundle, hashed.value, served.template, deps.provenance.upstreamBaseUrl);
    logger.info(
      {
        version: served.bundle.version,
        base: served.stamp.base.kind === 'gguf' ? served.stamp.base.digest : served.stamp.base.model,
        adapters: served.stamp.adapters.map((adapter) => adapter.digest),
      },
      'model files digested',
    );
  }

  /** The runtime's state, held at loading until the files are digested too. */
  function servedStatus(served: Served): RuntimeStatus {
    const status = served.runtime.status();
    if (status.state !== 'ready') return status;
    if (served.stampError)
      return { state: 'failed', detail: `cannot digest the model files: ${served.stampError.message}` };
    if (!served.stamp) return { state: 'loading', detail: 'digesting the model files', progress: 0.95 };
    return status;
  }

  function release(served: Served): void {
    served.inflight -= 1;
    if (served.retired && served.inflight === 0) served.onDrained();
  }

  async function retire(served: Served): Promise<void> {
    served.retired = true;
    served.loadAbort.abort(new Error('bundle retired'));
    if (served.inflight === 0) served.onDrained();
    await served.drained;
    await served.runtime.close();
    metrics.running.remove({ model_version: served.bundle.version });
    metrics.waiting.remove({ model_version: served.bundle.version });
  }

  function gauges(served: Served): void {
    const labels = { model_version: served.bundle.version };
    metrics.running.set(labels, served.limiter.running);
    metrics.waiting.set(labels, served.limiter.waiting);
  }

  async function retrieve(served: Served, messages: ChatMessage[], signal?: AbortSignal): Promise<RetrievedChunk[]> {
    if (!deps.retriever || !served.bundle.retrieval.enabled) return [];
    const query = retrievalQuery(messages);
    if (!query) return [];
    return deps.retriever.retrieve(query, { topK: served.bundle.retrieval.topK, ...(signal ? { signal } : {}) });
  }

  /**
   * The bundle that answers `conversationId` (the champion, or the canary for its share of
   * conversations; the champion when there is none) and one of its generation slots, or the
   * reason there is none: 404 for another model, 503 while loading, 429/503 when overloaded.
   */
  async function admit(
    model: string,
    conversationId: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<{ served: Served; stamp: BundleStamp; version: string; releaseSlot: () => void }> {
    if (model !== deps.modelName) throw new ModelNotFoundError(model, deps.modelName);
    const served =
      canary && conversationId !== undefined && servedByChallenger(conversationId, canary.share)
        ? canary.served
        : current;
    if (!served || closed) throw new ModelNotReadyError(closed ? 'shutting down' : 'no model configured', 30);
    const status = servedStatus(served);
    const stamp = served.stamp;
    if (status.state !== 'ready' || !stamp) throw new ModelNotReadyError(`${status.state}: ${status.detail}`);
    const version = served.bundle.version;
    served.inflight += 1;
    try {
      const acquiring = served.limiter.acquire(signal);
      gauges(served);
      const releaseSlot = await acquiring;
      gauges(served);
      return { served, stamp, version, releaseSlot };
    } catch (error) {
      release(served);
      gauges(served);
      metrics.requests.inc({
        model_version: version,
        status: error instanceof RequestCancelledError ? 'cancelled' : 'rejected',
      });
      throw error;
    }
  }

  return {
    modelName: deps.modelName,
    start() {
      if (!deps.bundle || current) return;
      const served = serve(deps.bundle);
      current = served;
      load(served).catch((error: unknown) => {
        if (served.loadAbort.signal.aborted) return;
        logger.error({ err: error, version: served.bundle.version }, 'model failed to load');
      });
    },
    status() {
      if (!current) return { ready: true, detail: 'no model configured (bertha up --model <file.gguf>)' };
      const status = servedStatus(current);
      const beside = canary
        ? `; canary ${canary.served.bundle.version} on ${Math.round(canary.share * 100)}% of conversations`
        : '';
      return {
        ready: status.state === 'ready',
        detail: `${current.bundle.version}: ${status.state}: ${status.detail}${beside}`,
        ...(status.progress !== undefined ? { progress: status.progress } : {}),
      };
    },
    bundle: () => current?.bundle,
    canary: () => (canary ? { bundle: canary.served.bundle, share: canary.share } : undefined),

    async complete(request, events = {}) {
      const arrived = performance.now();
      const conversationId = request.conversationId ?? newId('conv');
      const { served, stamp, version, releaseSlot } = await admit(request.model, conversationId, request.signal);

      const id = newId('chatcmpl');
      const createdAt = isoNow();
      const n = request.n ?? 1;
      const generated: GeneratedChoice[] = [];
      let prompt = '';
      let sources: AnswerSource[] = [];
      let trimmed = NOTHING_TRIMMED;
      const bundle = served.bundle;
      // Defaults filled here rather than in the runtime, so the answer's provenance states them.
      const sampling = {
        ...request.params,
        temperature: request.params.temperature ?? bundle.generation.temperature ?? deps.generationDefaults.temperature,
        topP: request.params.topP ?? bundle.generation.topP ?? deps.generationDefaults.topP,
      };
      const maxTokensRequested = request.params.maxTokens ?? bundle.generation.maxTokens ?? deps.defaultMaxTokens;
      let maxTokensGranted = maxTokensRequested;
      const retrieving = deps.retriever !== undefined && bundle.retrieval.enabled;
      const provenanceOf = (seed: number | undefined): AnswerProvenance => ({
        ...stamp,
        template: { ...stamp.template, systemPrompt: systemPromptSource(request.messages) },
        generation: effectiveGeneration(
          { ...sampling, seed },
          {
            maxTokens: maxTokensGranted,
            maxTokensRequested,
            responseFormat: request.responseFormat,
            logprobs: request.logprobs,
            tools: offeredTools(request.tools, request.toolChoice),
            toolChoice: request.toolChoice,
          },
        ),
        retrieval: {
          enabled: retrieving,
          topK: bundle.retrieval.topK,
          mode: retrieving ? (deps.provenance.search?.mode ?? null) : null,
          embedder: retrieving ? (deps.provenance.search?.embedder ?? null) : null,
        },
        knowledge: knowledgeSnapshot(sources),
      });
      // Each choice its own seed, so that choices differ and the request stays reproducible.
      const seedOf = (index: number) => (request.params.seed === undefined ? undefined : request.params.seed + index);
      let start: ChatStart | undefined;
      let started = false;
      // The start goes out with the first text, not before: until then a refusal (a schema the
      // runtime cannot enforce) can still be an HTTP error instead of a broken stream.
      const begin = () => {
        if (started || !start) return;
        started = true;
        events.onStart?.(start);
      };
      let status: AnswerStatus = 'completed';
      let rejected = false;
      let failure: unknown;
      try {
        const retrieved = await retrieve(served, request.messages, request.signal);
        const settings: PromptSettings = {
          systemPrompt: served.bundle.systemPrompt ?? deps.prompt.systemPrompt,
          contextTemplate: deps.prompt.contextTemplate,
        };
        const meter = served.runtime.promptMeter();
        const fitted = meter
          ? fitPrompt({
              messages: request.messages,
              chunks: retrieved,
              settings,
              meter,
              maxTokens: maxTokensRequested,
              tools: offeredTools(request.tools, request.toolChoice),
            })
          : {
              messages: buildPromptMessages(request.messages, retrieved, settings),
              chunks: retrieved,
              maxTokens: maxTokensRequested,
              trim: NOTHING_TRIMMED,
            };
        sources = fitted.chunks.map(toSource);
        trimmed = fitted.trim;
        maxTokensGranted = fitted.maxTokens;
        start = {
          id,
          conversationId,
          created: Math.floor(Date.now() / 1000),
          modelVersion: version,
          sources,
          trimmed,
          provenance: provenanceOf(seedOf(0)),
        };
        for (let index = 0; index < n; index++) {
          let ttftMs: number | null = null;
          const seed = seedOf(index);
          const result = await served.runtime.generate({
            ...sampling,
            messages: fitted.messages,
            maxTokens: fitted.maxTokens,
            seed,
            responseFormat: request.responseFormat,
            tools: request.tools,
            toolChoice: request.toolChoice,
            parallelToolCalls: request.parallelToolCalls,
            logprobs: request.logprobs,
            signal: request.signal,
            onText: (piece) => {
              if (ttftMs === null) ttftMs = performance.now() - arrived;
              begin();
              events.onText?.(piece, index);
            },
          });
          prompt = result.prompt;
          const choice: GeneratedChoice = {
            answerId: index === 0 ? id : `${id}-${index}`,
            text: result.text,
            finishReason: result.finishReason,
            promptTokens: result.promptTokens,
            cachedPromptTokens: result.cachedPromptTokens ?? 0,
            completionTokens: result.completionTokens,
            computeMs: result.computeMs,
            ttftMs,
            latencyMs: performance.now() - arrived,
            seed,
            ...(result.toolCalls ? { toolCalls: result.toolCalls } : {}),
            ...(result.logprobs ? { logprobs: result.logprobs } : {}),
          };
          generated.push(choice);
          if (result.finishReason === 'cancelled') {
            status = 'cancelled';
            break;
          }
          begin();
          events.onChoice?.(index, choice);
        }
      } catch (error) {
        failure = error;
        // The client's input (a prompt over the context, a schema the runtime cannot enforce),
        // not a serving failure.
        rejected = !request.signal?.aborted && BerthaError.isInstance(error) && error.status < 500;
        status = request.signal?.aborted ? 'cancelled' : 'failed';
      } finally {
        releaseSlot();
        release(served);
        gauges(served);
      }

      if (rejected) {
        // Nothing to record: no answer was generated for this input.
        metrics.requests.inc({ model_version: version, status: 'rejected' });
        throw failure;
      }
      const latencyMs = performance.now() - arrived;
      const failureMessage = failure ? (failure as Error).message : null;
      if (failure && status === 'failed') logger.error({ err: failure, id, version }, 'generation failed');
      // The choice that failed or was cut short is recorded too, with what it had.
      if (failure || generated.length === 0) {
        generated.push({
          answerId: generated.length === 0 ? id : `${id}-${generated.length}`,
          text: '',
          finishReason: 'cancelled',
          promptTokens: 0,
          cachedPromptTokens: 0,
          completionTokens: 0,
          computeMs: 0,
          ttftMs: null,
          latencyMs,
          seed: undefined,
        });
      }
      const costs = generated.map((choice) => answerCost(served.runtime.kind, deps.pricing, choice));
      const total = (count: (choice: GeneratedChoice) => number) =>
        generated.reduce((sum, choice) => sum + count(choice), 0);
      const completionTokens = total((choice) => choice.completionTokens);
      const ttftMs = generated[0]?.ttftMs ?? null;
      const labels = { model_version: version };
      metrics.requests.inc({ ...labels, status });
      metrics.promptTokens.inc(
        labels,
        total((choice) => choice.promptTokens),
      );
      metrics.cachedPromptTokens.inc(
        labels,
        total((choice) => choice.cachedPromptTokens),
      );
      metrics.generationTokens.inc(labels, completionTokens);
      metrics.computeSeconds.inc(labels, total((choice) => choice.computeMs) / 1000);
      metrics.cost.inc(
        labels,
        costs.reduce((sum, cost) => sum + cost, 0),
      );
      if (status === 'completed') {
        metrics.e2eLatency.observe(labels, latencyMs / 1000);
        if (ttftMs !== null) metrics.timeToFirstToken.observe(labels, ttftMs / 1000);
        if (ttftMs !== null && completionTokens > 1 && latencyMs > ttftMs) {
          metrics.tokensPerSecond.observe(labels, (completionTokens - 1) / ((latencyMs - ttftMs) / 1000));
        }
      }
      const last = generated.length - 1;
      for (const [index, choice] of generated.entries()) {
        await deps.answers.record({
          id: choice.answerId,
          conversationId,
          model: request.model,
          modelVersion: version,
          messages: request.messages,
          prompt,
          answer: choice.text,
          ...(choice.toolCalls ? { toolCalls: choice.toolCalls } : {}),
          params: { ...request.params, seed: choice.seed },
          sources,
          trimmed,
          provenance: provenanceOf(seedOf(index)),
          status: index === last ? status : 'completed',
          finishReason: choice.finishReason,
          error: index === last ? failureMessage : null,
          promptTokens: choice.promptTokens,
          cachedPromptTokens: choice.cachedPromptTokens,
          completionTokens: choice.completionTokens,
          ttftMs: choice.ttftMs,
          latencyMs: choice.latencyMs,
          computeMs: choice.computeMs,
          cost: costs[index] ?? 0,
          createdAt,
          finishedAt: isoNow(),
        });
      }
      if (status === 'failed') {
        throw failure instanceof BerthaError
          ? failure
          : new BerthaError('generation_failed', `generation failed: ${failureMessage}`, 500, { id });
      }
      const first = generated[0];
      return {
        id,
        conversationId,
        created: Math.floor(Date.parse(createdAt) / 1000),
        modelVersion: version,
        sources,
        trimmed,
        provenance: provenanceOf(seedOf(0)),
        choices: generated.map(({ answerId, text, finishReason, completionTokens, toolCalls, logprobs }) => ({
          answerId,
          text,
          finishReason,
          completionTokens,
          ...(toolCalls ? { toolCalls } : {}),
          ...(logprobs ? { logprobs } : {}),
        })),
        // The prompt as OpenAI counts it: once, however many choices.
        promptTokens: first?.promptTokens ?? 0,
        cachedPromptTokens: first?.cachedPromptTokens ?? 0,
        completionTokens,
        ttftMs,
        latencyMs,
        cost: costs.reduce((sum, cost) => sum + cost, 0),
      };
    },

    async completePrompts(request, events = {}) {
      const { served, version, releaseSlot } = await admit(request.model, request.conversationId, request.signal);
      const id = newId('cmpl').replace('_', '-');
      const created = Math.floor(Date.now() / 1000);
      const choices: CompletionResult[] = [];
      const sum = (count: (choice: CompletionResult) => number) =>
        choices.reduce((total, choice) => total + count(choice), 0);
      let status: AnswerStatus | 'rejected' = 'completed';
      let started = false;
      // As for chat: the start waits for the first text, so that a refusal is still an HTTP error.
      const begin = () => {
        if (started) return;
        started = true;
        events.onStart?.({ id, created, modelVersion: version });
      };
      const n = request.n ?? 1;
      try {
        generating: for (const [promptIndex, prompt] of request.prompts.entries()) {
          for (let copy = 0; copy < n; copy++) {
            // OpenAI's order: every choice of the first prompt, then the second prompt's.
            const index = promptIndex * n + copy;
            const choice = await served.runtime.complete({
              ...request.params,
              prompt,
              temperature: request.params.temperature ?? served.bundle.generation.temperature,
              topP: request.params.topP ?? served.bundle.generation.topP,
              seed: request.params.seed === undefined ? undefined : request.params.seed + copy,
              logprobs: request.logprobs,
              promptLogprobs: request.promptLogprobs,
              signal: request.signal,
              onText: (piece) => {
                begin();
                events.onText?.(index, piece);
              },
            });
            choices.push(choice);
            if (choice.finishReason === 'cancelled') {
              status = 'cancelled';
              break generating;
            }
            begin();
            events.onChoice?.(index, choice);
          }
        }
      } catch (error) {
        // The client's input (a prompt over the context, say): nothing failed on our side.
        const refused = BerthaError.isInstance(error) && error.status < 500;
        status = refused ? 'rejected' : request.signal?.aborted ? 'cancelled' : 'failed';
        if (status === 'failed') logger.error({ err: error, id, version }, 'completion failed');
        throw error instanceof BerthaError || status !== 'failed'
          ? error
          : new BerthaError('generation_failed', `generation failed: ${(error as Error).message}`, 500, { id });
      } finally {
        releaseSlot();
        release(served);
        gauges(served);
        // Counted with the chat turns, since they share the slots; not in the latency histograms
        // or the answer records, which describe answers people read.
        const labels = { model_version: version };
        metrics.requests.inc({ ...labels, status });
        metrics.promptTokens.inc(
          labels,
          sum((choice) => choice.promptTokens),
        );
        metrics.cachedPromptTokens.inc(
          labels,
          sum((choice) => choice.cachedPromptTokens ?? 0),
        );
        metrics.generationTokens.inc(
          labels,
          sum((choice) => choice.completionTokens),
        );
        metrics.computeSeconds.inc(labels, sum((choice) => choice.computeMs) / 1000);
        metrics.cost.inc(
          labels,
          answerCost(served.runtime.kind, deps.pricing, {
            promptTokens: sum((choice) => choice.promptTokens),
            completionTokens: sum((choice) => choice.completionTokens),
            computeMs: sum((choice) => choice.computeMs),
          }),
        );
      }
      // Usage counts each prompt once, however many choices it has (as OpenAI does).
      const firsts = choices.filter((_, index) => index % n === 0);
      return {
        id,
        created,
        modelVersion: version,
        choices,
        promptTokens: firsts.reduce((total, choice) => total + choice.promptTokens, 0),
        cachedPromptTokens: firsts.reduce((total, choice) => total + (choice.cachedPromptTokens ?? 0), 0),
        completionTokens: sum((choice) => choice.completionTokens),
      };
    },

    swapBundle(bundle) {
      const next = swapping.then(async () => {
        if (closed) throw new ModelNotReadyError('shutting down');
        let served: Served;
        if (canary && canary.served.bundle.version === bundle.version) {
          // A promoted canary: already loaded and warm.
          served = canary.served;
          canary = undefined;
        } else {
          served = serve(bundle);
          try {
            await load(served);
          } catch (error) {
            await served.runtime.close().catch(() => undefined);
            throw error;
          }
        }
        const previous = current;
        current = served;
        logger.info({ from: previous?.bundle.version, to: bundle.version }, 'model bundle swapped');
        if (previous) {
          void retire(previous).catch((error: unknown) =>
            logger.error({ err: error, version: previous.bundle.version }, 'releasing the previous bundle failed'),
          );
        }
      });
      swapping = next.catch(() => undefined);
      return next;
    },

    setCanary(bundle, share) {
      const next = swapping.then(async () => {
        if (closed) throw new ModelNotReadyError('shutting down');
        if (!bundle) {
          const previous = canary;
          canary = undefined;
          if (previous) {
            logger.info({ version: previous.served.bundle.version }, 'canary stopped');
            await retire(previous.served);
          }
          return;
        }
        if (canary && canary.served.bundle.version === bundle.version) {
          canary.share = share;
          logger.info({ version: bundle.version, share }, 'canary share changed');
          return;
        }
        const served = serve(bundle);
        try {
          await load(served);
        } catch (error) {
          await served.runtime.close().catch(() => undefined);
          throw error;
        }
        const previous = canary;
        canary = { served, share };
        logger.info({ version: bundle.version, share }, 'canary serving');
        if (previous) await retire(previous.served);
      });
      swapping = next.catch(() => undefined);
      return next;
    },

    async close() {
      closed = true;
      await swapping;
      if (canary) await retire(canary.served);
      if (current) await retire(current);
    },
  };
}
