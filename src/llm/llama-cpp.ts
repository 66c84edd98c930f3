import { availableParallelism } from 'node:os';
import {
  type ChatHistoryItem,
  type ChatWrapper,
  getLlama,
  JinjaTemplateChatWrapper,
  type Llama,
  LlamaChat,
  type LlamaContext,
  LlamaLogLevel,
  type LlamaModel,
  resolveChatWrapper,
} from 'node-llama-cpp';
import type { Logger } from '../core/logger.ts';
import type {
  ChatMessage,
  FinishReason,
  GenerationRequest,
  GenerationResult,
  LlmRuntime,
  RuntimeStatus,
} from './runtime.ts';

export interface LlamaCppRuntimeOptions {
  modelPath: string;
  adapters?: Array<{ path: string; scale: number }>;
  /** Jinja template used only when the GGUF has no `tokenizer.chat_template`. */
  fallbackChatTemplate?: string;
  /** 0: one thread per core. */
  maxThreads: number;
  gpu: 'auto' | 'cuda' | 'vulkan' | 'metal' | 'off';
  parallel: number;
  contextSize: number;
  batchSize: number;
  defaults: { temperature: number; topP: number; maxTokens: number };
  logger: Logger;
}

/** One context sequence with its chat evaluator. */
interface Slot {
  chat: LlamaChat;
  busy: boolean;
  /** Erasing the previous generation's tokens, which waits while other sequences decode. */
  clearing: Promise<void> | undefined;
}

const llamas = new Map<string, Promise<Llama>>();

/** The native backend is process-wide; one instance per thread/GPU setting is shared by every runtime. */
function sharedLlama(maxThreads: number, gpu: LlamaCppRuntimeOptions['gpu'], logger: Logger): Promise<Llama> {
  const key = `${maxThreads}:${gpu}`;
  let llama = llamas.get(key);
  if (!llama) {
    llama = getLlama({
      build: 'never',
      gpu: gpu === 'off' ? false : gpu,
      maxThreads,
      logLevel: LlamaLogLevel.warn,
      logger: (level, message) => {
        const text = message.trim();
        if (!text) return;
        if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal) logger.error({ llama: text }, 'llama.cpp');
        else logger.warn({ llama: text }, 'llama.cpp');
      },
    });
    llamas.set(key, llama);
    llama.catch(() => llamas.delete(key));
  }
  return llama;
}

export function toChatHistory(messages: ChatMessage[]): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = messages.map((message) => {
    if (message.role === 'system') return { type: 'system', text: message.content };
    if (message.role === 'user') return { type: 'user', text: message.content };
    return { type: 'model', response: [message.content] };
  });
  // An empty model turn at the end is where the answer goes (as LlamaChatSession does it).
  history.push({ type: 'model', response: [] });
  return history;
}

function chatWrapperFor(model: LlamaModel, fallbackTemplate: string | undefined): ChatWrapper {
  const ownTemplate = model.fileInfo.metadata.tokenizer?.chat_template;
  if (!ownTemplate && fallbackTemplate) return new JinjaTemplateChatWrapper({ template: fallbackTemplate });
  // Reads `tokenizer.chat_template` from the GGUF metadata and maps well-known templates
  // (Llama 2's `[INST]` format among them) to their specialised wrapper.
  return resolveChatWrapper(model);
}

/** LlmRuntime on a local GGUF through node-llama-cpp: one context, `parallel` sequences batched together. */
export function createLlamaCppRuntime(options: LlamaCppRuntimeOptions): LlmRuntime {
  const logger = options.logger;
  const maxThreads = options.maxThreads > 0 ? options.maxThreads : availableParallelism();
  let state: RuntimeStatus = { state: 'idle', detail: 'not loaded' };
  let model: LlamaModel | undefined;
  let context: LlamaContext | undefined;
  let chatWrapper: ChatWrapper | undefined;
  let slots: Slot[] = [];
  let loading: Promise<void> | undefined;
  const running = new Set<AbortController>();

  async function load(signal?: AbortSignal): Promise<void> {
    state = { state: 'loading', detail: `loading ${options.modelPath}`, progress: 0 };
    try {
      const llama = await sharedLlama(maxThreads, options.gpu, logger);
      model = await llama.loadModel({
        modelPath: options.modelPath,
        ...(signal ? { loadSignal: signal } : {}),
        onLoadProgress: (progress) => {
          state = { state: 'loading', detail: `loading ${options.modelPath}`, progress: progress * 0.9 };
        },
      });
      const adapters = options.adapters ?? [];
      context = await model.createContext({
        sequences: options.parallel,
        contextSize: { max: options.contextSize },
        batchSize: options.batchSize,
        threads: maxThreads,
        ...(adapters.length > 0
          ? { lora: { adapters: adapters.map((adapter) => ({ filePath: adapter.path, scale: adapter.scale })) } }
          : {}),
        ...(signal ? { createSignal: signal } : {}),
      });
      chatWrapper = chatWrapperFor(model, options.fallbackChatTemplate);
      const wrapper = chatWrapper;
      const ctx = context;
      slots = Array.from({ length: options.parallel }, () => ({
        chat: new LlamaChat({ contextSequence: ctx.getSequence(), chatWrapper: wrapper }),
        busy: false,
        clearing: undefined,
      }));
      state = {
        state: 'ready',
        detail: `${options.modelPath} (${llama.gpu || 'cpu'}, ${maxThreads} threads, ${options.parallel} sequences of ${ctx.contextSize} tokens, template ${wrapper.wrapperName})`,
      };
      logger.info(
        {
          model: options.modelPath,
          gpu: llama.gpu,
          maxThreads,
          sequences: options.parallel,
          template: wrapper.wrapperName,
        },
        'model loaded',
      );
    } catch (error) {
      state = { state: 'failed', detail: `cannot load ${options.modelPath}: ${(error as Error).message}` };
      await context?.dispose().catch(() => undefined);
      await model?.dispose().catch(() => undefined);
      throw error;
    }
  }

  /**
   * node-llama-cpp 3.21.1 holds the context lock for as long as any sequence keeps decoding,
   * and erasing a sequence's tokens needs that lock. A request that starts on a sequence still
   * holding an earlier answer while others decode would wait, prompt unread, until every running
   * generation ends: measured here, a second stream waited a full generation instead of joining
   * the batch. So a sequence that finishes while others still decode is emptied at once, queued
   * behind them rather than in front of the next request, and a request that arrives while
   * others decode takes an empty sequence and joins the running batch at its next step. With
   * nothing decoding the lock is free: a request then takes a sequence that kept its tokens,
   * so a conversation's next turn reuses the cached prefix, and empty ones stay for joiners.
   */
  function pickSlot(): Slot | undefined {
    const free = slots.filter((slot) => !slot.busy);
    const settled = free.filter((slot) => !slot.clearing);
    const empty = (slot: Slot) => slot.chat.sequence.nextTokenIndex === 0;
    const decoding = free.length < slots.length;
    return (decoding ? settled.find(empty) : settled.find((slot) => !empty(slot))) ?? settled[0] ?? free[0];
  }

  function clear(slot: Slot): void {
    const sequence = slot.chat.sequence;
    const clearing = sequence
      .clearHistory()
      .catch((error: unknown) => {
        if (!sequence.disposed) logger.warn({ err: error }, 'could not clear a context sequence');
      })
      .finally(() => {
        if (slot.clearing === clearing) slot.clearing = undefined;
      });
    slot.clearing = clearing;
  }

  return {
    kind: 'llama-cpp',
    parallelism: options.parallel,
    load(signal) {
      loading ??= load(signal);
      return loading;
    },
    status: () => state,
    async generate(request: GenerationRequest): Promise<GenerationResult> {
      const slot = pickSlot();
      if (state.state !== 'ready' || !model || !chatWrapper || !slot) {
        throw new Error(state.state === 'ready' ? 'no free context sequence' : `model is ${state.state}`);
      }
      slot.busy = true;
      const controller = new AbortController();
      running.add(controller);
      const onAbort = () => controller.abort(request.signal?.reason);
      request.signal?.addEventListener('abort', onAbort, { once: true });
      if (request.signal?.aborted) controller.abort(request.signal.reason);
      const started = performance.now();
      try {
        await slot.clearing;
        const history = toChatHistory(request.messages);
        // The sequence's meter counts every sampled token, those held back by stop detection included.
        const meterBefore = slot.chat.sequence.tokenMeter.getState();
        const stop = request.stop ?? [];
        const response = await slot.chat.generateResponse(history, {
          signal: controller.signal,
          stopOnAbortSignal: true,
          maxTokens: request.maxTokens ?? options.defaults.maxTokens,
          temperature: request.temperature ?? options.defaults.temperature,
          topP: request.topP ?? options.defaults.topP,
          ...(request.seed !== undefined ? { seed: request.seed } : {}),
          ...(stop.length > 0 ? { customStopTriggers: stop } : {}),
          ...(request.onText ? { onTextChunk: request.onText } : {}),
        });
        // Rendered after generation so that it adds nothing to the time to first token.
        const promptText = chatWrapper.generateContextState({ chatHistory: history }).contextText;
        const reason = response.metadata.stopReason;
        const finishReason: FinishReason =
          reason === 'abort' ? 'cancelled' : reason === 'maxTokens' ? 'length' : 'stop';
        return {
          text: response.response,
          finishReason,
          prompt: promptText.toString(),
          promptTokens: promptText.tokenize(model.tokenizer).length,
          completionTokens: slot.chat.sequence.tokenMeter.diff(meterBefore).usedOutputTokens,
          computeMs: performance.now() - started,
        };
      } finally {
        request.signal?.removeEventListener('abort', onAbort);
        running.delete(controller);
        slot.busy = false;
        if (slots.some((other) => other.busy)) clear(slot);
      }
    },
    async close() {
      for (const controller of running) controller.abort(new Error('runtime closing'));
      await loading?.catch(() => undefined);
      for (const slot of slots) slot.chat.dispose({ disposeSequence: true });
      slots = [];
      await context?.dispose();
      await model?.dispose();
      state = { state: 'closed', detail: 'closed' };
    },
  };
}
