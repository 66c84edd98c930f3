import OpenAI from 'openai';
import { BerthaError, UnsupportedError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type {
  ChatMessage,
  CompletionRequest,
  CompletionResult,
  FinishReason,
  GenerationParams,
  GenerationRequest,
  GenerationResult,
  LlmRuntime,
  LogLikelihoodResult,
  ResponseFormat,
  RuntimeStatus,
  TokenLogprob,
  ToolCall,
  ToolChoice,
  ToolDefinition,
} from './runtime.ts';
import { newCallId } from './tool-calls.ts';

export interface OpenAiRuntimeOptions {
  baseUrl: string;
  apiKey: string;
  /** The upstream's model id. */
  model: string;
  parallel: number;
  timeoutMs: number;
  defaults: { temperature: number; topP: number; maxTokens: number };
  logger: Logger;
}

/** A token's bytes where the upstream sends none: its text, or the bytes OpenAI writes as `bytes:\xe2\x80`. */
function utf8(token: string): number[] {
  if (/^bytes:(\\x[0-9a-fA-F]{2})+$/.test(token)) {
    return token
      .slice('bytes:'.length)
      .split('\\x')
      .filter(Boolean)
      .map((hex) => Number.parseInt(hex, 16));
  }
  return [...Buffer.from(token)];
}

/** The legacy completions `logprobs` object as TokenLogprobs, each with its text offset (which tells an echoed prompt's tokens apart). */
function completionLogprobs(
  logprobs: OpenAI.Completions.CompletionChoice.Logprobs | null | undefined,
  top: number,
): Array<TokenLogprob & { offset: number }> {
  const tokens = logprobs?.tokens ?? [];
  return tokens.map((token, i) => ({
    token,
    bytes: utf8(token),
    offset: logprobs?.text_offset?.[i] ?? 0,
    logprob: logprobs?.token_logprobs?.[i] ?? null,
    top: Object.entries(logprobs?.top_logprobs?.[i] ?? {})
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([alternative, logprob]) => ({ token: alternative, bytes: utf8(alternative), logprob })),
  }));
}

/** The sampling fields every OpenAI-compatible endpoint shares, sent only when set. */
function samplingFields(params: GenerationParams) {
  const stop = params.stop ?? [];
  return {
    ...(stop.length > 0 ? { stop } : {}),
    ...(params.seed !== undefined ? { seed: params.seed } : {}),
    ...(params.logitBias !== undefined ? { logit_bias: { ...params.logitBias } } : {}),
    ...(params.presencePenalty !== undefined ? { presence_penalty: params.presencePenalty } : {}),
    ...(params.frequencyPenalty !== undefined ? { frequency_penalty: params.frequencyPenalty } : {}),
  };
}

function responseFormatField(format: ResponseFormat): OpenAI.Chat.ChatCompletionCreateParams['response_format'] {
  if (format.type === 'json_object') return { type: 'json_object' };
  return {
    type: 'json_schema',
    json_schema: {
      name: format.name,
      ...(format.schema !== undefined ? { schema: format.schema } : {}),
      ...(format.strict !== undefined ? { strict: format.strict } : {}),
    },
  };
}

function messageParam(message: ChatMessage): OpenAI.Chat.ChatCompletionMessageParam {
  switch (message.role) {
    case 'system':
    case 'user':
      return { role: message.role, content: message.content };
    case 'assistant':
      if (!message.toolCalls?.length) return { role: 'assistant', content: message.content };
      return {
        role: 'assistant',
        // OpenAI's shape for a turn that only calls tools: null content, not an empty string.
        content: message.content || null,
        tool_calls: message.toolCalls.map((call) => ({
          id: call.id,
          type: 'function',
          function: { name: call.name, arguments: call.arguments },
        })),
      };
    case 'tool':
      // An unanswerable turn without an id: the upstream's 400 says so better than we could.
      return { role: 'tool', tool_call_id: message.toolCallId ?? '', content: message.content };
  }
}

/** `tools`, `tool_choice` and `parallel_tool_calls`, sent only with tools: some servers refuse the others alone. */
function toolFields(
  tools: ToolDefinition[] | undefined,
  choice: ToolChoice | undefined,
  parallel: boolean | undefined,
): Pick<OpenAI.Chat.ChatCompletionCreateParams, 'tools' | 'tool_choice' | 'parallel_tool_calls'> {
  if (!tools?.length) return {};
  return {
    tools: tools.map((tool) => ({
      type: 'function',
      function: {
        name: tool.name,
        ...(tool.description !== undefined ? { description: tool.description } : {}),
        ...(tool.parameters !== undefined ? { parameters: tool.parameters } : {}),
      },
    })),
    ...(choice !== undefined
      ? { tool_choice: typeof choice === 'string' ? choice : { type: 'function', function: { name: choice.name } } }
      : {}),
    ...(parallel !== undefined ? { parallel_tool_calls: parallel } : {}),
  };
}

/**
 * The upstream's own 400 (a schema it cannot enforce, a field it does not know) reaches the
 * client as a 400 naming the same parameter, not as a failed generation.
 */
function refusedUpstream(error: unknown, baseUrl: string): unknown {
  if (!(error instanceof OpenAI.BadRequestError)) return error;
  return new BerthaError('upstream_refused', `upstream ${baseUrl} refused the request: ${error.message}`, 400, {
    ...(error.param ? { param: error.param } : {}),
  });
}

/** LlmRuntime on any OpenAI-compatible server (vLLM, llama.cpp server, Ollama, OpenAI). */
export function createOpenAiRuntime(options: OpenAiRuntimeOptions): LlmRuntime {
  const client = new OpenAI({
    baseURL: options.baseUrl,
    // Local servers accept any key; the client insists on one.
    apiKey: options.apiKey || 'none',
    timeout: options.timeoutMs,
    maxRetries: 0,
  });
  let state: RuntimeStatus = { state: 'idle', detail: 'not checked' };

  return {
    kind: 'openai',
    parallelism: options.parallel,
    async load(signal) {
      state = { state: 'loading', detail: `contacting ${options.baseUrl}` };
      try {
        const models = await client.models.list(signal ? { signal } : {});
        const ids = models.data.map((model) => model.id);
        if (!ids.includes(options.model)) {
          throw new Error(
            `upstream ${options.baseUrl} does not serve '${options.model}' (it serves ${ids.join(', ')})`,
          );
        }
        state = { state: 'ready', detail: `${options.model} at ${options.baseUrl}` };
      } catch (error) {
        state = { state: 'failed', detail: (error as Error).message };
        throw error;
      }
    },
    status: () => state,
    promptMeter: () => undefined,
    async logLikelihood(requests, signal) {
      // As lm-evaluation-harness's `local-completions`: the legacy completions API with
      // `echo` returns the prompt's own token logprobs (vLLM, llama.cpp's server, Bertha).
      const results: LogLikelihoodResult[] = [];
      for (const request of requests) {
        const prompt = request.context + request.continuation;
        let completion: Awaited<ReturnType<typeof client.completions.create>>;
        try {
          completion = await client.completions.create(
            { model: options.model, prompt, echo: true, logprobs: 1, max_tokens: 1, temperature: 0 },
            signal ? { signal } : {},
          );
        } catch (error) {
          throw new UnsupportedError(
            `upstream ${options.baseUrl} gave no prompt log-likelihoods (POST /v1/completions with echo and logprobs): ${(error as Error).message}`,
          );
        }
        const logprobs = completion.choices[0]?.logprobs;
        const offsets = logprobs?.text_offset ?? [];
        const values = logprobs?.token_logprobs ?? [];
        const tokens = logprobs?.tokens ?? [];
        const top = logprobs?.top_logprobs ?? [];
        let logprob = 0;
        let count = 0;
        let greedy = true;
        for (let i = 0; i < offsets.length; i++) {
          const offset = offsets[i] as number;
          if (offset < request.context.length || offset >= prompt.length) continue;
          logprob += values[i] ?? Number.NEGATIVE_INFINITY;
          count += 1;
          const alternatives = Object.entries(top[i] ?? {}).sort((a, b) => b[1] - a[1]);
          if (alternatives[0] && alternatives[0][0] !== tokens[i]) greedy = false;
        }
        if (count === 0) throw new UnsupportedError(`upstream ${options.baseUrl} echoed no continuation tokens`);
        results.push({ logprob, tokens: count, greedy, truncated: 0 });
      }
      return results;
    },
    async complete(request: CompletionRequest): Promise<CompletionResult> {
      const started = performance.now();
      const echo = request.promptLogprobs === true && request.logprobs !== undefined;
      let completion: OpenAI.Completions.Completion;
      try {
        // Not streamed: servers differ in how they stream an echoed prompt and its logprobs.
        completion = await client.completions.create(
          {
            model: options.model,
            prompt: request.prompt,
            max_tokens: request.maxTokens ?? options.defaults.maxTokens,
            temperature: request.temperature ?? options.defaults.temperature,
            top_p: request.topP ?? options.defaults.topP,
            ...samplingFields(request),
            ...(request.logprobs !== undefined ? { logprobs: request.logprobs } : {}),
            ...(echo ? { echo: true } : {}),
          },
          request.signal ? { signal: request.signal } : {},
        );
      } catch (error) {
        if (!request.signal?.aborted) throw refusedUpstream(error, options.baseUrl);
        return {
          text: '',
          finishReason: 'cancelled',
          promptTokens: 0,
          completionTokens: 0,
          computeMs: performance.now() - started,
        };
      }
      const choice = completion.choices[0];
      let text = choice?.text ?? '';
      if (echo && text.startsWith(request.prompt)) text = text.slice(request.prompt.length);
      const tokens = request.logprobs !== undefined ? completionLogprobs(choice?.logprobs, request.logprobs) : [];
      const strip = ({ offset: _offset, ...token }: TokenLogprob & { offset: number }): TokenLogprob => token;
      if (text) request.onText?.(text);
      return {
        text,
        finishReason: choice?.finish_reason === 'length' ? 'length' : 'stop',
        promptTokens: completion.usage?.prompt_tokens ?? 0,
        cachedPromptTokens: completion.usage?.prompt_tokens_details?.cached_tokens ?? 0,
        completionTokens: completion.usage?.completion_tokens ?? 0,
        computeMs: performance.now() - started,
        ...(echo ? { promptLogprobs: tokens.filter((token) => token.offset < request.prompt.length).map(strip) } : {}),
        ...(request.logprobs !== undefined
          ? {
              logprobs: tokens.filter((token) => !echo || token.offset >= request.prompt.length).map(strip),
            }
          : {}),
      };
    },
    async generate(request: GenerationRequest): Promise<GenerationResult> {
      const started = performance.now();
      let text = '';
      let finishReason: FinishReason = 'stop';
      let promptTokens = 0;
      let cachedPromptTokens = 0;
      let completionTokens = 0;
      let chunks = 0;
      const logprobs: TokenLogprob[] = [];
      // By the delta's `index`: a call's arguments arrive in pieces, interleaved with other calls'.
      const calls = new Map<number, ToolCall>();
      try {
        const stream = await client.chat.completions.create(
          {
            model: options.model,
            messages: request.messages.map(messageParam),
            stream: true,
            stream_options: { include_usage: true },
            temperature: request.temperature ?? options.defaults.temperature,
            top_p: request.topP ?? options.defaults.topP,
            max_tokens: request.maxTokens ?? options.defaults.maxTokens,
            ...samplingFields(request),
            ...(request.responseFormat ? { response_format: responseFormatField(request.responseFormat) } : {}),
            ...(request.logprobs !== undefined ? { logprobs: true, top_logprobs: request.logprobs } : {}),
            ...toolFields(request.tools, request.toolChoice, request.parallelToolCalls),
          },
          request.signal ? { signal: request.signal } : {},
        );
        for await (const chunk of stream) {
          const choice = chunk.choices[0];
          for (const token of choice?.logprobs?.content ?? []) {
            logprobs.push({
              token: token.token,
              bytes: token.bytes ?? utf8(token.token),
              logprob: token.logprob,
              top: token.top_logprobs.map((alternative) => ({
                token: alternative.token,
                bytes: alternative.bytes ?? utf8(alternative.token),
                logprob: alternative.logprob,
              })),
            });
          }
          const delta = choice?.delta?.content;
          if (delta) {
            text += delta;
            chunks += 1;
            request.onText?.(delta);
          }
          for (const piece of choice?.delta?.tool_calls ?? []) {
            const call = calls.get(piece.index) ?? { id: '', name: '', arguments: '' };
            if (piece.id) call.id = piece.id;
            if (piece.function?.name) call.name = piece.function.name;
            call.arguments += piece.function?.arguments ?? '';
            calls.set(piece.index, call);
          }
          if (choice?.finish_reason === 'length') finishReason = 'length';
          if (chunk.usage) {
            promptTokens = chunk.usage.prompt_tokens;
            cachedPromptTokens = chunk.usage.prompt_tokens_details?.cached_tokens ?? 0;
            completionTokens = chunk.usage.completion_tokens;
          }
        }
      } catch (error) {
        if (!request.signal?.aborted) throw refusedUpstream(error, options.baseUrl);
        finishReason = 'cancelled';
      }
      if (request.signal?.aborted) finishReason = 'cancelled';
      // Calls decide the finish even where the upstream says `stop` (some servers do); a
      // `length` finish may have cut a call's arguments short, so its calls are dropped.
      const toolCalls =
        finishReason === 'stop' && calls.size > 0
          ? [...calls.entries()].sort(([a], [b]) => a - b).map(([, call]) => ({ ...call, id: call.id || newCallId() }))
          : undefined;
      return {
        text,
        finishReason: toolCalls ? 'tool_calls' : finishReason,
        ...(toolCalls ? { toolCalls } : {}),
        prompt: JSON.stringify(request.messages),
        promptTokens,
        cachedPromptTokens,
        // Servers that omit usage in streams still send one content delta per token.
        completionTokens: completionTokens || chunks,
        computeMs: performance.now() - started,
        ...(request.logprobs !== undefined ? { logprobs } : {}),
      };
    },
    async close() {
      state = { state: 'closed', detail: 'closed' };
    },
  };
}
