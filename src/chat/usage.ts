import type { PromptTrim } from './context-budget.ts';

/** OpenAI's `usage` object for an answer; `cached_tokens` counts prompt tokens read from the runtime's cache. */
export function usageJson(answer: { promptTokens: number; cachedPromptTokens: number; completionTokens: number }) {
  return {
    prompt_tokens: answer.promptTokens,
    completion_tokens: answer.completionTokens,
    total_tokens: answer.promptTokens + answer.completionTokens,
    prompt_tokens_details: { cached_tokens: answer.cachedPromptTokens },
  };
}

/** Bertha's extension beside `sources`: what the context budget left out of the prompt. */
export function trimmedJson(trim: PromptTrim) {
  return {
    dropped_chunk_ids: trim.droppedChunkIds,
    cut_chunks: trim.cutChunks.map((cut) => ({
      chunk_id: cut.chunkId,
      kept_chars: cut.keptChars,
      total_chars: cut.totalChars,
    })),
    dropped_messages: trim.droppedMessages,
    max_tokens: trim.maxTokens,
  };
}
