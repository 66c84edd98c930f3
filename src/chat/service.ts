import { BerthaError } from '../core/errors.ts';
import { isoNow, newId } from '../core/ids.ts';
import type { Logger } from '../core/logger.ts';
import type { RetrievedChunk, Retriever } from '../knowledge/index.ts';
import type { ChatMessage, FinishReason, GenerationParams, LlmRuntime } from '../llm/index.ts';
import type { ModelBundle } from '../models/index.ts';
import type { AnswerSource, AnswerStatus, AnswerStore } from './answers.ts';
import { answerCost, type Pricing } from './cost.ts';
import { ModelNotFoundError, ModelNotReadyError, RequestCancelledError } from './errors.ts';
import { createSlotLimiter, type SlotLimiter } from './limiter.ts';
import type { ServingMetrics } from './metrics.ts';
import { buildPromptMessages, type PromptSettings, retrievalQuery } from './prompt.ts';

export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  params: GenerationParams;
  conversationId?: string | undefined;
  /** Aborted when the client goes away: generation stops and the answer is recorded as cancelled. */
  signal?: AbortSignal | undefined;
}

/** Known before the first token: what the streaming route sends in its first chunk. */
export interface ChatStart {
  id: string;
  conversationId: string;
  created: number;
  modelVersion: string;
  sources: AnswerSource[];
}

export interface ChatEvents {
  onStart?(start: ChatStart): void;
  onText?(text: string): void;
}

export interface ChatAnswer extends ChatStart {
  text: string;
  finishReason: FinishReason;
  promptTokens: number;
  cachedPromptTokens: number;
  completionTokens: number;
  ttftMs: number | null;
  latencyMs: number;
  cost: number;
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
  /**
   * Loads `bundle` next to the current one, then sends new requests to it; requests already
   * running (or queued) finish on the old bundle, which is released once they are done.
   */
  swapBundle(bundle: ModelBundle): Promise<void>;
  /** Waits for in-flight answers, then releases the runtimes. */
  close(): Promise<void>;
}

export interface ChatServiceDeps {
  modelName: string;
  bundle: ModelBundle | undefined;
  createRuntime(bundle: ModelBundle): LlmRuntime;
  retriever?: Retriever | undefined;
  answers: AnswerStore;
  metrics: ServingMetrics;
  prompt: PromptSettings;
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
  let current: Served | undefined;
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
    };
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

  return {
    modelName: deps.modelName,
    start() {
      if (!deps.bundle || current) return;
      const served = serve(deps.bundle);
      current = served;
      served.runtime.load(served.loadAbort.signal).catch((error: unknown) => {
        if (served.loadAbort.signal.aborted) return;
        logger.error({ err: error, version: served.bundle.version }, 'model failed to load');
      });
    },
    status() {
      if (!current) return { ready: true, detail: 'no model configured (bertha up --model <file.gguf>)' };
      const status = current.runtime.status();
      return {
        ready: status.state === 'ready',
        detail: `${current.bundle.version}: ${status.state}: ${status.detail}`,
        ...(status.progress !== undefined ? { progress: status.progress } : {}),
      };
    },
    bundle: () => current?.bundle,

    async complete(request, events = {}) {
      const arrived = performance.now();
      if (request.model !== deps.modelName) throw new ModelNotFoundError(request.model, deps.modelName);
      const served = current;
      if (!served || closed) throw new ModelNotReadyError(closed ? 'shutting down' : 'no model configured', 30);
      const status = served.runtime.status();
      if (status.state !== 'ready') throw new ModelNotReadyError(`${status.state}: ${status.detail}`);
      const version = served.bundle.version;
      served.inflight += 1;
      let releaseSlot: (() => void) | undefined;
      try {
        const acquiring = served.limiter.acquire(request.signal);
        gauges(served);
        releaseSlot = await acquiring;
      } catch (error) {
        release(served);
        gauges(served);
        metrics.requests.inc({
          model_version: version,
          status: error instanceof RequestCancelledError ? 'cancelled' : 'rejected',
        });
        throw error;
      }
      gauges(served);

      const id = newId('chatcmpl');
      const conversationId = request.conversationId ?? newId('conv');
      const createdAt = isoNow();
      let prompt = '';
      let text = '';
      let sources: AnswerSource[] = [];
      let ttftMs: number | null = null;
      let finishReason: FinishReason = 'stop';
      let status_: AnswerStatus = 'completed';
      let failure: unknown;
      let promptTokens = 0;
      let cachedPromptTokens = 0;
      let completionTokens = 0;
      let computeMs = 0;
      try {
        const chunks = await retrieve(served, request.messages, request.signal);
        sources = chunks.map(toSource);
        const start: ChatStart = {
          id,
          conversationId,
          created: Math.floor(Date.now() / 1000),
          modelVersion: version,
          sources,
        };
        events.onStart?.(start);
        const messages = buildPromptMessages(request.messages, chunks, {
          systemPrompt: served.bundle.systemPrompt ?? deps.prompt.systemPrompt,
          contextTemplate: deps.prompt.contextTemplate,
        });
        const onText = events.onText;
        const result = await served.runtime.generate({
          messages,
          temperature: request.params.temperature ?? served.bundle.generation.temperature,
          topP: request.params.topP ?? served.bundle.generation.topP,
          maxTokens: request.params.maxTokens ?? served.bundle.generation.maxTokens,
          stop: request.params.stop,
          seed: request.params.seed,
          signal: request.signal,
          onText: (piece) => {
            if (ttftMs === null) ttftMs = performance.now() - arrived;
            onText?.(piece);
          },
        });
        text = result.text;
        prompt = result.prompt;
        finishReason = result.finishReason;
        promptTokens = result.promptTokens;
        cachedPromptTokens = result.cachedPromptTokens ?? 0;
        completionTokens = result.completionTokens;
        computeMs = result.computeMs;
        if (finishReason === 'cancelled') status_ = 'cancelled';
      } catch (error) {
        failure = error;
        status_ = request.signal?.aborted ? 'cancelled' : 'failed';
        finishReason = 'cancelled';
      } finally {
        releaseSlot();
        release(served);
        gauges(served);
      }

      const latencyMs = performance.now() - arrived;
      const cost = answerCost(served.runtime.kind, deps.pricing, { promptTokens, completionTokens, computeMs });
      const labels = { model_version: version };
      metrics.requests.inc({ ...labels, status: status_ });
      metrics.promptTokens.inc(labels, promptTokens);
      metrics.cachedPromptTokens.inc(labels, cachedPromptTokens);
      metrics.generationTokens.inc(labels, completionTokens);
      metrics.computeSeconds.inc(labels, computeMs / 1000);
      metrics.cost.inc(labels, cost);
      if (status_ === 'completed') {
        metrics.e2eLatency.observe(labels, latencyMs / 1000);
        if (ttftMs !== null) metrics.timeToFirstToken.observe(labels, ttftMs / 1000);
        if (ttftMs !== null && completionTokens > 1 && latencyMs > ttftMs) {
          metrics.tokensPerSecond.observe(labels, (completionTokens - 1) / ((latencyMs - ttftMs) / 1000));
        }
      }
      const failureMessage = failure ? (failure as Error).message : null;
      if (failure && status_ === 'failed') logger.error({ err: failure, id, version }, 'generation failed');
      await deps.answers.record({
        id,
        conversationId,
        model: request.model,
        modelVersion: version,
        messages: request.messages,
        prompt,
        answer: text,
        params: request.params,
        sources,
        status: status_,
        finishReason,
        error: failureMessage,
        promptTokens,
        cachedPromptTokens,
        completionTokens,
        ttftMs,
        latencyMs,
        computeMs,
        cost,
        createdAt,
        finishedAt: isoNow(),
      });
      if (status_ === 'failed') {
        throw failure instanceof BerthaError
          ? failure
          : new BerthaError('generation_failed', `generation failed: ${failureMessage}`, 500, { id });
      }
      return {
        id,
        conversationId,
        created: Math.floor(Date.parse(createdAt) / 1000),
        modelVersion: version,
        sources,
        text,
        finishReason,
        promptTokens,
        cachedPromptTokens,
        completionTokens,
        ttftMs,
        latencyMs,
        cost,
      };
    },

    swapBundle(bundle) {
      const next = swapping.then(async () => {
        if (closed) throw new ModelNotReadyError('shutting down');
        const served = serve(bundle);
        try {
          await served.runtime.load(served.loadAbort.signal);
        } catch (error) {
          await served.runtime.close().catch(() => undefined);
          throw error;
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

    async close() {
      closed = true;
      await swapping;
      if (current) await retire(current);
    },
  };
}
