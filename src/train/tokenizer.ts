import { ValidationError } from '../core/errors.ts';

/**
 * Byte-level BPE as llama.cpp runs it for `tokenizer.ggml.model = "gpt2"` (src/llama-vocab.cpp,
 * llm_tokenizer_bpe_session): text is pre-split by the regexes of `tokenizer.ggml.pre`, each
 * piece's bytes become GPT-2's printable byte characters, then adjacent symbols merge by
 * rank, lowest first, leftmost on ties. We use the "command-r" pre-tokenizer: digits one by
 * one, then GPT-2's regex; unlike "gpt-2" it does not set `clean_spaces`, which would drop
 * the space in " ." when detokenizing and so break round trips.
 */
export const PRE_TOKENIZER = 'command-r';
export const END_OF_TEXT = '<|endoftext|>';

/** llama_token_type (llama.h): 1 normal, 3 control. */
export const TOKEN_TYPE_NORMAL = 1;
export const TOKEN_TYPE_CONTROL = 3;

const DIGIT = /\p{N}/gu;
// GPT-2's pattern as llama.cpp spells it (no trailing `|\s+`: unmatched gaps stay pieces anyway).
const GPT2 = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)/gu;

/** Splits by `pattern`, keeping the text between matches as pieces too (llama.cpp's unicode_regex_split). */
function splitKeeping(text: string, pattern: RegExp): string[] {
  const pieces: string[] = [];
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    const start = match.index;
    if (start > last) pieces.push(text.slice(last, start));
    if (match[0].length > 0) pieces.push(match[0]);
    last = start + match[0].length;
  }
  if (last < text.length) pieces.push(text.slice(last));
  return pieces;
}

export function preTokenize(text: string): string[] {
  return splitKeeping(text, DIGIT).flatMap((piece) => splitKeeping(piece, GPT2));
}

/** GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 onwards. */
const BYTE_TO_CHAR: string[] = (() => {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const chars: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) chars.push(String.fromCodePoint(printable(b) ? b : next++));
  return chars;
})();
const CHAR_TO_BYTE = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));

function byteSymbols(piece: string): string[] {
  return Array.from(Buffer.from(piece, 'utf8'), (b) => BYTE_TO_CHAR[b] as string);
}

export interface BpeVocabulary {
  /** Token strings in GPT-2's byte alphabet, by id. */
  tokens: string[];
  tokenTypes: number[];
  /** "left right" pairs, highest priority first. */
  merges: string[];
  endOfTextId: number;
}

export interface BpeTokenizer extends BpeVocabulary {
  encode(text: string): number[];
  decode(ids: readonly number[]): string;
}

/** Learns merges from the corpus until the vocabulary (256 bytes + merges + end-of-text) reaches `vocabSize`. */
export function trainBpe(corpus: string, vocabSize: number): BpeTokenizer {
  if (!Number.isInteger(vocabSize) || vocabSize < 257)
    throw new ValidationError('a byte-level BPE vocabulary needs at least 257 tokens');
  const counts = new Map<string, number>();
  for (const piece of preTokenize(corpus)) counts.set(piece, (counts.get(piece) ?? 0) + 1);
  const words = [...counts].map(([piece, count]) => ({ symbols: byteSymbols(piece), count }));
  const tokens = [...BYTE_TO_CHAR];
  const known = new Set(tokens);
  const merges: string[] = [];
  while (tokens.length < vocabSize - 1) {
    const pairs = new Map<string, number>();
    for (const { symbols, count } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = `${symbols[i]} ${symbols[i + 1]}`;
        pairs.set(key, (pairs.get(key) ?? 0) + count);
      }
    }
    let best: string | undefined;
    let bestCount = 1;
    for (const [key, count] of pairs) {
      if (count > bestCount || (count === bestCount && best !== undefined && key < best)) {
        best = key;
        bestCount = count;
      }
    }
    // Stop once no pair occurs twice: a merge seen once only memorises the corpus.
    if (best === undefined) break;
    const [left, right] = best.split(' ') as [string, string];
    const merged = left + right;
    merges.push(best);
    if (!known.has(merged)) {
      known.add(merged);
      tokens.push(merged);
    }
    for (const word of words) {
      const s = word.symbols;
      for (let i = 0; i + 1 < s.length; i++) {
        if (s[i] === left && s[i + 1] === right) s.splice(i, 2, merged);
      }
    }
  }
  tokens.push(END_OF_TEXT);
  const tokenTypes = tokens.map((_, i) => (i === tokens.length - 1 ? TOKEN_TYPE_CONTROL : TOKEN_TYPE_NORMAL));
  return bpeTokenizer({ tokens, tokenTypes, merges, endOfTextId: tokens.length - 1 });
}

export function bpeTokenizer(vocabulary: BpeVocabulary): BpeTokenizer {
  const ids = new Map(vocabulary.tokens.map((t, i) => [t, i]));
  const ranks = new Map(vocabulary.merges.map((m, i) => [m, i]));
  const cache = new Map<string, number[]>();
  const encodePiece = (piece: string): number[] => {
    const cached = cache.get(piece);
    if (cached) return cached;
    const symbols = byteSymbols(piece);
    for (;;) {
      let bestRank = Number.POSITIVE_INFINITY;
      let at = -1;
      for (let i = 0; i + 1 < symbols.length; i++) {
        const rank = ranks.get(`${symbols[i]} ${symbols[i + 1]}`);
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          at = i;
        }
      }
      if (at < 0) break;
      symbols.splice(at, 2, `${symbols[at]}${symbols[at + 1]}`);
    }
    // llama.cpp falls back to one token per byte for a symbol missing from the vocabulary.
    const out = symbols.flatMap((s) => {
      const id = ids.get(s);
      return id !== undefined ? [id] : Array.from(s, (c) => ids.get(c) as number);
    });
    cache.set(piece, out);
    return out;
  };
  return {
    ...vocabulary,
    encode: (text) => preTokenize(text).flatMap(encodePiece),
    decode(list) {
      const bytes: number[] = [];
      for (const id of list) {
        const token = vocabulary.tokens[id];
        if (token === undefined) throw new ValidationError(`token id ${id} is outside the vocabulary`);
        if (id === vocabulary.endOfTextId) continue;
        for (const c of token) bytes.push(CHAR_TO_BYTE.get(c) as number);
      }
      return Buffer.from(bytes).toString('utf8');
    },
  };
}
