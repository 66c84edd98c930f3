/** OpenAI's `usage` object for an answer; `cached_tokens` counts prompt tokens read from the runtime's cache. */
export function usageJson(answer: { promptTokens: number; cachedPromptTokens: number; completionTokens: number }) {
  return {
    prompt_tokens: answer.promptTokens,
    completion_tokens: answer.completionTokens,
    total_tokens: answer.promptTokens + answer.completionTokens,
    prompt_tokens_details: { cached_tokens: answer.cachedPromptTokens },
  };
}
