/**
 * SentencePiece-style tokenization of one text fragment, as llama.cpp's `llm_tokenizer_spm_session` does it
 * (src/llama-vocab.cpp, 80fb11ac): start from single characters, repeatedly join the adjacent pair whose
 * joined text is a token with the highest score (the leftmost pair on ties), then emit each final piece as its
 * token or, when it is not one, as its UTF-8 bytes through the `<0xXX>` byte tokens. The caller escapes spaces
 * to "▁" and adds the leading one.
 */
import { GgufError } from './errors.ts';
import { PriorityQueue } from './priority-queue.ts';

export interface SentencePieceTables {
  readonly ids: ReadonlyMap<string, number>;
  readonly scores: readonly number[];
  /** Token for each byte value (`<0xXX>`, else the one-character token for ASCII), -1 when there is none. */
  readonly byteTokens: Int32Array;
}

interface Bigram {
  readonly left: number;
  readonly right: number;
  readonly score: number;
  readonly size: number;
}

const before = (a: Bigram, b: Bigram): boolean => a.score > b.score || (a.score === b.score && a.left < b.left);
const encoder = new TextEncoder();

export function byteTokensOf(ids: ReadonlyMap<string, number>): Int32Array {
  return Int32Array.from({ length: 256 }, (_, byte) => {
    const hex = byte.toString(16).toUpperCase().padStart(2, '0');
    return ids.get(`<0x${hex}>`) ?? (byte < 0x80 ? ids.get(String.fromCharCode(byte)) : undefined) ?? -1;
  });
}

export function encodeSentencePiece(text: string, tables: SentencePieceTables, out: number[]): void {
  // Symbols are code points: start offset and length in UTF-16 units, linked left to right.
  const start: number[] = [];
  const length: number[] = [];
  for (let i = 0; i < text.length; ) {
    const size = (text.codePointAt(i) ?? 0) > 0xffff ? 2 : 1;
    start.push(i);
    length.push(size);
    i += size;
  }
  const count = start.length;
  const prev = Array.from({ length: count }, (_, i) => i - 1);
  const next = Array.from({ length: count }, (_, i) => (i + 1 < count ? i + 1 : -1));
  const queue = new PriorityQueue<Bigram>(before);
  const symbolText = (i: number): string => text.slice(start[i], (start[i] ?? 0) + (length[i] ?? 0));
  const tryPair = (left: number, right: number): void => {
    if (left < 0 || right < 0) return;
    const joined = text.slice(start[left], (start[right] ?? 0) + (length[right] ?? 0));
    const id = tables.ids.get(joined);
    if (id === undefined) return;
    queue.push({ left, right, score: tables.scores[id] ?? 0, size: joined.length });
  };
  for (let i = 1; i < count; i++) tryPair(i - 1, i);

  for (let bigram = queue.pop(); bigram !== undefined; bigram = queue.pop()) {
    const { left, right } = bigram;
    const leftLength = length[left] ?? 0;
    const rightLength = length[right] ?? 0;
    // A pair is stale once either side has been merged into something else.
    if (leftLength === 0 || rightLength === 0 || leftLength + rightLength !== bigram.size) continue;
    length[left] = leftLength + rightLength;
    length[right] = 0;
    const after = next[right] ?? -1;
    next[left] = after;
    if (after >= 0) prev[after] = left;
    tryPair(prev[left] ?? -1, left);
    tryPair(left, after);
  }

  for (let i = count > 0 ? 0 : -1; i !== -1; i = next[i] ?? -1) {
    const piece = symbolText(i);
    const id = tables.ids.get(piece);
    if (id !== undefined) {
      out.push(id);
      continue;
    }
    for (const byte of encoder.encode(piece)) {
      const byteToken = tables.byteTokens[byte] ?? -1;
      if (byteToken < 0) {
        throw new GgufError(`the vocabulary has no byte token for 0x${byte.toString(16)} (needed for '${piece}')`, {
          byte,
        });
      }
      out.push(byteToken);
    }
  }
}
