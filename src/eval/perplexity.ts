import type { LlmRuntime } from '../llm/index.ts';
import type { ItemScore, TextItem } from './suite.ts';

/** Pieces short enough to score in one window of any model Bertha serves (the starter's is 1024 tokens). */
const PIECE_CHARS = 800;

function pieces(text: string): string[] {
  const out: string[] = [];
  let rest = text.trim();
  while (rest.length > PIECE_CHARS) {
    const cut = rest.lastIndexOf(' ', PIECE_CHARS);
    const at = cut > PIECE_CHARS / 2 ? cut : PIECE_CHARS;
    out.push(rest.slice(0, at));
    rest = rest.slice(at);
  }
  if (rest) out.push(rest);
  return out;
}

/**
 * Perplexity of held-out text from the model's own logits: each piece is scored as the
 * continuation of an empty context (BOS only). `token_perplexity` compares versions that share
 * a tokenizer; `bits_per_byte` compares any two. An item's score is its mean log-likelihood per
 * byte, so higher is better, as with accuracy.
 */
export async function scorePerplexity(
  runtime: LlmRuntime,
  items: TextItem[],
  signal?: AbortSignal,
): Promise<{ items: ItemScore[]; metrics: Record<string, number> }> {
  const scored: ItemScore[] = [];
  let logprob = 0;
  let tokens = 0;
  let bytes = 0;
  for (const item of items) {
    const parts = pieces(item.text);
    const results = await runtime.logLikelihood(
      parts.map((continuation) => ({ context: '', continuation })),
      signal,
    );
    const itemLogprob = results.reduce((sum, result) => sum + result.logprob, 0);
    const itemTokens = results.reduce((sum, result) => sum + result.tokens, 0);
    const itemBytes = parts.reduce((sum, part) => sum + Buffer.byteLength(part), 0);
    logprob += itemLogprob;
    tokens += itemTokens;
    bytes += itemBytes;
    scored.push({
      id: item.id,
      score: itemLogprob / Math.max(1, itemBytes),
      details: { logprob: itemLogprob, tokens: itemTokens, bytes: itemBytes },
    });
  }
  // No text scored is no figure: a perplexity of 1 over 0 tokens would read as a perfect model.
  if (tokens === 0) return { items: scored, metrics: { tokens, items: scored.length } };
  return {
    items: scored,
    metrics: {
      token_perplexity: Math.exp(-logprob / tokens),
      bits_per_byte: -logprob / Math.max(1, bytes) / Math.LN2,
      tokens,
      items: scored.length,
    },
  };
}
