import { randomInt } from 'node:crypto';
import { availableParallelism } from 'node:os';
import type {
  ChatHistoryItem,
  ChatWrapper,
  GbnfJsonSchema,
  Llama,
  LlamaChat,
  LlamaContext,
  LlamaContextSequence,
  LlamaGrammar,
  LlamaModel,
  Token,
  TokenBias,
} from 'node-llama-cpp';
import { ValidationError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { BYTE_LEVEL_CHARS } from '../gguf/index.ts';
import { createDecodeGate } from './decode-gate.ts';
import { finiteNumbers, grammarSchemaFor } from './json-schema-grammar.ts';
import {
  type ChatMessage,
  type CompletionRequest,
  type CompletionResult,
  type FinishReason,
  type GenerationParams,
  type GenerationRequest,
  type GenerationResult,
  type LlmRuntime,
  type LogLikelihoodRequest,
  type LogLikelihoodResult,
  type PromptMeter,
  PromptTooLongError,
  type ResponseFormat,
  type RuntimeStatus,
  type TokenAlternative,
  type TokenLogprob,
} from './runtime.ts';
import { chooseThreads, type ThreadChoice } from './thread-choice.ts';
import { piecesPerToken } from './token-pieces.ts';

export interface LlamaCppRuntimeOptions {
  modelPath: string;
  adapters?: Array<{ path: string; scale: number }>;
  /** Jinja template used only when the GGUF has no `tokenizer.chat_template`. */
  fallbackChatTemplate?: string;
  /**
   * `auto`: the fastest of a few thread counts, measured at the first load of each model file
   * and kept in `threadChoiceFile` (see thread-choice.ts). 0: one thread per core.
   */
  maxThreads: number | 'auto';
  /** Where `auto` keeps its measured choices (under the data dir); unset: measured at every load. */
  threadChoiceFile?: string;
  gpu: 'auto' | 'cuda' | 'vulkan' | 'metal' | 'off';
  parallel: number;
  /**
   * Tokens per sequence. 0: the model's training context, at most 4096. A larger value than
   * the training context is honoured (with a warning: positions past it were never trained).
   */
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

/** Used when `contextSize` is 0: models trained on 128k tokens would otherwise take all memory for KV cache. */
const DEFAULT_MAX_CONTEXT = 4096;

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
        // llama.cpp warns at every load about things Bertha already reports in its own words
        // (a context above the training context, among others): kept for debugging only.
        else logger.debug({ llama: text }, 'llama.cpp');
      },
    });
    llamas.set(key, llama);
    llama.catch(() => llamas.delete(key));
  }
  return llama;
}

/** Which llama.cpp binary serves: a build for this machine (`npm run build:llama`) or node-llama-cpp's prebuilt one. */
function binaryDetail(buildType: Llama['buildType']): string {
  return buildType === 'localBuild' ? 'local build' : 'prebuilt binary';
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

/** Raw softmax: no temperature, truncation or penalties, so probabilities are the model's own. */
const RAW = { temperature: 1, topK: 0, topP: 1, minP: 0 } as const;

/** OpenAI's floor for a token the model gives no probability at all. */
const LOGPROB_FLOOR = -9999;

/**
 * Evaluates `tokens` on `sequence` and returns the model's raw next-token distribution after
 * every position from `scoredFrom` to the last (the one at position p scores token p + 1).
 * Tokens the sequence already holds are kept up to `scoredFrom`; the rest is erased and
 * evaluated again, since only a fresh evaluation yields probabilities.
 */
async function distributionsAfter(
  sequence: LlamaContextSequence,
  tokens: readonly Token[],
  scoredFrom: number,
): Promise<Map<Token, number>[]> {
  if (scoredFrom >= tokens.length) return [];
  const held = sequence.contextTokens;
  let keep = 0;
  while (keep < held.length && keep < tokens.length && held[keep] === tokens[keep]) keep++;
  keep = Math.min(keep, scoredFrom);
  if (keep < sequence.nextTokenIndex)
    await sequence.eraseContextTokenRanges([{ start: keep, end: sequence.nextTokenIndex }]);
  const input = tokens
    .slice(keep)
    .map((token, i) =>
      keep + i >= scoredFrom ? ([token, { generateNext: { probabilities: true, options: RAW } }] as const) : token,
    );
  const output = await sequence.controlledEvaluate(input as Parameters<typeof sequence.controlledEvaluate>[0]);
  const distributions: Map<Token, number>[] = [];
  for (let position = scoredFrom; position < tokens.length; position++) {
    const probabilities = output[position - keep]?.next?.probabilities;
    if (!probabilities) throw new Error(`llama.cpp returned no probabilities at token ${position}`);
    distributions.push(probabilities);
  }
  return distributions;
}

const logprobOf = (probability: number | undefined) => Math.max(Math.log(probability ?? 0), LOGPROB_FLOOR);

/**
 * Token text and bytes from the GGUF vocabulary, so a token that is one byte of a multi-byte
 * character keeps its exact bytes (detokenizing it alone gives U+FFFD): SentencePiece's
 * `<0xAB>` pieces and `▁` for a space, GPT-2's byte-level characters, else the detokenized text.
 * Bytes that are no UTF-8 text on their own read as OpenAI writes them, `bytes:\xe2\x80`.
 */
function tokenDescriber(model: LlamaModel): (token: Token) => Omit<TokenAlternative, 'logprob'> {
  const ggml = model.fileInfo.metadata.tokenizer?.ggml;
  const byteLevel = new Map(BYTE_LEVEL_CHARS.map((char, byte) => [char, byte]));
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const textOf = (bytes: number[]) => {
    try {
      return decoder.decode(Uint8Array.from(bytes));
    } catch {
      return `bytes:${bytes.map((byte) => `\\x${byte.toString(16).padStart(2, '0')}`).join('')}`;
    }
  };
  const cache = new Map<Token, Omit<TokenAlternative, 'logprob'>>();
  const bytesOf = (token: Token): number[] => {
    if (model.isSpecialToken(token)) return [...Buffer.from(model.detokenize([token], false))];
    const piece = ggml?.tokens?.[token];
    if (piece !== undefined && ggml?.model === 'llama') {
      const byte = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
      return byte ? [Number.parseInt(byte[1] as string, 16)] : [...Buffer.from(piece.replaceAll('\u2581', ' '))];
    }
    if (piece !== undefined && ggml?.model === 'gpt2') {
      const bytes = [...piece].map((char) => byteLevel.get(char));
      if (bytes.every((byte) => byte !== undefined)) return bytes as number[];
    }
    return [...Buffer.from(model.detokenize([token], false))];
  };
  return (token) => {
    let described = cache.get(token);
    if (!described) {
      const bytes = bytesOf(token);
      // A control token (BOS, EOS) has no bytes: it reads as its own name, `<s>`.
      const text = bytes.length > 0 ? textOf(bytes) : model.detokenize([token], true);
      described = { token: text, bytes };
      cache.set(token, described);
    }
    return described;
  };
}

/**
 * Runs `generation` while recording every token sampled on `sequence`. LlamaChat reports only
 * the tokens it releases into the answer, not those it holds back (trailing whitespace, part of
 * a character, a stop string, EOG), which usage counts all the same; logprobs cover them too.
 */
async function recordingSampledTokens<T>(
  sequence: LlamaContextSequence,
  sampled: Token[],
  generation: () => Promise<T>,
): Promise<T> {
  const evaluate = sequence.evaluate;
  sequence.evaluate = (tokens, evaluateOptions) => {
    const inner = evaluate.call(sequence, tokens, evaluateOptions);
    return (async function* (): AsyncGenerator<Token, void, undefined | Token | Token[]> {
      let input: Token | Token[] | undefined;
      try {
        for (;;) {
          const next = await inner.next(input);
          if (next.done) return;
          sampled.push(next.value);
          input = (yield next.value) as Token | Token[] | undefined;
          // A grammar may replace the token it was given.
          if (typeof input === 'number') sampled[sampled.length - 1] = input;
        }
      } finally {
        await inner.return();
      }
    })();
  };
  try {
    return await generation();
  } finally {
    // The own property only shadowed the prototype's method.
    Reflect.deleteProperty(sequence, 'evaluate');
  }
}

/** The stop string that ends earliest in `text`, searched from `from`: where the answer ends. */
function stopCut(text: string, stops: readonly string[], from: number): number | undefined {
  let cut: number | undefined;
  for (const stop of stops) {
    const at = text.indexOf(stop, Math.max(0, from - stop.length + 1));
    if (at >= 0 && (cut === undefined || at < cut)) cut = at;
  }
  return cut;
}

/** Characters at the end of `text` that may yet become a stop string: held back from streaming. */
function heldBack(text: string, stops: readonly string[]): number {
  let held = 0;
  for (const stop of stops) {
    for (let length = Math.min(stop.length - 1, text.length); length > held; length--) {
      if (text.endsWith(stop.slice(0, length))) {
        held = length;
        break;
      }
    }
  }
  return held;
}

/**
 * A seed as llama.cpp's sampler takes it (32 bits). Unset, a fresh random one: node-llama-cpp
 * would seed with the current second, so two requests in one second would sample alike.
 */
function samplerSeed(seed: number | undefined): number {
  if (seed === undefined) return randomInt(2 ** 32);
  return ((seed % 2 ** 32) + 2 ** 32) % 2 ** 32;
}

/** Tokens the detokenizer reads before a piece to space it, as LlamaChat does (its `maxRecentDetokenizerTokens`). */
const DETOKENIZER_TRAIL = 3;

/**
 * How long a batch waits for a generating sequence that has not queued its next token (see
 * decode-gate.ts): above the usual wait (the other sequences' sampling and JS, ~1 ms for 4
 * streams on a busy 2-core VM), and small next to the extra decode step a straggler costs.
 */
const DECODE_GATE_HOLD_MS = 3;

/** LlmRuntime on a local GGUF through node-llama-cpp: one context, `parallel` sequences batched together. */
export function createLlamaCppRuntime(options: LlamaCppRuntimeOptions): LlmRuntime {
  const logger = options.logger;
  const cores = availableParallelism();
  const poolThreads = typeof options.maxThreads === 'number' && options.maxThreads > 0 ? options.maxThreads : cores;
  let threadChoice: ThreadChoice | undefined;
  let state: RuntimeStatus = { state: 'idle', detail: 'not loaded' };
  let llamaCpp: NodeLlamaCpp | undefined;
  let llama: Llama | undefined;
  let model: LlamaModel | undefined;
  let context: LlamaContext | undefined;
  let chatWrapper: ChatWrapper | undefined;
  let slots: Slot[] = [];
  let meter: PromptMeter | undefined;
  let describe: ((token: Token) => Omit<TokenAlternative, 'logprob'>) | undefined;
  let loading: Promise<void> | undefined;
  const running = new Set<AbortController>();
  const decodeGate = createDecodeGate({ holdMs: DECODE_GATE_HOLD_MS });

  /** The measured (or stored) fastest thread count; one per core if measuring fails. */
  async function pickThreads(
    loaded: LlamaModel,
    gpu: string | false,
    binary: string,
    signal?: AbortSignal,
  ): Promise<ThreadChoice | undefined> {
    try {
      const choice = await chooseThreads({
        model: loaded,
        modelPath: options.modelPath,
        cores,
        gpu,
        binary,
        cacheFile: options.threadChoiceFile,
        logger,
        signal,
      });
      logger.info(
        {
          model: options.modelPath,
          threads: choice.threads,
          source: choice.source,
          tokensPerSecond: choice.tokensPerSecond,
          measureMs: choice.measureMs,
        },
        choice.source === 'measured'
          ? `decode threads: ${choice.threads} measured fastest in ${choice.measureMs} ms`
          : `decode threads: ${choice.threads}, as measured ${choice.measuredAt}`,
      );
      return choice;
    } catch (error) {
      signal?.throwIfAborted();
      logger.warn({ model: options.modelPath, err: error }, `cannot time decode threads; using ${cores}`);
      return undefined;
    }
  }

  function threadsDetail(threads: number): string {
    if (!threadChoice) return `${threads} threads`;
    return `${threads} threads (auto, ${threadChoice.source === 'cached' ? 'stored' : 'measured'} fastest)`;
  }

  async function load(signal?: AbortSignal): Promise<void> {
    state = { state: 'loading', detail: `loading ${options.modelPath}`, progress: 0 };
    try {
      // Imported here, not at start-up: node-llama-cpp takes over half a second to import,
      // and `bertha up` answers /healthz without waiting for it.
      const imported: NodeLlamaCpp = await import('node-llama-cpp');
      llamaCpp = imported;
      llama = await sharedLlama(imported, poolThreads, options.gpu, logger);
      model = await llama.loadModel({
        modelPath: options.modelPath,
        ...(signal ? { loadSignal: signal } : {}),
        onLoadProgress: (progress) => {
          state = { state: 'loading', detail: `loading ${options.modelPath}`, progress: progress * 0.9 };
        },
      });
      let threads = poolThreads;
      if (options.maxThreads === 'auto') {
        state = { state: 'loading', detail: `timing decode threads for ${options.modelPath}`, progress: 0.9 };
        threadChoice = await pickThreads(model, llama.gpu, binaryDetail(llama.buildType), signal);
        threads = threadChoice?.threads ?? cores;
      }
      const adapters = options.adapters ?? [];
      context = await model.createContext({
        sequences: options.parallel,
        contextSize: options.contextSize > 0 ? options.contextSize : { max: DEFAULT_MAX_CONTEXT },
        batchSize: options.batchSize,
        threads,
        batching: decodeGate.batching,
        ...(adapters.length > 0
          ? { lora: { adapters: adapters.map((adapter) => ({ filePath: adapter.path, scale: adapter.scale })) } }
          : {}),
        ...(signal ? { createSignal: signal } : {}),
      });
      decodeGate.attach(context);
      chatWrapper = chatWrapperFor(imported, model, options.fallbackChatTemplate);
      describe = tokenDescriber(model);
      const wrapper = chatWrapper;
      const ctx = context;
      const loaded = model;
      const trained = loaded.trainContextSize;
      if (ctx.contextSize > trained) {
        logger.warn(
          { contextSize: ctx.contextSize, trainContextSize: trained, model: options.modelPath },
          `serving.llamaCpp.contextSize ${ctx.contextSize} is above the model's training context of ${trained} tokens; answers past token ${trained} may degrade`,
        );
      }
      meter = {
        // node-llama-cpp shifts the context once a sequence has no free cell left: one stays free.
        contextSize: ctx.contextSize - 1,
        count: (messages) =>
          wrapper.generateContextState({ chatHistory: toChatHistory(messages) }).contextText.tokenize(loaded.tokenizer)
            .length,
      };
      slots = Array.from({ length: options.parallel }, () => ({
        chat: new imported.LlamaChat({ contextSequence: ctx.getSequence(), chatWrapper: wrapper }),
        busy: false,
      }));
      state = {
        state: 'ready',
        detail: `${options.modelPath} (${llama.gpu || 'cpu'} ${binaryDetail(llama.buildType)}, ${threadsDetail(threads)}, ${options.parallel} sequences of ${ctx.contextSize} tokens (trained on ${trained}), template ${wrapper.wrapperName})`,
      };
      if (!llama.gpu && llama.buildType === 'prebuilt') {
        logger.info(
          "llama.cpp runs on node-llama-cpp's prebuilt CPU binary; `npm run build:llama` compiles one for this machine, which decodes faster (docs/performance.md)",
        );
      }
      logger.info(
        {
          model: options.modelPath,
          gpu: llama.gpu,
          build: llama.buildType,
          threads,
          ...(threadChoice ? { threadChoice: threadChoice.source, tokensPerSecond: threadChoice.tokensPerSecond } : {}),
          sequences: options.parallel,
          contextSize: ctx.contextSize,
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
   * OpenAI's `logit_bias` as llama.cpp's server applies it: added to the logit, so -100 bans a
   * token in practice. Not -Infinity: a grammar that allows only banned tokens would leave the
   * sampler nothing to pick, and node-llama-cpp then fails outside the request, holding the
   * sequence for good. Throws before generation for a token id outside the vocabulary (llama.cpp
   * would read past its logits).
   */
  function tokenBiasFor(loaded: LlamaModel, logitBias: GenerationParams['logitBias']): TokenBias | undefined {
    const entries = Object.entries(logitBias ?? {});
    if (entries.length === 0 || !llamaCpp) return undefined;
    const vocabulary = loaded.fileInfo.metadata.tokenizer?.ggml?.tokens?.length ?? 0;
    const bias = new llamaCpp.TokenBias(loaded.tokenizer);
    // TokenBias.set skips end-of-generation tokens, which OpenAI's and llama.cpp's servers let a
    // client bias too; so the map the sampler reads is filled directly (node-llama-cpp is pinned).
    const biases = (bias as unknown as { _biases: Map<Token, number> })._biases;
    for (const [key, value] of entries) {
      const token = Number(key);
      if (!Number.isInteger(token) || token < 0 || token >= vocabulary) {
        throw new ValidationError(
          `invalid request body: logit_bias: token id ${key} is not in the model's vocabulary of ${vocabulary} tokens`,
          { param: 'logit_bias' },
        );
      }
      biases.set(token as Token, value);
    }
    return bias;
  }

  /**
   * OpenAI's presence and frequency penalties over every answer token so far (llama.cpp's
   * penalties sampler with no repeat penalty); unset when neither is asked.
   */
  function penaltiesFor(params: GenerationParams, maxTokens: number) {
    const presencePenalty = params.presencePenalty ?? 0;
    const frequencyPenalty = params.frequencyPenalty ?? 0;
    if (presencePenalty === 0 && frequencyPenalty === 0) return undefined;
    return { presencePenalty, frequencyPenalty, lastTokens: Math.max(1, maxTokens) };
  }

  /** Compiled before a slot is taken, so an unsupported schema is refused before anything runs. */
  async function grammarFor(format: ResponseFormat): Promise<LlamaGrammar> {
    if (!llama) throw new Error('model is not loaded');
    if (format.type === 'json_object' || format.schema === undefined) return llama.getGrammarFor('json');
    const schema = grammarSchemaFor(format.schema);
    try {
      const schemaGrammar = await llama.createGrammarForJsonSchema<GbnfJsonSchema>(schema);
      return await llama.createGrammar({
        grammar: finiteNumbers(schemaGrammar.grammar),
        stopGenerationTriggers: schemaGrammar.stopGenerationTriggers,
        trimWhitespaceSuffix: schemaGrammar.trimWhitespaceSuffix,
      });
    } catch (error) {
      // llama.cpp refuses a grammar whose repetitions pass its limit (2,000 expanded rules):
      // a schema with a large minLength, maxLength, minItems or maxItems. The schema's fault.
      throw new ValidationError(
        `response_format: llama.cpp cannot compile this schema's grammar (${error instanceof Error ? error.message : String(error)}); ` +
          'lower its minLength, maxLength, minItems or maxItems',
        { param: 'response_format' },
      );
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

  /**
   * Runs `work` on the best free slot for `prompt`, holding it busy; the caller's abort and
   * `close()` both abort the signal `work` gets.
   */
  async function withSlot<T>(
    prompt: readonly Token[],
    callerSignal: AbortSignal | undefined,
    work: (picked: { slot: Slot; shared: number }, signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    const picked = pickSlot(prompt);
    if (!picked) throw new Error('no free context sequence');
    picked.slot.busy = true;
    const controller = new AbortController();
    running.add(controller);
    const onAbort = () => controller.abort(callerSignal?.reason);
    callerSignal?.addEventListener('abort', onAbort, { once: true });
    if (callerSignal?.aborted) controller.abort(callerSignal.reason);
    try {
      return await decodeGate.generating(picked.slot.chat.sequence, () => work(picked, controller.signal));
    } finally {
      callerSignal?.removeEventListener('abort', onAbort);
      running.delete(controller);
      picked.slot.busy = false;
    }
  }

  /**
   * lm-evaluation-harness's split: the whole text is tokenized once and the continuation is
   * what follows the context's own tokens, so a token spanning the boundary is not invented.
   */
  function splitTokens(loaded: LlamaModel, request: LogLikelihoodRequest) {
    const context = promptTokensOf(loaded, request.context);
    const whole = promptTokensOf(loaded, request.context + request.continuation);
    const shared = context.every((token, i) => whole[i] === token) && whole.length > context.length;
    return shared
      ? { whole, contextLength: context.length }
      : {
          whole: [...context, ...loaded.tokenize(request.continuation, false, 'trimLeadingSpace')],
          contextLength: context.length,
        };
  }

  /** As llama.cpp's server begins every prompt: with BOS where the model asks for it. */
  function promptTokensOf(loaded: LlamaModel, text: string): Token[] {
    const bos = loaded.tokens.shouldPrependBosToken && loaded.tokens.bos !== null ? [loaded.tokens.bos] : [];
    return [...bos, ...loaded.tokenize(text)];
  }

  async function scoreOn(slot: Slot, loaded: LlamaModel, request: LogLikelihoodRequest): Promise<LogLikelihoodResult> {
    const split = splitTokens(loaded, request);
    const window = slot.chat.sequence.contextSize - 1;
    const truncated = Math.max(0, split.whole.length - window);
    const tokens = split.whole.slice(truncated);
    // At least one context token stays: its output scores the first continuation token.
    const firstScored = Math.max(1, split.contextLength - truncated);
    // The last token is only scored, never read: its output would score a token after the text.
    const distributions = await distributionsAfter(slot.chat.sequence, tokens.slice(0, -1), firstScored - 1);
    let logprob = 0;
    let greedy = true;
    distributions.forEach((probabilities, i) => {
      const next = tokens[firstScored + i] as Token;
      logprob += Math.log(probabilities.get(next) ?? Number.MIN_VALUE);
      // The map is ordered by probability, most likely first.
      if (probabilities.keys().next().value !== next) greedy = false;
    });
    return { logprob, tokens: tokens.length - firstScored, greedy, truncated };
  }

  /** `tokens[i]` as scored by `distributions[i]`, with its `top` most likely alternatives. */
  function tokenLogprobs(tokens: readonly Token[], distributions: Map<Token, number>[], top: number): TokenLogprob[] {
    const described = describe as NonNullable<typeof describe>;
    return tokens.map((token, i) => {
      const probabilities = distributions[i] as Map<Token, number>;
      const alternatives: TokenAlternative[] = [];
      for (const [candidate, probability] of probabilities) {
        if (alternatives.length >= top) break;
        alternatives.push({ ...described(candidate), logprob: logprobOf(probability) });
      }
      return { ...described(token), logprob: logprobOf(probabilities.get(token)), top: alternatives };
    });
  }

  /**
   * Log-probabilities of generated tokens, computed after generation by evaluating them again
   * in one batch: node-llama-cpp exposes probabilities while generating only after its sampler
   * chain (temperature, top-p), not the model's own distribution OpenAI and vLLM report.
   */
  async function generatedLogprobs(
    sequence: LlamaContextSequence,
    prompt: readonly Token[],
    generated: readonly Token[],
    top: number,
  ): Promise<TokenLogprob[]> {
    if (generated.length === 0) return [];
    const distributions = await distributionsAfter(sequence, [...prompt, ...generated.slice(0, -1)], prompt.length - 1);
    return tokenLogprobs(generated, distributions, top);
  }

  /** Samples up to `maxTokens` after `prompt` (already fitted to the window), ending early at EOG or a stop string. */
  async function completeOn(
    loaded: LlamaModel,
    slot: Slot,
    prompt: Token[],
    shared: number,
    request: CompletionRequest,
    signal: AbortSignal,
  ): Promise<CompletionResult> {
    const started = performance.now();
    const sequence = slot.chat.sequence;
    const described = describe as NonNullable<typeof describe>;
    const top = request.logprobs ?? 0;
    const window = sequence.contextSize - 1;
    const maxTokens = Math.min(request.maxTokens ?? options.defaults.maxTokens, window - prompt.length);
    let cached = Math.min(shared, prompt.length - 1);
    let promptLogprobs: TokenLogprob[] | undefined;
    if (request.promptLogprobs && request.logprobs !== undefined) {
      // Every prompt token but the last, each giving the distribution that scores the next one;
      // the last is read by generation.
      const distributions = await distributionsAfter(sequence, prompt.slice(0, -1), 0);
      const first = prompt[0] as Token;
      promptLogprobs = [
        { ...described(first), logprob: null, top: [] },
        ...tokenLogprobs(prompt.slice(1), distributions, top),
      ];
      cached = 0;
    }
    const stops = request.stop ?? [];
    const generated: Token[] = [];
    const decoder = new TextDecoder();
    let stopped = false;
    let text = '';
    let streamed = 0;
    let finishReason: FinishReason = maxTokens <= 0 ? 'length' : 'stop';
    if (maxTokens > 0 && !signal.aborted) {
      const held = sequence.contextTokens;
      let keep = 0;
      while (keep < held.length && keep < prompt.length - 1 && held[keep] === prompt[keep]) keep++;
      if (keep < sequence.nextTokenIndex)
        await sequence.eraseContextTokenRanges([{ start: keep, end: sequence.nextTokenIndex }]);
      const temperature = request.temperature ?? options.defaults.temperature;
      const tokenBias = tokenBiasFor(loaded, request.logitBias);
      const penalties = penaltiesFor(request, maxTokens);
      // No repeat penalty unless asked: llama.cpp's server and OpenAI sample from the model's distribution as is.
      const tokens = sequence.evaluate(prompt.slice(keep), {
        temperature,
        topP: request.topP ?? options.defaults.topP,
        seed: samplerSeed(request.seed),
        ...(tokenBias ? { tokenBias } : {}),
        ...(penalties
          ? {
              repeatPenalty: {
                punishTokens: () => generated,
                maxPunishTokens: penalties.lastTokens,
                presencePenalty: penalties.presencePenalty,
                frequencyPenalty: penalties.frequencyPenalty,
              },
            }
          : {}),
        // Yielded so that it is counted and scored like any sampled token, as vLLM counts it.
        yieldEogToken: true,
      });
      for await (const token of tokens) {
        generated.push(token);
        if (loaded.isEogToken(token)) break;
        const before = text.length;
        text += decoder.decode(Uint8Array.from(described(token).bytes), { stream: true });
        const cut = stops.length > 0 ? stopCut(text, stops, before) : undefined;
        if (cut !== undefined) {
          text = text.slice(0, cut);
          stopped = true;
          break;
        }
        if (signal.aborted) {
          finishReason = 'cancelled';
          break;
        }
        if (generated.length >= maxTokens) {
          finishReason = 'length';
          break;
        }
        const safe = text.length - heldBack(text, stops);
        if (request.onText && safe > streamed) {
          request.onText(text.slice(streamed, safe));
          streamed = safe;
        }
      }
    }
    if (!stopped) text += decoder.decode();
    if (request.onText && text.length > streamed) request.onText(text.slice(streamed));
    // Every sampled token, as usage counts them: those that spell a stop string and EOG included.
    const logprobs =
      request.logprobs !== undefined && finishReason !== 'cancelled'
        ? await generatedLogprobs(sequence, prompt, generated, top)
        : undefined;
    return {
      text,
      finishReason,
      promptTokens: prompt.length,
      cachedPromptTokens: cached,
      completionTokens: generated.length,
      computeMs: performance.now() - started,
      ...(promptLogprobs ? { promptLogprobs } : {}),
      ...(logprobs ? { logprobs } : {}),
    };
  }

  return {
    kind: 'llama-cpp',
    parallelism: options.parallel,
    load(signal) {
      loading ??= load(signal);
      return loading;
    },
    status: () => state,
    promptMeter: () => (state.state === 'ready' ? meter : undefined),
    async logLikelihood(requests, signal) {
      if (state.state !== 'ready' || !model) throw new Error(`model is ${state.state}`);
      const loaded = model;
      const first = splitTokens(loaded, requests[0] ?? { context: '', continuation: '' }).whole;
      return withSlot(first, signal, async ({ slot }, aborted) => {
        const results: LogLikelihoodResult[] = [];
        for (const request of requests) {
          aborted.throwIfAborted();
          results.push(await scoreOn(slot, loaded, request));
        }
        return results;
      });
    },
    async complete(request: CompletionRequest): Promise<CompletionResult> {
      if (state.state !== 'ready' || !model) throw new Error(`model is ${state.state}`);
      const prompt = promptTokensOf(model, request.prompt);
      const window = (slots[0]?.chat.sequence.contextSize ?? 1) - 1;
      if (prompt.length > window) throw new PromptTooLongError(window, prompt.length);
      if (prompt.length === 0) {
        throw new ValidationError('prompt: empty, and this model has no BOS token to begin from', { param: 'prompt' });
      }
      const loaded = model;
      // Checked here too, so that an id outside the vocabulary is refused before a slot is taken.
      tokenBiasFor(loaded, request.logitBias);
      return withSlot(prompt, request.signal, (picked, signal) =>
        completeOn(loaded, picked.slot, prompt, picked.shared, request, signal),
      );
    },
    async generate(request: GenerationRequest): Promise<GenerationResult> {
      if (state.state !== 'ready' || !model || !chatWrapper) throw new Error(`model is ${state.state}`);
      const loaded = model;
      const history = toChatHistory(request.messages);
      const promptText = chatWrapper.generateContextState({ chatHistory: history }).contextText;
      const promptTokens = promptText.tokenize(loaded.tokenizer);
      const started = performance.now();
      const maxTokens = request.maxTokens ?? options.defaults.maxTokens;
      const tokenBias = tokenBiasFor(loaded, request.logitBias);
      const penalties = penaltiesFor(request, maxTokens);
      const grammar = request.responseFormat ? await grammarFor(request.responseFormat) : undefined;
      const onText = request.onText;
      return withSlot(promptTokens, request.signal, async (picked, signal) => {
        const slot = picked.slot;
        // The sequence's meter counts every sampled token, those held back by stop detection included.
        const meterBefore = slot.chat.sequence.tokenMeter.getState();
        const stop = request.stop ?? [];
        const sampled: Token[] = [];
        const released = promptTokens.slice(-DETOKENIZER_TRAIL);
        const generation = () =>
          slot.chat.generateResponse(history, {
            signal,
            stopOnAbortSignal: true,
            maxTokens,
            temperature: request.temperature ?? options.defaults.temperature,
            topP: request.topP ?? options.defaults.topP,
            seed: samplerSeed(request.seed),
            ...(tokenBias ? { tokenBias } : {}),
            ...(penalties ? { repeatPenalty: penalties } : {}),
            ...(grammar ? { grammar } : {}),
            ...(stop.length > 0 ? { customStopTriggers: stop } : {}),
            ...(onText
              ? {
                  // One piece per token, as llama.cpp's server streams (see piecesPerToken).
                  onResponseChunk: (chunk: { type?: unknown; tokens: Token[]; text: string }) => {
                    if (chunk.type !== undefined) return;
                    for (const piece of piecesPerToken(loaded, chunk.tokens, chunk.text, released)) onText(piece);
                    released.push(...chunk.tokens);
                    released.splice(0, released.length - DETOKENIZER_TRAIL);
                  },
                }
              : {}),
          });
        const response =
          request.logprobs !== undefined
            ? await recordingSampledTokens(slot.chat.sequence, sampled, generation)
            : await generation();
        const reason = response.metadata.stopReason;
        const finishReason: FinishReason =
          reason === 'abort' ? 'cancelled' : reason === 'maxTokens' ? 'length' : 'stop';
        const completionTokens = slot.chat.sequence.tokenMeter.diff(meterBefore).usedOutputTokens;
        const logprobs =
          request.logprobs !== undefined && finishReason !== 'cancelled'
            ? await generatedLogprobs(slot.chat.sequence, promptTokens, sampled, request.logprobs)
            : undefined;
        return {
          text: response.response,
          finishReason,
          prompt: promptText.toString(),
          promptTokens: promptTokens.length,
          // The last prompt token is always evaluated again: its logits give the first answer token.
          cachedPromptTokens: Math.min(picked.shared, Math.max(0, promptTokens.length - 1)),
          completionTokens,
          computeMs: performance.now() - started,
          ...(logprobs ? { logprobs } : {}),
        };
      });
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
