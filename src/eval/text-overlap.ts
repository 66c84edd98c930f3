/**
 * Overlap of an answer with a reference answer: SQuAD's token F1 and ROUGE-L. Both are pure
 * functions of two strings, so a score can be recomputed from the answer stored with it.
 */

/** Characters SQuAD's evaluation script deletes (Python's `string.punctuation`), plus Unicode punctuation. */
const PUNCTUATION = /[\p{P}\p{S}]/gu;
const ARTICLES = /\b(a|an|the)\b/g;

/**
 * SQuAD v1.1's `normalize_answer` (lower case, punctuation deleted, articles a/an/the removed,
 * whitespace collapsed), split into words: what token F1 counts.
 */
export function answerTokens(text: string): string[] {
  return text
    .normalize('NFKC')
    .toLowerCase()
    .replace(PUNCTUATION, '')
    .replace(ARTICLES, ' ')
    .split(/\s+/)
    .filter(Boolean);
}

/**
 * SQuAD's token F1: the harmonic mean of precision and recall of the shared words (a
 * multiset: a word counts as often as it occurs in both). Two empty answers agree (1); one
 * empty answer against a non-empty one scores 0.
 */
export function tokenF1(prediction: string, reference: string): number {
  const predicted = answerTokens(prediction);
  const expected = answerTokens(reference);
  if (predicted.length === 0 || expected.length === 0) return predicted.length === expected.length ? 1 : 0;
  const counts = new Map<string, number>();
  for (const token of expected) counts.set(token, (counts.get(token) ?? 0) + 1);
  let shared = 0;
  for (const token of predicted) {
    const left = counts.get(token) ?? 0;
    if (left > 0) {
      shared++;
      counts.set(token, left - 1);
    }
  }
  if (shared === 0) return 0;
  const precision = shared / predicted.length;
  const recall = shared / expected.length;
  return (2 * precision * recall) / (precision + recall);
}

/** Lower-cased runs of letters and digits: the default tokenizer of Google's `rouge-score`, without stemming. */
export function rougeTokens(text: string): string[] {
  return (
    text
      .normalize('NFKC')
      .toLowerCase()
      .match(/[\p{L}\p{N}]+/gu) ?? []
  );
}

/** Length of the longest common subsequence of two token lists (dynamic programming, two rows). */
export function longestCommonSubsequence(a: readonly string[], b: readonly string[]): number {
  if (a.length === 0 || b.length === 0) return 0;
  let previous = new Array<number>(b.length + 1).fill(0);
  let current = new Array<number>(b.length + 1).fill(0);
  for (const token of a) {
    for (let j = 1; j <= b.length; j++) {
      current[j] =
        token === b[j - 1]
          ? (previous[j - 1] as number) + 1
          : Math.max(previous[j] as number, current[j - 1] as number);
    }
    [previous, current] = [current, previous];
  }
  return previous[b.length] as number;
}

/**
 * ROUGE-L (Lin, 2004) as `rouge-score` reports it: precision = LCS / candidate length,
 * recall = LCS / reference length, F = their harmonic mean (beta 1). Empty against empty is 1.
 */
export function rougeL(candidate: string, reference: string): number {
  const a = rougeTokens(candidate);
  const b = rougeTokens(reference);
  if (a.length === 0 || b.length === 0) return a.length === b.length ? 1 : 0;
  const lcs = longestCommonSubsequence(a, b);
  if (lcs === 0) return 0;
  const precision = lcs / a.length;
  const recall = lcs / b.length;
  return (2 * precision * recall) / (precision + recall);
}
