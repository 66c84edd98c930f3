import { availableParallelism } from 'node:os';
import type { ChatHistoryItem, ChatWrapper, Llama, LlamaChat, LlamaContext, LlamaModel, Token } from 'node-llama-cpp';
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
}

type NodeLlamaCpp = typeof import('node-llama-cpp');

const llamas = new Map<string, Promise<Llama>>();

/** The native backend is process-wide; one instance per thread/GPU setting is shared by every runtime. */
function sharedLlama(
  { getLlama, LlamaLogLevel }: NodeLlamaCpp,
  maxThreads: number,
  gpu: LlamaCppRuntimeOptions['gpu'],
  logger: Logger,
): Promise<Llama> {
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

function chatWrapperFor(
  { JinjaTemplateChatWrapper, resolveChatWrapper }: NodeLlamaCpp,
  model: LlamaModel,
  fallbackTemplate: string | undefined,
): ChatWrapper {
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
      // Imported here, not at start-up: node-llama-cpp takes over half a second to import,
      // and `bertha up` answers /healthz without waiting for it.
      const llamaCpp: NodeLlamaCpp = await import('node-llama-cpp');
      const llama = await sharedLlama(llamaCpp, maxThreads, options.gpu, logger);
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
      chatWrapper = chatWrapperFor(llamaCpp, model, options.fallbackChatTemplate);
      const wrapper = chatWrapper;
      const ctx = context;
      slots = Array.from({ length: options.parallel }, () => ({
        chat: new llamaCpp.LlamaChat({ contextSequence: ctx.getSequence(), chatWrapper: wrapper }),
        busy: false,
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
   * The free sequence whose cached tokens share the longest prefix with the prompt, as
   * llama.cpp's server picks a slot: the shared part (system prompt, retrieval template,
   * earlier turns of a conversation) is not evaluated again, and LlamaChat erases only what
   * differs. That erase needs the context lock, which the patched node-llama-cpp (see
   * patches/) releases between batches, so a request joining running generations waits at most
   * one batch for it.
   */
  function pickSlot(prompt: readonly Token[]): { slot: Slot; shared: number } | undefined {
    let best: { slot: Slot; shared: number; held: number } | undefined;
    for (const slot of slots) {
      if (slot.busy) continue;
      const held = slot.chat.sequence.contextTokens;
      let shared = 0;
      while (shared < held.length && shared < prompt.length && held[shared] === prompt[shared]) shared++;
      // On a tie, the sequence holding less, so longer caches stay for the prompts that match them.
      if (!best || shared > best.shared || (shared === best.shared && held.length < best.held)) {
        best = { slot, shared, held: held.length };
      }
    }
    return best;
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
      if (state.state !== 'ready' || !model || !chatWrapper) throw new Error(`model is ${state.state}`);
      const history = toChatHistory(request.messages);
      const promptText = chatWrapper.generateContextState({ chatHistory: history }).contextText;
      const promptTokens = promptText.tokenize(model.tokenizer);
      const picked = pickSlot(promptTokens);
      if (!picked) throw new Error('no free context sequence');
      const slot = picked.slot;
      slot.busy = true;
      const controller = new AbortController();
      running.add(controller);
      const onAbort = () => controller.abort(request.signal?.reason);
      request.signal?.addEventListener('abort', onAbort, { once: true });
      if (request.signal?.aborted) controller.abort(request.signal.reason);
      const started = performance.now();
      try {
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
        const reason = response.metadata.stopReason;
        const finishReason: FinishReason =
          reason === 'abort' ? 'cancelled' : reason === 'maxTokens' ? 'length' : 'stop';
        return {
          text: response.response,
          finishReason,
          prompt: promptText.toString(),
          promptTokens: promptTokens.length,
          // The last prompt token is always evaluated again: its logits give the first answer token.
          cachedPromptTokens: Math.min(picked.shared, Math.max(0, promptTokens.length - 1)),
          completionTokens: slot.chat.sequence.tokenMeter.diff(meterBefore).usedOutputTokens,
          computeMs: performance.now() - started,
        };
      } finally {
        request.signal?.removeEventListener('abort', onAbort);
        running.delete(controller);
        slot.busy = false;
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
