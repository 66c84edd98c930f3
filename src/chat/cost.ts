import type { LlmRuntime } from '../llm/index.ts';

export interface Pricing {
  promptPer1k: number;
  completionPer1k: number;
  perComputeSecond: number;
}

/**
 * Paid APIs bill by tokens; a self-hosted model costs the machine time it occupied. Both land
 * in one currency so the two can be compared answer by answer.
 */
export function answerCost(
  kind: LlmRuntime['kind'],
  pricing: Pricing,
  usage: { promptTokens: number; completionTokens: number; computeMs: number },
): number {
  if (kind === 'openai') {
    return (
      (usage.promptTokens / 1000) * pricing.promptPer1k + (usage.completionTokens / 1000) * pricing.completionPer1k
    );
  }
  return (usage.computeMs / 1000) * pricing.perComputeSecond;
}
