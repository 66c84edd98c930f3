import { randomInt } from 'node:crypto';
import { availableParallelism } from 'node:os';
import type {
  ChatHistoryItem,
  ChatModelFunctionCall,
  ChatModelFunctions,
  ChatModelResponse,
  ChatWrapper,
  GbnfJsonSchema,
  GgmlType,
  GgufTensorInfo,
  Llama,
  LlamaGrammar,
  LlamaModel,
  LlamaText,
  Token,
} from 'node-llama-cpp';
import { ValidationError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { BYTE_LEVEL_CHARS } from '../gguf/index.ts';
import { LLAMA_CMAKE_OPTIONS } from '../native/llama-cpp-libs.ts';
import { finiteNumbers, grammarSchemaFor } from './json-schema-grammar.ts';
import { type Decoder, openDecoder, type TokenOutput } from './native/decoder.ts';
import type { Ptr } from './native/libllama.ts';
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
  offeredTools,
  type PromptMeter,
  PromptTooLongError,
  type ResponseFormat,
  type RuntimeStatus,
  type TokenAlternative,
  type TokenLogprob,
  type ToolCall,
  type ToolDefinition,
  UnsupportedValueError,
} from './runtime.ts';
import { chooseThreads, type ThreadChoice } from './thread-choice.ts';
import { type CallSyntax, callTrigger, parseToolCalls, toolCallGrammar } from './tool-calls.ts';

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

/** One of the decoder's sequences; `seq` is its id in llama.cpp's context. */
interface Slot {
  seq: number;
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
      cmakeOptions: { ...LLAMA_CMAKE_OPTIONS },
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

/**
 * Whether most weights of the GGUF are F16. node-llama-cpp's prebuilt CPU libraries are compiled
 * by GCC 11, which spills tinyBLAS's F16 accumulators to the stack: every batch of more than
 * one token (prompts, concurrent conversations) over F16 weights runs at about half a native
 * build's speed (docs/performance.md). Quantized weights run as fast on either binary.
 */
function mostlyF16(tensors: readonly GgufTensorInfo[] | undefined, f16: GgmlType): boolean {
  let f16Elements = 0;
  let elements = 0;
  for (const tensor of tensors ?? []) {
    if (tensor.dimensions.length < 2) continue;
    const count = tensor.dimensions.reduce<number>((product, size) => product * Number(size), 1);
    elements += count;
    if (tensor.ggmlType === f16) f16Elements += count;
  }
  return elements > 0 && f16Elements * 2 > elements;
}

/** JSON text as a value, or the text itself where it is no JSON (a tool's plain-text result). */
function jsonOrText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function endsWithCall(item: ChatHistoryItem | undefined): item is ChatModelResponse {
  const last = item?.type === 'model' ? item.response.at(-1) : undefined;
  return typeof last === 'object' && last.type === 'functionCall';
}

/**
 * OpenAI's messages as node-llama-cpp's chat history. An assistant turn's tool calls carry the
 * results of the `tool` messages that answer them, and the model's next text continues that
 * same model turn, as the template renders it. Throws a ValidationError for a call without an
 * answer or an answer without a call.
 */
export function toChatHistory(messages: ChatMessage[]): ChatHistoryItem[] {
  const results = new Map<string, string>();
  for (const message of messages) {
    if (message.role === 'tool' && message.toolCallId !== undefined) results.set(message.toolCallId, message.content);
  }
  const called = new Set<string>();
  const history: ChatHistoryItem[] = [];
  for (const message of messages) {
    if (message.role === 'system') history.push({ type: 'system', text: message.content });
    else if (message.role === 'user') history.push({ type: 'user', text: message.content });
    else if (message.role === 'tool') {
      if (message.toolCallId === undefined || !called.has(message.toolCallId)) {
        throw new ValidationError(
          `invalid request body: messages: a tool message answers call '${message.toolCallId}', which no earlier assistant message made`,
          { param: 'messages' },
        );
      }
    } else {
      const response: ChatModelResponse['response'] = message.content ? [message.content] : [];
      for (const [index, call] of (message.toolCalls ?? []).entries()) {
        const result = results.get(call.id);
        if (result === undefined) {
          throw new ValidationError(
            `invalid request body: messages: the assistant's tool call '${call.id}' has no tool message answering it`,
            { param: 'messages' },
          );
        }
        called.add(call.id);
        const functionCall: ChatModelFunctionCall = {
          type: 'functionCall',
          name: call.name,
          params: jsonOrText(call.arguments),
          result: jsonOrText(result),
          // Calls of one assistant message were made together: one section of calls, then their results.
          startsNewChunk: index === 0,
        };
        response.push(functionCall);
      }
      const last = history.at(-1);
      if (endsWithCall(last)) last.response.push(...response);
      else history.push({ type: 'model', response });
    }
  }
  // The answer goes in an empty model turn at the end (as LlamaChatSession does it), or goes on
  // from the results of the calls that end the last one.
  if (!endsWithCall(history.at(-1))) history.push({ type: 'model', response: [] });
  return history;
}

/** The tools as node-llama-cpp hands them to the template, parameters as the client wrote them. */
function functionsOf(tools: readonly ToolDefinition[] | undefined): ChatModelFunctions | undefined {
  if (!tools || tools.length === 0) return undefined;
  return Object.fromEntries(
    tools.map((tool) => [
      tool.name,
      {
        ...(tool.description !== undefined ? { description: tool.description } : {}),
        ...(tool.parameters !== undefined ? { params: tool.parameters as GbnfJsonSchema } : {}),
      },
    ]),
  );
}

/** A chat template that renders tools and calls, with the syntax its calls are written in. */
interface ToolTemplate {
  wrapper: ChatWrapper;
  syntax: CallSyntax;
}

/**
 * The GGUF's own Jinja template (or the fallback) when it renders `tools` and `tool_calls`, as
 * node-llama-cpp finds by rendering probe conversations; undefined when it does not. Used as
 * is: node-llama-cpp's specialised wrappers may write calls in another syntax than the model's.
 */
function toolTemplateFor(
  { JinjaTemplateChatWrapper, LlamaText }: NodeLlamaCpp,
  model: LlamaModel,
  fallbackTemplate: string | undefined,
): ToolTemplate | undefined {
  const template = model.fileInfo.metadata.tokenizer?.chat_template ?? fallbackTemplate;
  if (!template) return undefined;
  let wrapper: InstanceType<NodeLlamaCpp['JinjaTemplateChatWrapper']>;
  try {
    wrapper = new JinjaTemplateChatWrapper({ template, tokenizer: model.tokenizer });
  } catch {
    return undefined;
  }
  if (!wrapper.usingJinjaFunctionCallTemplate) return undefined;
  const { call, parallelism } = wrapper.settings.functions;
  const between = parallelism?.call.betweenCalls;
  return {
    wrapper,
    syntax: {
      prefix: LlamaText(call.prefix).toString().trimStart(),
      paramsPrefix: LlamaText(call.paramsPrefix).toString(),
      suffix: LlamaText(call.suffix).toString(),
      betweenCalls: between === undefined ? undefined : LlamaText(between).toString(),
    },
  };
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

/** OpenAI's floor for a token the model gives no probability at all. */
const LOGPROB_FLOOR = -9999;

/** The prompt `auto` threads time decoding with: short, since the slow candidates evaluate it too. */
const PROBE_TEXT = 'Bertha';
/** The most tokens one timing run may sample; the timing itself stops far earlier. */
const PROBE_MAX_TOKENS = 256;

/** A token's log-probability and the most likely alternatives, from raw logits (softmax at temperature 1). */
interface Scored {
  logprob: number;
  /** Whether the token is the model's most likely one. */
  argmax: boolean;
  top: Array<{ token: number; logprob: number }>;
}

function scoreLogits(logits: Float32Array, token: number, top: number): Scored {
  let max = Number.NEGATIVE_INFINITY;
  let best = 0;
  for (let i = 0; i < logits.length; i++) {
    const value = logits[i] as number;
    if (value > max) {
      max = value;
      best = i;
    }
  }
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp((logits[i] as number) - max);
  const logZ = max + Math.log(sum);
  const alternatives: Array<{ token: number; logprob: number }> = [];
  if (top > 0) {
    // A sorted list of `top` entries: k is at most 20, so insertion beats a heap here.
    for (let i = 0; i < logits.length; i++) {
      const value = logits[i] as number;
      if (alternatives.length === top && value <= (alternatives[top - 1] as { logprob: number }).logprob) continue;
      let at = alternatives.length;
      while (at > 0 && (alternatives[at - 1] as { logprob: number }).logprob < value) at--;
      alternatives.splice(at, 0, { token: i, logprob: value });
      if (alternatives.length > top) alternatives.pop();
    }
    for (const alternative of alternatives) alternative.logprob -= logZ;
  }
  return { logprob: (logits[token] as number) - logZ, argmax: best === token, top: alternatives };
}

const floored = (logprob: number) => Math.max(Number.isFinite(logprob) ? logprob : LOGPROB_FLOOR, LOGPROB_FLOOR);

/** A grammar for llama.cpp's sampler; a lazy one constrains nothing until its trigger text appears. */
interface SamplerGrammar {
  text: string;
  root: string;
  lazyTrigger?: string | undefined;
  /** The request field the grammar enforces, named when llama.cpp refuses it. */
  param: 'response_format' | 'tools';
}

/** `text` as a regular expression that matches it literally (llama.cpp's trigger patterns are regexes). */
function literalPattern(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** How one request's answer may call tools. */
interface ToolCalling {
  grammar: SamplerGrammar;
  /** Where a call starts in the answer. */
  trigger: string;
  syntax: CallSyntax;
  /** The tools it may call. */
  names: string[];
}

/** What ends an answer besides EOG and the request's own stop strings: the template's end-of-turn triggers. */
interface StopTriggers {
  texts: string[];
  tokens: Set<number>;
}

/**
 * The chat template's stop triggers (node-llama-cpp's `stopGenerationTriggers`): one that is a
 * single token (an end-of-turn special token) ends generation on that token, any other on its text.
 */
function stopTriggersOf(
  model: LlamaModel,
  triggers: ReadonlyArray<LlamaText | string | ReadonlyArray<string | Token>>,
): StopTriggers {
  const found: StopTriggers = { texts: [], tokens: new Set() };
  for (const trigger of triggers) {
    if (typeof trigger === 'string') {
      if (trigger) found.texts.push(trigger);
      continue;
    }
    if (Array.isArray(trigger)) {
      const parts = trigger as ReadonlyArray<string | Token>;
      if (parts.length === 1 && typeof parts[0] === 'number') found.tokens.add(parts[0]);
      else if (parts.every((part) => typeof part === 'string') && parts.join('')) found.texts.push(parts.join(''));
      continue;
    }
    const text = trigger as LlamaText;
    const tokens = text.tokenize(model.tokenizer, 'trimLeadingSpace');
    if (tokens.length === 1 && model.isSpecialToken(tokens[0] as Token)) found.tokens.add(tokens[0] as number);
    else {
      const plain = text.toString();
      if (plain) found.texts.push(plain);
    }
  }
  return found;
}

/**
 * LlmRuntime on a local GGUF: node-llama-cpp reads the vocabulary and the chat template and
 * compiles grammars; the weights are decoded by Bertha's own loop over libllama (see
 * native/decoder.ts), one context with `parallel` sequences batched together.
 */
export function createLlamaCppRuntime(options: LlamaCppRuntimeOptions): LlmRuntime {
  const logger = options.logger;
  const cores = availableParallelism();
  const poolThreads = typeof options.maxThreads === 'number' && options.maxThreads > 0 ? options.maxThreads : cores;
  let threadChoice: ThreadChoice | undefined;
  let state: RuntimeStatus = { state: 'idle', detail: 'not loaded' };
  let llama: Llama | undefined;
  let model: LlamaModel | undefined;
  let decoder: Decoder | undefined;
  let chatWrapper: ChatWrapper | undefined;
  let toolTemplate: ToolTemplate | undefined;
  let slots: Slot[] = [];
  let meter: PromptMeter | undefined;
  let describe: ((token: Token) => Omit<TokenAlternative, 'logprob'>) | undefined;
  let loading: Promise<void> | undefined;
  const running = new Set<AbortController>();

  /** The measured (or stored) fastest thread count; every pool thread if measuring fails. */
  async function pickThreads(
    loaded: LlamaModel,
    opened: Decoder,
    gpu: string | false,
    binary: string,
    signal?: AbortSignal,
  ): Promise<ThreadChoice | undefined> {
    const probeTokens = promptTokensOf(loaded, PROBE_TEXT);
    try {
      const choice = await chooseThreads({
        probe: async (threads, onToken) => {
          opened.setThreads(threads);
          const sampler = samplerChain(opened, { temperature: 0 }, PROBE_MAX_TOKENS, undefined);
          // The cache is not reused: every candidate evaluates the same prompt.
          await opened.generate({
            seq: 0,
            tokens: probeTokens,
            reuseAtMost: 0,
            sampler,
            maxTokens: Math.min(PROBE_MAX_TOKENS, opened.sequenceSize - probeTokens.length - 1),
            onToken: () => onToken(),
          });
        },
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
      logger.warn({ model: options.modelPath, err: error }, `cannot time decode threads; using ${poolThreads}`);
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
      llama = await sharedLlama(imported, poolThreads, options.gpu, logger);
      // The vocabulary and metadata only: the weights are the decoder's.
      model = await llama.loadModel({
        modelPath: options.modelPath,
        vocabOnly: true,
        ...(signal ? { loadSignal: signal } : {}),
      });
      signal?.throwIfAborted();
      const loaded = model;
      // A vocabulary-only model reports no training context: it is read from the GGUF's metadata.
      const trained = Number(loaded.fileInfo.architectureMetadata.context_length ?? 0);
      const sequenceSize = options.contextSize > 0 ? options.contextSize : Math.min(trained, DEFAULT_MAX_CONTEXT);
      decoder = await openDecoder({
        modelPath: options.modelPath,
        adapters: options.adapters ?? [],
        gpuLayers: llama.gpu ? 999 : 0,
        sequences: options.parallel,
        sequenceSize,
        batchSize: options.batchSize,
        threads: poolThreads,
        binary: llama.buildType === 'localBuild' ? 'localBuild' : 'prebuilt',
        onProgress: (progress) => {
          state = { state: 'loading', detail: `loading ${options.modelPath}`, progress: progress * 0.9 };
        },
      });
      const opened = decoder;
      let threads = poolThreads;
      if (options.maxThreads === 'auto') {
        state = { state: 'loading', detail: `timing decode threads for ${options.modelPath}`, progress: 0.9 };
        threadChoice = await pickThreads(loaded, opened, llama.gpu, binaryDetail(llama.buildType), signal);
        threads = threadChoice?.threads ?? poolThreads;
        opened.setThreads(threads);
      }
      chatWrapper = chatWrapperFor(imported, loaded, options.fallbackChatTemplate);
      toolTemplate = toolTemplateFor(imported, loaded, options.fallbackChatTemplate);
      describe = tokenDescriber(loaded);
      const wrapper = chatWrapper;
      if (opened.sequenceSize > trained) {
        logger.warn(
          { contextSize: opened.sequenceSize, trainContextSize: trained, model: options.modelPath },
          `serving.llamaCpp.contextSize ${opened.sequenceSize} is above the model's training context of ${trained} tokens; answers past token ${trained} may degrade`,
        );
      }
      meter = {
        // One cell stays free: the last sampled token is held, not evaluated.
        contextSize: opened.sequenceSize - 1,
        count: (messages, tools) => contextStateOf(messages, tools).contextText.tokenize(loaded.tokenizer).length,
      };
      slots = Array.from({ length: options.parallel }, (_, seq) => ({ seq, busy: false }));
      state = {
        state: 'ready',
        detail: `${options.modelPath} (${llama.gpu || 'cpu'} ${binaryDetail(llama.buildType)}, ${threadsDetail(threads)}, ${options.parallel} sequences of ${opened.sequenceSize} tokens (trained on ${trained}), template ${wrapper.wrapperName}${toolTemplate ? ', tool calling' : ''})`,
      };
      logger.info(
        {
          model: options.modelPath,
          gpu: llama.gpu,
          build: llama.buildType,
          library: opened.lib.dir,
          threads,
          ...(threadChoice ? { threadChoice: threadChoice.source, tokensPerSecond: threadChoice.tokensPerSecond } : {}),
          sequences: options.parallel,
          contextSize: opened.sequenceSize,
          template: wrapper.wrapperName,
          toolCalling: toolTemplate !== undefined,
        },
        'model loaded',
      );
      if (
        !llama.gpu &&
        llama.buildType !== 'localBuild' &&
        mostlyF16(loaded.fileInfo.tensorInfo, imported.GgmlType.F16)
      ) {
        logger.info(
          { model: options.modelPath },
          'F16 weights on the prebuilt CPU binary evaluate prompts, and several conversations at once, at about half the speed of a build for this machine: `npm run build:llama` makes one (cmake and a C++ compiler, about 10 minutes); quantized weights (Q4_K, Q8_0) are as fast on either',
        );
      }
    } catch (error) {
      state = { state: 'failed', detail: `cannot load ${options.modelPath}: ${(error as Error).message}` };
      await decoder?.close().catch(() => undefined);
      await model?.dispose().catch(() => undefined);
      throw error;
    }
  }

  /**
   * OpenAI's `logit_bias` as llama.cpp's server applies it: added to the logit, so -100 bans a
   * token in practice. Throws before generation for a token id outside the vocabulary.
   */
  function logitBiasOf(
    opened: Decoder,
    logitBias: GenerationParams['logitBias'],
  ): Array<{ token: number; bias: number }> | undefined {
    const entries = Object.entries(logitBias ?? {});
    if (entries.length === 0) return undefined;
    return entries.map(([key, bias]) => {
      const token = Number(key);
      if (!Number.isInteger(token) || token < 0 || token >= opened.vocabSize) {
        throw new ValidationError(
          `invalid request body: logit_bias: token id ${key} is not in the model's vocabulary of ${opened.vocabSize} tokens`,
          { param: 'logit_bias' },
        );
      }
      return { token, bias };
    });
  }

  /**
   * llama.cpp's sampler chain for one request: logit bias, OpenAI's presence and frequency
   * penalties over the answer so far (no repeat penalty unless asked, as llama.cpp's server and
   * OpenAI sample from the model's distribution as is), the grammar, then greedy at
   * temperature 0, else top-p, temperature and a seeded draw. The decoder frees it.
   */
  function samplerChain(
    opened: Decoder,
    params: GenerationParams,
    maxTokens: number,
    grammar: SamplerGrammar | undefined,
  ): Ptr {
    const { fn } = opened.lib;
    const bias = logitBiasOf(opened, params.logitBias);
    let grammarSampler: Ptr | null = null;
    if (grammar) {
      grammarSampler =
        grammar.lazyTrigger === undefined
          ? fn.sampler_init_grammar(opened.vocab, grammar.text, grammar.root)
          : fn.sampler_init_grammar_lazy_patterns(
              opened.vocab,
              grammar.text,
              grammar.root,
              [literalPattern(grammar.lazyTrigger)],
              1,
              null,
              0,
            );
      if (!grammarSampler) {
        throw new ValidationError(`${grammar.param}: llama.cpp cannot parse the grammar compiled for this schema`, {
          param: grammar.param,
        });
      }
    }
    const chain = fn.sampler_chain_init({ no_perf: true });
    if (bias) fn.sampler_chain_add(chain, fn.sampler_init_logit_bias(opened.vocabSize, bias.length, bias));
    const presence = params.presencePenalty ?? 0;
    const frequency = params.frequencyPenalty ?? 0;
    if (presence !== 0 || frequency !== 0) {
      fn.sampler_chain_add(
        chain,
        fn.sampler_init_penalties(opened.vocabSize, Math.max(1, maxTokens), 1, frequency, presence),
      );
    }
    if (grammarSampler) fn.sampler_chain_add(chain, grammarSampler);
    const temperature = params.temperature ?? options.defaults.temperature;
    if (temperature <= 0) fn.sampler_chain_add(chain, fn.sampler_init_greedy());
    else {
      fn.sampler_chain_add(chain, fn.sampler_init_top_p(params.topP ?? options.defaults.topP, 1));
      fn.sampler_chain_add(chain, fn.sampler_init_temp(temperature));
      fn.sampler_chain_add(chain, fn.sampler_init_dist(samplerSeed(params.seed)));
    }
    return chain;
  }

  /**
   * The prompt for `messages`: through the template's tool rendering when tools are offered or
   * the conversation holds calls, refused when the model's template has none.
   */
  function contextStateOf(messages: ChatMessage[], tools: readonly ToolDefinition[] | undefined) {
    const wrapper = chatWrapper as ChatWrapper;
    const withCalls = messages.some((message) => message.role === 'tool' || (message.toolCalls?.length ?? 0) > 0);
    if (!tools && !withCalls) return wrapper.generateContextState({ chatHistory: toChatHistory(messages) });
    if (!toolTemplate) {
      throw new UnsupportedValueError(
        tools ? 'tools' : 'messages',
        `${tools ? 'tools' : 'messages: tool calls'}: this model's chat template (${wrapper.wrapperName}) does not render tools, so it was not trained to call them; serve a GGUF whose template does (Llama 3.1, Qwen 2.5, Mistral and others), or use response_format json_schema for structured output`,
      );
    }
    return toolTemplate.wrapper.generateContextState({
      chatHistory: toChatHistory(messages),
      availableFunctions: functionsOf(tools),
    });
  }

  /**
   * The grammar an answer's calls follow: the template's call syntax around the arguments'
   * JSON-schema grammars of the tools it may call. `auto` leaves the model free until it
   * writes the start of a call; `required` and a named tool constrain it from the first token.
   */
  async function toolGrammarFor(
    request: GenerationRequest,
    tools: readonly ToolDefinition[],
    template: ToolTemplate,
  ): Promise<ToolCalling> {
    if (!llama) throw new Error('model is not loaded');
    const loadedLlama = llama;
    const choice = request.toolChoice ?? 'auto';
    const chosen = typeof choice === 'object' ? tools.filter((tool) => tool.name === choice.name) : tools;
    if (typeof choice === 'object' && chosen.length === 0) {
      throw new ValidationError(`invalid request body: tool_choice: function '${choice.name}' is not among the tools`, {
        param: 'tool_choice',
      });
    }
    const grammars = await Promise.all(
      chosen.map(async (tool) => {
        const schema = grammarSchemaFor(tool.parameters ?? { type: 'object', properties: {} }, {
          param: 'tools',
          at: `tools[${tools.indexOf(tool)}].function.parameters`,
        });
        const json = await loadedLlama.createGrammarForJsonSchema<GbnfJsonSchema>(schema);
        return { name: tool.name, gbnf: finiteNumbers(json.grammar) };
      }),
    );
    const trigger = callTrigger(template.syntax);
    return {
      grammar: {
        // A named choice asks for a call of that function: one, as clients that force a tool
        // for structured output (LangChain's withStructuredOutput) read one.
        text: toolCallGrammar(
          grammars,
          template.syntax,
          request.parallelToolCalls !== false && typeof choice !== 'object',
        ),
        root: 'root',
        lazyTrigger: choice === 'auto' ? trigger : undefined,
        param: 'tools',
      },
      trigger,
      syntax: template.syntax,
      names: chosen.map((tool) => tool.name),
    };
  }

  /**
   * An answer that may end in calls: the text before them and the calls, or, cut short inside
   * its first call, the text before it (what was streamed).
   */
  function toolAnswer(
    sampled: Sampled,
    calling: ToolCalling,
  ): { text: string; finishReason: FinishReason; toolCalls?: ToolCall[] } {
    const parsed = parseToolCalls(sampled.text, calling.syntax, calling.names);
    if (parsed && sampled.finishReason === 'stop') {
      return { text: parsed.content, finishReason: 'tool_calls', toolCalls: parsed.calls };
    }
    const start = sampled.text.indexOf(calling.trigger);
    return {
      text: start < 0 ? sampled.text : sampled.text.slice(0, start).trimEnd(),
      finishReason: sampled.finishReason,
    };
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
   * earlier turns of a conversation) is not evaluated again.
   */
  function pickSlot(opened: Decoder, prompt: readonly Token[]): { slot: Slot; shared: number } | undefined {
    let best: { slot: Slot; shared: number; held: number } | undefined;
    for (const slot of slots) {
      if (slot.busy) continue;
      const held = opened.held(slot.seq);
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
    opened: Decoder,
    prompt: readonly Token[],
    callerSignal: AbortSignal | undefined,
    work: (slot: Slot, signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    const picked = pickSlot(opened, prompt);
    if (!picked) throw new Error('no free context sequence');
    picked.slot.busy = true;
    const controller = new AbortController();
    running.add(controller);
    const onAbort = () => controller.abort(callerSignal?.reason);
    callerSignal?.addEventListener('abort', onAbort, { once: true });
    if (callerSignal?.aborted) controller.abort(callerSignal.reason);
    try {
      return await work(picked.slot, controller.signal);
    } finally {
      callerSignal?.removeEventListener('abort', onAbort);
      running.delete(controller);
      picked.slot.busy = false;
    }
  }

  /** As llama.cpp's server begins every prompt: with BOS where the model asks for it. */
  function promptTokensOf(loaded: LlamaModel, text: string): Token[] {
    const bos = loaded.tokens.shouldPrependBosToken && loaded.tokens.bos !== null ? [loaded.tokens.bos] : [];
    return [...bos, ...loaded.tokenize(text)];
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

  async function scoreOn(
    opened: Decoder,
    slot: Slot,
    loaded: LlamaModel,
    request: LogLikelihoodRequest,
    signal: AbortSignal,
  ): Promise<LogLikelihoodResult> {
    const split = splitTokens(loaded, request);
    const window = opened.sequenceSize - 1;
    const truncated = Math.max(0, split.whole.length - window);
    const tokens = split.whole.slice(truncated);
    // At least one context token stays: its output scores the first continuation token.
    const firstScored = Math.max(1, split.contextLength - truncated);
    let logprob = 0;
    let greedy = true;
    // The last token is only scored, never read: its output would score a token after the text.
    await opened.score({
      seq: slot.seq,
      tokens: tokens.slice(0, -1),
      scoreFrom: firstScored - 1,
      signal,
      onScore: (position, output) => {
        const scored = scoreLogits(output.logits(), tokens[position + 1] as number, 0);
        logprob += scored.logprob;
        if (!scored.argmax) greedy = false;
      },
    });
    signal.throwIfAborted();
    return { logprob, tokens: tokens.length - firstScored, greedy, truncated };
  }

  /** `token` as `output` scores it, with its `top` most likely alternatives. */
  function tokenLogprob(token: number, output: TokenOutput, top: number): TokenLogprob {
    const described = describe as NonNullable<typeof describe>;
    const scored = scoreLogits(output.logits(), token, top);
    return {
      ...described(token as Token),
      logprob: floored(scored.logprob),
      top: scored.top.map((alternative) => ({
        ...described(alternative.token as Token),
        logprob: floored(alternative.logprob),
      })),
    };
  }

  interface SampleRequest extends GenerationParams {
    logprobs?: number | undefined;
    onText?: ((text: string) => void) | undefined;
  }

  interface Sampled {
    text: string;
    finishReason: FinishReason;
    cached: number;
    completionTokens: number;
    logprobs?: TokenLogprob[];
    promptLogprobs?: TokenLogprob[];
  }

  /**
   * Samples up to `maxTokens` after `prompt` on `slot`, ending early at EOG, a template stop
   * token or a stop string (not part of the text). Streams one piece per token, holding back
   * what may yet begin a stop string. With `scorePrompt`, every prompt token after the first
   * is scored in the same pass.
   */
  async function sampleOn(
    opened: Decoder,
    loaded: LlamaModel,
    slot: Slot,
    prompt: Token[],
    request: SampleRequest,
    extra: {
      grammar?: LlamaGrammar | undefined;
      /** Tool calls' grammar, in place of `grammar`. */
      toolGrammar?: SamplerGrammar | undefined;
      /** Text that starts a tool call: from there on the answer is held back from streaming. */
      holdFrom?: string | undefined;
      triggers?: StopTriggers | undefined;
      scorePrompt?: boolean;
      /** A chat answer begins at its first non-space character (SentencePiece's leading space, a newline). */
      trimStart?: boolean;
    },
    signal: AbortSignal,
  ): Promise<Sampled> {
    const described = describe as NonNullable<typeof describe>;
    const window = opened.sequenceSize - 1;
    const maxTokens = Math.min(request.maxTokens ?? options.defaults.maxTokens, window - prompt.length);
    const top = request.logprobs ?? 0;
    const stops = [
      ...(request.stop ?? []),
      ...(extra.triggers?.texts ?? []),
      ...((extra.grammar?.stopGenerationTriggers ?? []).filter((trigger) => typeof trigger === 'string') as string[]),
    ];
    const stopTokens = extra.triggers?.tokens;
    const decoder = new TextDecoder();
    const logprobs: TokenLogprob[] = [];
    const promptLogprobs: TokenLogprob[] | undefined = extra.scorePrompt
      ? [{ ...described(prompt[0] as Token), logprob: null, top: [] }]
      : undefined;
    let text = '';
    let streamed = 0;
    /** Where each token's text ends: text held back and released later still goes out one piece per token. */
    const ends: number[] = [];
    const release = (upTo: number) => {
      if (!request.onText) return;
      while (streamed < upTo) {
        const end = Math.min(ends.find((at) => at > streamed) ?? upTo, upTo);
        request.onText(text.slice(streamed, end));
        streamed = end;
      }
    };
    let stopped = false;
    const holdFrom = extra.holdFrom;
    let heldFrom: number | undefined;
    /** Where streaming may go up to: not into a stop string, nor into a tool call. */
    const releasable = () => {
      if (heldFrom !== undefined) return heldFrom;
      return text.length - Math.max(heldBack(text, stops), holdFrom ? heldBack(text, [holdFrom]) : 0);
    };
    const scorePrompt = promptLogprobs
      ? {
          scoreFrom: 0,
          onScore: (position: number, output: TokenOutput) => {
            if (position < prompt.length - 1) {
              promptLogprobs.push(tokenLogprob(prompt[position + 1] as number, output, top));
            }
          },
        }
      : undefined;
    if (maxTokens <= 0) {
      // Nothing to sample, but the prompt may still be scored (lm-evaluation-harness's echo).
      const scored =
        scorePrompt && prompt.length > 1
          ? await opened.score({ seq: slot.seq, tokens: prompt.slice(0, -1), signal, ...scorePrompt })
          : undefined;
      return {
        text: '',
        finishReason: scored?.cancelled ? 'cancelled' : 'length',
        cached: 0,
        completionTokens: 0,
        ...(request.logprobs !== undefined ? { logprobs: [] } : {}),
        ...(promptLogprobs ? { promptLogprobs } : {}),
      };
    }
    const sampler = samplerChain(
      opened,
      request,
      maxTokens,
      extra.toolGrammar ??
        (extra.grammar
          ? { text: extra.grammar.grammar, root: extra.grammar.rootRuleName, param: 'response_format' }
          : undefined),
    );
    const result = await opened.generate({
      seq: slot.seq,
      tokens: prompt,
      sampler,
      maxTokens,
      signal,
      ...scorePrompt,
      onToken: (token, output) => {
        // Yielded so that it is counted and scored like any sampled token, as vLLM counts it.
        if (request.logprobs !== undefined) logprobs.push(tokenLogprob(token, output, top));
        if (loaded.isEogToken(token as Token) || stopTokens?.has(token)) {
          stopped = true;
          return false;
        }
        const before = text.length;
        text += decoder.decode(Uint8Array.from(described(token as Token).bytes), { stream: true });
        if (extra.trimStart && streamed === 0) {
          const trimmed = text.trimStart();
          const dropped = text.length - trimmed.length;
          if (dropped > 0) for (let i = 0; i < ends.length; i++) ends[i] = Math.max(0, (ends[i] as number) - dropped);
          text = trimmed;
        }
        ends.push(text.length);
        const cut = stops.length > 0 ? stopCut(text, stops, before) : undefined;
        if (cut !== undefined) {
          text = text.slice(0, cut);
          stopped = true;
          return false;
        }
        if (holdFrom && heldFrom === undefined) {
          const at = text.indexOf(holdFrom, Math.max(0, before - holdFrom.length + 1));
          if (at >= 0) heldFrom = at;
        }
        if (signal.aborted) return false;
        release(releasable());
        return true;
      },
    });
    if (!stopped) text += decoder.decode();
    if (extra.grammar?.trimWhitespaceSuffix) text = text.trimEnd();
    release(heldFrom ?? text.length);
    const finishReason: FinishReason = result.cancelled
      ? 'cancelled'
      : stopped
        ? 'stop'
        : result.sampled >= maxTokens
          ? 'length'
          : 'stop';
    return {
      text,
      finishReason,
      // The last prompt token is always evaluated again: its logits give the first answer token.
      cached: result.reused,
      completionTokens: result.sampled,
      ...(request.logprobs !== undefined && finishReason !== 'cancelled' ? { logprobs } : {}),
      ...(promptLogprobs ? { promptLogprobs } : {}),
    };
  }

  function ready(): { opened: Decoder; loaded: LlamaModel } {
    if (state.state !== 'ready' || !decoder || !model) throw new Error(`model is ${state.state}`);
    return { opened: decoder, loaded: model };
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
      const { opened, loaded } = ready();
      const first = splitTokens(loaded, requests[0] ?? { context: '', continuation: '' }).whole;
      return withSlot(opened, first, signal, async (slot, aborted) => {
        const results: LogLikelihoodResult[] = [];
        for (const request of requests) {
          aborted.throwIfAborted();
          results.push(await scoreOn(opened, slot, loaded, request, aborted));
        }
        return results;
      });
    },
    async complete(request: CompletionRequest): Promise<CompletionResult> {
      const { opened, loaded } = ready();
      const prompt = promptTokensOf(loaded, request.prompt);
      const window = opened.sequenceSize - 1;
      if (prompt.length > window) throw new PromptTooLongError(window, prompt.length);
      if (prompt.length === 0) {
        throw new ValidationError('prompt: empty, and this model has no BOS token to begin from', { param: 'prompt' });
      }
      // Checked here too, so that an id outside the vocabulary is refused before a slot is taken.
      logitBiasOf(opened, request.logitBias);
      const started = performance.now();
      return withSlot(opened, prompt, request.signal, async (slot, signal) => {
        const sampled = await sampleOn(
          opened,
          loaded,
          slot,
          prompt,
          request,
          { scorePrompt: request.promptLogprobs === true && request.logprobs !== undefined },
          signal,
        );
        return {
          text: sampled.text,
          finishReason: sampled.finishReason,
          promptTokens: prompt.length,
          cachedPromptTokens: sampled.cached,
          completionTokens: sampled.completionTokens,
          computeMs: performance.now() - started,
          ...(sampled.promptLogprobs ? { promptLogprobs: sampled.promptLogprobs } : {}),
          ...(sampled.logprobs ? { logprobs: sampled.logprobs } : {}),
        };
      });
    },
    async generate(request: GenerationRequest): Promise<GenerationResult> {
      const { opened, loaded } = ready();
      const tools = offeredTools(request.tools, request.toolChoice);
      if (tools && request.responseFormat) {
        throw new UnsupportedValueError(
          'response_format',
          'response_format cannot be combined with tools here: ask for the structure as a tool call (tool_choice names it), or drop tools',
        );
      }
      const contextState = contextStateOf(request.messages, tools);
      const promptText = contextState.contextText;
      const promptTokens = promptText.tokenize(loaded.tokenizer);
      const window = opened.sequenceSize - 1;
      if (promptTokens.length > window) throw new PromptTooLongError(window, promptTokens.length);
      logitBiasOf(opened, request.logitBias);
      const grammar = request.responseFormat ? await grammarFor(request.responseFormat) : undefined;
      const calling = tools && toolTemplate ? await toolGrammarFor(request, tools, toolTemplate) : undefined;
      const triggers = stopTriggersOf(loaded, contextState.stopGenerationTriggers);
      const started = performance.now();
      return withSlot(opened, promptTokens, request.signal, async (slot, signal) => {
        const sampled = await sampleOn(
          opened,
          loaded,
          slot,
          promptTokens,
          request,
          { grammar, toolGrammar: calling?.grammar, holdFrom: calling?.trigger, triggers, trimStart: true },
          signal,
        );
        const answer = calling
          ? toolAnswer(sampled, calling)
          : { text: sampled.text, finishReason: sampled.finishReason };
        return {
          ...answer,
          prompt: promptText.toString(),
          promptTokens: promptTokens.length,
          cachedPromptTokens: sampled.cached,
          completionTokens: sampled.completionTokens,
          computeMs: performance.now() - started,
          ...(sampled.logprobs ? { logprobs: sampled.logprobs } : {}),
        };
      });
    },
    async close() {
      for (const controller of running) controller.abort(new Error('runtime closing'));
      await loading?.catch(() => undefined);
      slots = [];
      await decoder?.close();
      await model?.dispose();
      state = { state: 'closed', detail: 'closed' };
    },
  };
}
