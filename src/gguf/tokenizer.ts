/**
 * Tokenizers built from a GGUF's own vocabulary that give llama.cpp's tokens (llama_tokenize /
 * llama_detokenize in 80fb11ac, what node-llama-cpp 3.21.1 runs): special-token texts are cut out first
 * (user-defined tokens always, control and unknown ones only with `parseSpecial`), then each remaining
 * fragment goes through the scheme of `tokenizer.ggml.model`: tokenizer-spm.ts for 'llama', tokenizer-bpe.ts
 * for 'gpt2'.
 *
 * Differences from llama.cpp, all outside what Llama-family GGUFs contain: the per-model strip attributes
 * llama.cpp sets by model name (phi-3, jina, modern-bert) are not applied, and special tokens of equal byte
 * length are matched in id order where llama.cpp's order is unspecified.
 */
import { GgufError } from './errors.ts';
import { BYTE_LEVEL_CHARS } from './llama.ts';
import type { BytePairTables } from './tokenizer-bpe.ts';
import { encodeBytePair, mergeRanks } from './tokenizer-bpe.ts';
import type { SentencePieceTables } from './tokenizer-spm.ts';
import { byteTokensOf, encodeSentencePiece } from './tokenizer-spm.ts';
import type { GgufVocabulary } from './vocabulary.ts';
import { TokenAttr } from './vocabulary.ts';

export interface TokenizeOptions {
  /** Prepend BOS / append EOS as the vocabulary's add_bos / add_eos say; default false (node-llama-cpp's tokenize). */
  readonly addSpecial?: boolean;
  /** Turn the texts of control tokens (e.g. "<|eot_id|>", "</s>") into those tokens; default false. */
  readonly parseSpecial?: boolean;
}

export interface GgufTokenizer {
  readonly vocabulary: GgufVocabulary;
  readonly vocabSize: number;
  tokenize(text: string, options?: TokenizeOptions): number[];
  /** llama_detokenize with remove_special = false; `special` renders control tokens as their text. */
  detokenize(tokens: readonly number[], options?: { readonly special?: boolean }): string;
}

type Fragment = string | number;

const SPECIAL_ATTRS = TokenAttr.control | TokenAttr.userDefined | TokenAttr.unknown;
const encoder = new TextEncoder();
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const BYTE_OF_CHAR = new Map(BYTE_LEVEL_CHARS.map((char, byte) => [char, byte]));

export function createGgufTokenizer(vocabulary: GgufVocabulary): GgufTokenizer {
  const { tokens, attributes } = vocabulary;
  const ids = new Map(tokens.map((text, id) => [text, id]));
  // Longest first, so that "<|eot_id|>" is cut out before a shorter special token inside it.
  const specials: { id: number; text: string; bytes: number }[] = [];
  tokens.forEach((text, id) => {
    if ((attributes[id] ?? 0) & SPECIAL_ATTRS) specials.push({ id, text, bytes: Buffer.byteLength(text) });
  });
  specials.sort((a, b) => b.bytes - a.bytes || a.id - b.id);
  const encodeFragment = fragmentEncoder(vocabulary, ids);

  const partition = (text: string, parseSpecial: boolean): Fragment[] => {
    let fragments: Fragment[] = [text];
    for (const { id, text: needle } of specials) {
      const attr = attributes[id] ?? 0;
      if (!parseSpecial && attr & (TokenAttr.control | TokenAttr.unknown)) continue;
      if (!fragments.some((f) => typeof f === 'string' && f.includes(needle))) continue;
      const split: Fragment[] = [];
      for (const fragment of fragments) {
        if (typeof fragment !== 'string') {
          split.push(fragment);
          continue;
        }
        let from = 0;
        for (let hit = fragment.indexOf(needle); hit >= 0; hit = fragment.indexOf(needle, from)) {
          if (hit > from) split.push(fragment.slice(from, hit));
          split.push(id);
          from = hit + needle.length;
        }
        if (from < fragment.length) split.push(fragment.slice(from));
      }
      fragments = split;
    }
    return fragments;
  };

  const special = (id: number | undefined, what: string): number => {
    if (id === undefined) throw new GgufError(`the vocabulary asks for a ${what} token but has none`);
    return id;
  };

  return {
    vocabulary,
    vocabSize: tokens.length,
    tokenize(text, options = {}) {
      const out: number[] = [];
      if (options.addSpecial && vocabulary.addBos) out.push(special(vocabulary.bosId, 'BOS'));
      // JavaScript strings may hold lone surrogates; UTF-8 (and so llama.cpp) sees U+FFFD there.
      const wellFormed = text.replace(LONE_SURROGATE, '\uFFFD');
      let afterSpecial = true;
      for (const fragment of wellFormed === '' ? [] : partition(wellFormed, options.parseSpecial ?? false)) {
        if (typeof fragment === 'number') {
          out.push(fragment);
          afterSpecial = true;
          continue;
        }
        encodeFragment(fragment, afterSpecial, out);
        afterSpecial = false;
      }
      if (options.addSpecial && vocabulary.addEos) out.push(special(vocabulary.eosId, 'EOS'));
      return out;
    },
    detokenize(tokenIds, options = {}) {
      return detokenize(vocabulary, tokenIds, options.special ?? false);
    },
  };
}

function fragmentEncoder(
  vocabulary: GgufVocabulary,
  ids: ReadonlyMap<string, number>,
): (text: string, afterSpecial: boolean, out: number[]) => void {
  const { pre } = vocabulary;
  if (vocabulary.model === 'llama') {
    const tables: SentencePieceTables = { ids, scores: vocabulary.scores, byteTokens: byteTokensOf(ids) };
    return (text, afterSpecial, out) => {
      const prefixed = vocabulary.addSpacePrefix && afterSpecial ? ` ${text}` : text;
      encodeSentencePiece(prefixed.replaceAll(' ', '▁'), tables, out);
    };
  }
  if (!pre) throw new GgufError('a gpt2 vocabulary needs a pre-tokenizer');
  const tables: BytePairTables = { ids, ranks: mergeRanks(vocabulary.merges) };
  return (text, _afterSpecial, out) => encodeBytePair(text, pre, tables, out);
}

function detokenize(vocabulary: GgufVocabulary, tokenIds: readonly number[], special: boolean): string {
  const bytes: number[] = [];
  let stripSpace = vocabulary.addSpacePrefix;
  for (const id of tokenIds) {
    const piece = tokenPiece(vocabulary, id, special);
    // llama.cpp strips one leading space from the first piece only, even when that piece is empty.
    bytes.push(...(stripSpace && piece[0] === 0x20 ? piece.subarray(1) : piece));
    stripSpace = false;
  }
  const text = vocabulary.pre?.cleanSpaces ? cleanSpaces(bytes) : bytes;
  return Buffer.from(text).toString('utf8');
}

function tokenPiece(vocabulary: GgufVocabulary, id: number, special: boolean): Uint8Array {
  const text = vocabulary.tokens[id];
  const attr = vocabulary.attributes[id] ?? 0;
  if (text === undefined) throw new GgufError(`token ${id} is outside the vocabulary of ${vocabulary.tokens.length}`);
  if (!special && attr & (TokenAttr.unknown | TokenAttr.control)) return new Uint8Array();
  if (attr & (TokenAttr.unknown | TokenAttr.control | TokenAttr.userDefined)) return encoder.encode(text);
  if (attr & TokenAttr.normal) {
    if (vocabulary.model === 'llama') return encoder.encode(text.replaceAll('▁', ' '));
    return decodeByteLevel(text);
  }
  if (attr & TokenAttr.byte) return Uint8Array.of(Number.parseInt(text.slice(3, 5), 16) || 0);
  return new Uint8Array();
}

/** GPT-2 byte characters back to bytes; llama.cpp writes "[UNK_BYTE_0x..]" for characters outside the table. */
function decodeByteLevel(text: string): Uint8Array {
  const out: number[] = [];
  for (const char of text) {
    const byte = BYTE_OF_CHAR.get(char);
    if (byte !== undefined) {
      out.push(byte);
      continue;
    }
    const hex = Array.from(encoder.encode(char), (b) => b.toString(16).padStart(2, '0')).join('');
    out.push(...encoder.encode(`[UNK_BYTE_0x${hex}${text}]`));
  }
  return Uint8Array.from(out);
}

const SPACE = 0x20;
const APOSTROPHE = 0x27;
const code = (char: string): number => char.charCodeAt(0);

/** llama_detokenize's clean_spaces passes (clean_up_tokenization_spaces), over bytes. */
function cleanSpaces(input: readonly number[]): number[] {
  // " ?", " !", " .", " ," lose the space.
  const first: number[] = [];
  input.forEach((x, i) => {
    if (i > 0 && input[i - 1] === SPACE && (x === code('?') || x === code('!') || x === code('.') || x === code(','))) {
      first.pop();
    }
    first.push(x);
  });
  // " ' " becomes "'"; llama.cpp blanks the second space in place, so the next character sees a NUL before it.
  const second: number[] = [];
  const scratch = [...first];
  for (let i = 0; i < scratch.length; i++) {
    const x = scratch[i] as number;
    if (i > 0 && x === APOSTROPHE && i + 1 < scratch.length && scratch[i - 1] === SPACE && scratch[i + 1] === SPACE) {
      second.pop();
      scratch[++i] = 0;
    }
    second.push(x);
  }
  // " 's", " 'm", " 're", " 've" lose the space; " 't", " 'd", " 'll" keep it.
  const third: number[] = [];
  second.forEach((x, i) => {
    if (i > 0 && second[i - 1] === SPACE && x === APOSTROPHE && i + 1 < second.length) {
      const x1 = second[i + 1];
      const x2 = i + 2 < second.length ? second[i + 2] : undefined;
      const joins =
        x1 === code('s') ||
        x1 === code('m') ||
        (x2 !== undefined && ((x1 === code('r') && x2 === code('e')) || (x1 === code('v') && x2 === code('e'))));
      if (joins) third.pop();
    }
    third.push(x);
  });
  return third;
}
