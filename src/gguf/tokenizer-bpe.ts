/**
 * Byte-level BPE of one text fragment, as llama.cpp's `llm_tokenizer_bpe_session` does it (src/llama-vocab.cpp,
 * 80fb11ac): split into words by the pre-tokenizer, spell each word's UTF-8 bytes with GPT-2's byte characters,
 * then repeatedly join the adjacent pair with the lowest merge rank (the leftmost on ties). With `ignoreMerges`
 * (Llama 3), a word that is itself a token is taken whole. A final piece that is not a token falls back to
 * its one-byte tokens; llama.cpp can only find those for ASCII, and drops the rest.
 */
import { byteLevelText } from './llama.ts';
import type { PreTokenizer } from './pre-tokenizer.ts';
import { preTokenize } from './pre-tokenizer.ts';
import { PriorityQueue } from './priority-queue.ts';

export interface BytePairTables {
  readonly ids: ReadonlyMap<string, number>;
  /** "left right" -> rank; the first occurrence of a pair wins. */
  readonly ranks: ReadonlyMap<string, number>;
}

interface Bigram {
  readonly left: number;
  readonly right: number;
  readonly rank: number;
  readonly text: string;
}

const before = (a: Bigram, b: Bigram): boolean => a.rank < b.rank || (a.rank === b.rank && a.left < b.left);

export function mergeRanks(merges: readonly string[]): Map<string, number> {
  const ranks = new Map<string, number>();
  merges.forEach((merge, rank) => {
    // llama.cpp splits at the first space after the first character.
    if (merge.indexOf(' ', 1) < 0 || ranks.has(merge)) return;
    ranks.set(merge, rank);
  });
  return ranks;
}

export function encodeBytePair(text: string, pre: PreTokenizer, tables: BytePairTables, out: number[]): void {
  for (const word of preTokenize(text, pre)) {
    const spelled = byteLevelText(word);
    const whole = pre.ignoreMerges ? tables.ids.get(spelled) : undefined;
    if (whole !== undefined) {
      out.push(whole);
      continue;
    }
    for (const piece of mergeWord(spelled, tables.ranks)) {
      const id = tables.ids.get(piece);
      if (id !== undefined) {
        out.push(id);
        continue;
      }
      for (const char of piece) {
        const single = char.charCodeAt(0) < 0x80 ? tables.ids.get(char) : undefined;
        if (single !== undefined) out.push(single);
      }
    }
  }
}

/** The pieces a byte-level word merges into. Every GPT-2 byte character is one UTF-16 unit. */
function mergeWord(word: string, ranks: ReadonlyMap<string, number>): string[] {
  const count = word.length;
  const texts = Array.from(word);
  const prev = Array.from({ length: count }, (_, i) => i - 1);
  const next = Array.from({ length: count }, (_, i) => (i + 1 < count ? i + 1 : -1));
  const queue = new PriorityQueue<Bigram>(before);
  const tryPair = (left: number, right: number): void => {
    if (left < 0 || right < 0) return;
    const a = texts[left] ?? '';
    const b = texts[right] ?? '';
    const rank = ranks.get(`${a} ${b}`);
    if (rank !== undefined) queue.push({ left, right, rank, text: a + b });
  };
  for (let i = 1; i < count; i++) tryPair(i - 1, i);
  for (let bigram = queue.pop(); bigram !== undefined; bigram = queue.pop()) {
    const { left, right } = bigram;
    const a = texts[left] ?? '';
    const b = texts[right] ?? '';
    // Stale once either side changed since the pair was queued.
    if (a === '' || b === '' || a + b !== bigram.text) continue;
    texts[left] = bigram.text;
    texts[right] = '';
    const after = next[right] ?? -1;
    next[left] = after;
    if (after >= 0) prev[after] = left;
    tryPair(prev[left] ?? -1, left);
    tryPair(left, after);
  }
  return texts.filter((text) => text !== '');
}
