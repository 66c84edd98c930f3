import { createHash } from 'node:crypto';
import { buildPromptMessages } from '../chat/index.ts';
import type { ChatMessage, FinishReason, LlmRuntime } from '../llm/index.ts';
import type { ModelBundle } from '../models/index.ts';
import type { GenerativeItem } from './suite.ts';

/** How chat asks the model (config `serving.systemPrompt`, `serving.contextTemplate`). */
export interface EvalPromptSettings {
  systemPrompt: string;
  /** Appended to the system prompt when there are passages; `{context}` marks where they go. */
  contextTemplate: string;
}

/** `serving.systemPrompt` and `serving.contextTemplate` defaults (config/schema.ts), for an evaluator given none. */
export const DEFAULT_EVAL_PROMPT: EvalPromptSettings = {
  systemPrompt: 'You are a helpful assistant.',
  contextTemplate: 'Answer using the passages below when they are relevant, and cite them as [n].\n\n{context}',
};

/**
 * The messages chat would send for this question with these passages retrieved, built by
 * chat's own prompt builder: the bundle's system prompt (else the configured one) with the
 * numbered passages where `{context}` says, or appended through the context template.
 */
export function answerMessages(
  question: string,
  contexts: readonly string[],
  systemPrompt: string,
  contextTemplate: string,
): ChatMessage[] {
  return buildPromptMessages(
    [{ role: 'user', content: question }],
    contexts.map((text) => ({ text })),
    { systemPrompt, contextTemplate },
  );
}

export type GeneratedAnswer =
  | {
      ok: true;
      text: string;
      finishReason: FinishReason;
      completionTokens: number;
      /** The passages that were in the prompt: the first `contexts.length` of the item's, whole. */
      contexts: string[];
      /** The answer budget granted: smaller than asked for when the context window left less room. */
      maxTokens: number;
    }
  | { ok: false; reason: 'prompt_too_long'; promptTokens: number; contextSize: number };

/** Room kept for the answer before passages are placed (unless the answer budget is smaller); chat keeps the same. */
const MIN_ANSWER_TOKENS = 32;

/**
 * Answers items greedily (temperature 0) through the runtime, once per item and answer budget:
 * the three generative checks of one evaluation share the answers. Passages that do not fit
 * the context are dropped from the end, whole, as chat's context budget drops them.
 */
export function createAnswerer(runtime: LlmRuntime, bundle: ModelBundle, prompt: EvalPromptSettings | undefined) {
  const settings = prompt ?? DEFAULT_EVAL_PROMPT;
  const systemPrompt = bundle.systemPrompt ?? settings.systemPrompt;
  const answers = new Map<string, Promise<GeneratedAnswer>>();

  async function generate(item: GenerativeItem, maxTokens: number, signal?: AbortSignal): Promise<GeneratedAnswer> {
    const build = (contexts: readonly string[]) =>
      answerMessages(item.question, contexts, systemPrompt, settings.contextTemplate);
    let contexts = [...item.contexts];
    let budget = maxTokens;
    const meter = runtime.promptMeter();
    if (meter) {
      const limit = meter.contextSize;
      if (meter.count(build(contexts)) + maxTokens > limit) {
        const bare = meter.count(build([]));
        if (bare + 1 > limit) return { ok: false, reason: 'prompt_too_long', promptTokens: bare, contextSize: limit };
        const reserve = Math.min(maxTokens, Math.max(MIN_ANSWER_TOKENS, Math.floor(limit / 4)));
        const room = Math.max(bare, limit - reserve);
        let kept = 0;
        while (kept < contexts.length && meter.count(build(contexts.slice(0, kept + 1))) <= room) kept++;
        contexts = contexts.slice(0, kept);
        budget = Math.min(maxTokens, limit - meter.count(build(contexts)));
      }
    }
    const result = await runtime.generate({
      messages: build(contexts),
      temperature: 0,
      topP: 1,
      maxTokens: budget,
      signal,
    });
    return {
      ok: true,
      text: result.text,
      finishReason: result.finishReason,
      completionTokens: result.completionTokens,
      contexts,
      maxTokens: budget,
    };
  }

  return {
    answer(item: GenerativeItem, maxTokens: number, signal?: AbortSignal): Promise<GeneratedAnswer> {
      const key = createHash('sha256')
        .update(JSON.stringify([item.id, item.question, item.contexts, maxTokens]))
        .digest('hex');
      let answer = answers.get(key);
      if (!answer) {
        answer = generate(item, maxTokens, signal);
        // A failed generation is not kept: the error reaches the caller, and a retry asks again.
        answer.catch(() => answers.delete(key));
        answers.set(key, answer);
      }
      return answer;
    },
  };
}

export type Answerer = ReturnType<typeof createAnswerer>;
