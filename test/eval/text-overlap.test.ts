import { describe, expect, test } from 'vitest';
import { answerTokens, longestCommonSubsequence, rougeL, tokenF1 } from '../../src/eval/text-overlap.ts';

describe('token F1 (SQuAD)', () => {
  test('normalises case, punctuation and articles before counting shared words', () => {
    expect(answerTokens('The  Eiffel Tower, in Paris!')).toEqual(['eiffel', 'tower', 'in', 'paris']);
    expect(tokenF1('the Eiffel tower.', 'Eiffel Tower')).toBe(1);
  });

  test('is the harmonic mean of precision and recall over the shared words, counted as a multiset', () => {
    // prediction 4 words, reference 2, shared 2: precision 1/2, recall 1.
    expect(tokenF1('paris is in france', 'paris france')).toBeCloseTo(2 / 3, 10);
    // "paris" twice in the prediction, once in the reference: shared once.
    expect(tokenF1('paris paris', 'paris')).toBeCloseTo(2 / 3, 10);
    expect(tokenF1('london', 'paris')).toBe(0);
  });

  test('an empty answer scores 0 against a reference, and two empty answers agree', () => {
    expect(tokenF1('', 'paris')).toBe(0);
    expect(tokenF1('the', 'paris')).toBe(0);
    expect(tokenF1('', '')).toBe(1);
  });
});

describe('ROUGE-L', () => {
  test('the longest common subsequence keeps order but allows gaps', () => {
    expect(longestCommonSubsequence(['a', 'b', 'c', 'd'], ['a', 'c', 'd'])).toBe(3);
    expect(longestCommonSubsequence(['a', 'b'], ['b', 'a'])).toBe(1);
    expect(longestCommonSubsequence([], ['a'])).toBe(0);
  });

  test('is the F-measure of LCS precision and recall on lower-cased word tokens', () => {
    const score = rougeL('The quick brown dog jumps on the log.', 'The quick brown fox jumps over the lazy dog');
    // candidate 8 tokens, reference 9, LCS "the quick brown jumps the" = 5.
    const p = 5 / 8;
    const r = 5 / 9;
    expect(score).toBeCloseTo((2 * p * r) / (p + r), 10);
    expect(rougeL('Paris', 'paris')).toBe(1);
    expect(rougeL('word order matters', 'matters order word')).toBeCloseTo(1 / 3, 10);
    expect(rougeL('', 'x')).toBe(0);
  });
});
