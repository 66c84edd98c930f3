import OpenAI from 'openai';
import type { Logger } from '../core/logger.ts';
import type { FinishReason, GenerationRequest, GenerationResult, LlmRuntime, RuntimeStatus } from './runtime.ts';

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
    async generate(request: GenerationRequest): Promise<GenerationResult> {
      const started = performance.now();
      const stop = request.stop ?? [];
      let text = '';
      let finishReason: FinishReason = 'stop';
      let promptTokens = 0;
      let cachedPromptTokens = 0;
      let completionTokens = 0;
      let chunks = 0;
      try {
        const stream = await client.chat.completions.create(
          {
            model: options.model,
            messages: request.messages,
            stream: true,
            stream_options: { include_usage: true },
            temperature: request.temperature ?? options.defaults.temperature,
            top_p: request.topP ?? options.defaults.topP,
            max_tokens: request.maxTokens ?? options.defaults.maxTokens,
            ...(stop.length > 0 ? { stop } : {}),
            ...(request.seed !== undefined ? { seed: request.seed } : {}),
          },
          request.signal ? { signal: request.signal } : {},
        );
        for await (const chunk of stream) {
          const choice = chunk.choices[0];
          const delta = choice?.delta?.content;
          if (delta) {
            text += delta;
            chunks += 1;
            request.onText?.(delta);
          }
          if (choice?.finish_reason === 'length') finishReason = 'length';
          if (chunk.usage) {
            promptTokens = chunk.usage.prompt_tokens;
            cachedPromptTokens = chunk.usage.prompt_tokens_details?.cached_tokens ?? 0;
            completionTokens = chunk.usage.completion_tokens;
          }
        }
      } catch (error) {
        if (!request.signal?.aborted) throw error;
        finishReason = 'cancelled';
      }
      if (request.signal?.aborted) finishReason = 'cancelled';
      return {
        text,
        finishReason,
        prompt: JSON.stringify(request.messages),
        promptTokens,
        cachedPromptTokens,
        // Servers that omit usage in streams still send one content delta per token.
        completionTokens: completionTokens || chunks,
        computeMs: performance.now() - started,
      };
    },
    async close() {
      state = { state: 'closed', detail: 'closed' };
    },
  };
}
