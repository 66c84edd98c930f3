/**
 * Pre-tokenizers of byte-level BPE vocabularies: how llama.cpp (80fb11ac, src/llama-vocab.cpp `llm_tokenizer_bpe`
 * and src/unicode.cpp) splits text into words before merging, chosen by `tokenizer.ggml.pre`. llama.cpp runs
 * hand-written scanners for the common regexes; the scanners here follow the same rules, written from
 * their regexes and llama.cpp's behaviour:
 *
 * - llama3:   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * - qwen2:    the same with \p{N} (one digit per word)
 * - gpt2:     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * - digits-gpt2: every \p{N} alone first, then gpt2 on the rest (llama.cpp's "command-r" family)
 *
 * Character classes come from unicode-classes.ts (llama.cpp's tables), not from the running ICU.
 */
import { UnsupportedBaseError } from './errors.ts';
import { isLetter, isNumber, isWhitespace } from './unicode-classes.ts';

export type PreTokenizerScheme = 'llama3' | 'qwen2' | 'gpt2' | 'digits-gpt2';

export interface PreTokenizer {
  /** The `tokenizer.ggml.pre` name. */
  readonly name: string;
  readonly scheme: PreTokenizerScheme;
  /** A word that is itself a token skips the merges (llama.cpp `ignore_merges`). */
  readonly ignoreMerges: boolean;
  /** llama.cpp's add_bos default when `tokenizer.ggml.add_bos_token` is absent. */
  readonly addBosDefault: boolean;
  /** Detokenizing drops the space in " ." " ," " ?" " !" " 's" " 'm" " 're" " 've" and around " ' ". */
  readonly cleanSpaces: boolean;
}

type Family = Omit<PreTokenizer, 'name'>;

const LLAMA3: Family = { scheme: 'llama3', ignoreMerges: true, addBosDefault: true, cleanSpaces: true };
const LLAMA3_REGEX_ONLY: Family = { scheme: 'llama3', ignoreMerges: false, addBosDefault: false, cleanSpaces: true };
const QWEN2: Family = { scheme: 'qwen2', ignoreMerges: false, addBosDefault: false, cleanSpaces: false };
const QWEN2_CLEAN: Family = { ...QWEN2, cleanSpaces: true };
const GPT2: Family = { scheme: 'gpt2', ignoreMerges: false, addBosDefault: false, cleanSpaces: true };
const DIGITS_GPT2: Family = { scheme: 'digits-gpt2', ignoreMerges: false, addBosDefault: false, cleanSpaces: true };
const DIGITS_GPT2_RAW: Family = { ...DIGITS_GPT2, cleanSpaces: false };

/** `tokenizer.ggml.pre` names as llama.cpp 80fb11ac maps them (llama_vocab::impl::load). */
const FAMILIES: Readonly<Record<string, Family>> = {
  llama3: LLAMA3,
  'llama-v3': LLAMA3,
  'llama-bpe': LLAMA3,
  falcon3: LLAMA3,
  'falcon-h1': LLAMA3,
  pixtral: LLAMA3,
  'midm-2.0': LLAMA3,
  lfm2: LLAMA3,
  'jina-v5-nano': LLAMA3,
  dbrx: LLAMA3_REGEX_ONLY,
  'smaug-bpe': LLAMA3_REGEX_ONLY,
  qwen2: QWEN2,
  'deepseek-r1-qwen': QWEN2,
  kormo: QWEN2,
  f2llmv2: QWEN2,
  hunyuan: QWEN2,
  'solar-open': QWEN2,
  'grok-2': QWEN2,
  megrez: QWEN2_CLEAN,
  stablelm2: QWEN2_CLEAN,
  'gpt-2': GPT2,
  'phi-2': GPT2,
  gigachat: GPT2,
  'a.x-4.0': GPT2,
  mellum: GPT2,
  exaone4: GPT2,
  mpt: GPT2,
  olmo: GPT2,
  jais: GPT2,
  trillion: { ...GPT2, cleanSpaces: false },
  starcoder: DIGITS_GPT2,
  refact: DIGITS_GPT2,
  codeshell: DIGITS_GPT2,
  exaone: DIGITS_GPT2,
  'minerva-7b': DIGITS_GPT2,
  mellum2: DIGITS_GPT2,
  'command-r': DIGITS_GPT2_RAW,
  smollm: DIGITS_GPT2_RAW,
};

export const SUPPORTED_PRE_TOKENIZERS: readonly string[] = Object.keys(FAMILIES);

export function resolvePreTokenizer(name: string | undefined): PreTokenizer {
  const family = name === undefined ? undefined : FAMILIES[name];
  if (!family) {
    const shown =
      name === undefined ? "none ('tokenizer.ggml.pre' is missing, llama.cpp falls back to 'default')" : `'${name}'`;
    throw new UnsupportedBaseError(
      'unsupported_pre_tokenizer',
      `BPE pre-tokenizer ${shown} is not supported; supported: ${SUPPORTED_PRE_TOKENIZERS.join(', ')}`,
      { pre: name ?? null },
    );
  }
  return { name: name as string, ...family };
}

/** Splits `text` into the words that BPE merges within. */
export function preTokenize(text: string, pre: PreTokenizer): string[] {
  const cps = Array.from(text, (char) => char.codePointAt(0) ?? 0);
  const lengths: number[] = [];
  const whole = [cps.length];
  switch (pre.scheme) {
    case 'llama3':
      scanLlama3(cps, whole, 3, lengths);
      break;
    case 'qwen2':
      scanLlama3(cps, whole, 1, lengths);
      break;
    case 'gpt2':
      scanGpt2(cps, whole, lengths);
      break;
    case 'digits-gpt2': {
      const pieces: number[] = [];
      isolateNumbers(cps, pieces);
      scanGpt2(cps, pieces, lengths);
      break;
    }
  }
  // UTF-16 position of each code point, to cut the words out of `text`.
  const utf16 = new Array<number>(cps.length + 1);
  utf16[0] = 0;
  cps.forEach((cp, i) => {
    utf16[i + 1] = (utf16[i] ?? 0) + (cp > 0xffff ? 2 : 1);
  });
  const words: string[] = [];
  let start = 0;
  for (const length of lengths) {
    words.push(text.slice(utf16[start], utf16[start + length]));
    start += length;
  }
  return words;
}

const APOSTROPHE = 0x27;
const SPACE = 0x20;
const CR = 0x0d;
const LF = 0x0a;

function lowerAscii(cp: number | undefined): number | undefined {
  return cp !== undefined && cp >= 0x41 && cp <= 0x5a ? cp + 0x20 : cp;
}

/** Length of a contraction ('s 't 'm 'd 're 've 'll) at `pos`, or 0. */
function contraction(cps: readonly number[], pos: number, end: number, caseInsensitive: boolean): number {
  if (cps[pos] !== APOSTROPHE || pos + 1 >= end) return 0;
  const fold = caseInsensitive ? lowerAscii : (cp: number | undefined) => cp;
  const c1 = fold(cps[pos + 1]);
  if (c1 === 0x73 || c1 === 0x74 || c1 === 0x6d || c1 === 0x64) return 2; // s t m d
  if (pos + 2 >= end) return 0;
  const c2 = fold(cps[pos + 2]);
  // re ve ll
  if ((c1 === 0x72 && c2 === 0x65) || (c1 === 0x76 && c2 === 0x65) || (c1 === 0x6c && c2 === 0x6c)) return 3;
  return 0;
}

const isOther = (cp: number): boolean => !isWhitespace(cp) && !isLetter(cp) && !isNumber(cp);

/** Applies `scan` to each piece [start, start + length) of `pieces`, collecting word lengths. */
function eachPiece(pieces: readonly number[], scan: (start: number, end: number) => void): void {
  let start = 0;
  for (const length of pieces) {
    scan(start, start + length);
    start += length;
  }
}

function scanLlama3(cps: readonly number[], pieces: readonly number[], maxDigits: number, out: number[]): void {
  eachPiece(pieces, (start, end) => {
    let previous = start;
    const emit = (to: number): void => {
      if (to > previous) out.push(to - previous);
      previous = to;
    };
    const at = (i: number): number | undefined => (i < end ? cps[i] : undefined);
    let pos = start;
    while (pos < end) {
      const cp = cps[pos] as number;
      const apostrophe = contraction(cps, pos, end, true);
      if (apostrophe > 0) {
        pos += apostrophe;
        emit(pos);
        continue;
      }
      // [^\r\n\p{L}\p{N}]?\p{L}+
      if (cp !== CR && cp !== LF && !isNumber(cp)) {
        const next = at(pos + 1);
        if (isLetter(cp) || (next !== undefined && isLetter(next))) {
          pos++;
          while (pos < end && isLetter(cps[pos] as number)) pos++;
          emit(pos);
          continue;
        }
      }
      // \p{N}{1,maxDigits}
      if (isNumber(cp)) {
        let run = 0;
        while (pos < end && isNumber(cps[pos] as number)) {
          pos++;
          if (++run === maxDigits) {
            emit(pos);
            run = 0;
          }
        }
        emit(pos);
        continue;
      }
      // ' ?[^\s\p{L}\p{N}]+[\r\n]*' (a lone trailing space also ends up here, as one word)
      const afterSpace = cp === SPACE ? at(pos + 1) : cp;
      if (afterSpace === undefined || isOther(afterSpace)) {
        if (cp === SPACE) pos++;
        while (pos < end && isOther(cps[pos] as number)) pos++;
        while (pos < end && (cps[pos] === CR || cps[pos] === LF)) pos++;
        emit(pos);
        continue;
      }
      let spaces = 0;
      let lastNewlineEnd = -1;
      while (pos + spaces < end && isWhitespace(cps[pos + spaces] as number)) {
        const ws = cps[pos + spaces];
        if (ws === CR || ws === LF) lastNewlineEnd = pos + spaces + 1;
        spaces++;
      }
      if (lastNewlineEnd >= 0) {
        // \s*[\r\n]+
        pos = lastNewlineEnd;
      } else if (spaces > 1 && pos + spaces < end) {
        // \s+(?!\S): leave the last space to prefix the next word
        pos += spaces - 1;
      } else if (spaces > 0) {
        pos += spaces;
      } else {
        pos++;
      }
      emit(pos);
    }
  });
}

function scanGpt2(cps: readonly number[], pieces: readonly number[], out: number[]): void {
  eachPiece(pieces, (start, end) => {
    let previous = start;
    const emit = (to: number): void => {
      if (to > previous) out.push(to - previous);
      previous = to;
    };
    let pos = start;
    while (pos < end) {
      const cp = cps[pos] as number;
      const apostrophe = contraction(cps, pos, end, false);
      if (apostrophe > 0) {
        pos += apostrophe;
        emit(pos);
        continue;
      }
      const lead = cp === SPACE ? (pos + 1 < end ? cps[pos + 1] : undefined) : cp;
      const run = (accepts: (c: number) => boolean): void => {
        if (cp === SPACE) pos++;
        while (pos < end && accepts(cps[pos] as number)) pos++;
        emit(pos);
      };
      if (lead !== undefined && isLetter(lead)) {
        run(isLetter);
        continue;
      }
      if (lead !== undefined && isNumber(lead)) {
        run(isNumber);
        continue;
      }
      if (lead !== undefined && isOther(lead)) {
        run(isOther);
        continue;
      }
      let spaces = 0;
      while (pos + spaces < end && isWhitespace(cps[pos + spaces] as number)) spaces++;
      if (spaces > 1 && pos + spaces < end) pos += spaces - 1;
      else if (spaces > 0) pos += spaces;
      else pos++;
      emit(pos);
    }
  });
}

/** Every \p{N} code point becomes its own piece, the text between them another. */
function isolateNumbers(cps: readonly number[], out: number[]): void {
  let run = 0;
  for (const cp of cps) {
    if (isNumber(cp)) {
      if (run > 0) out.push(run);
      out.push(1);
      run = 0;
    } else {
      run++;
    }
  }
  if (run > 0) out.push(run);
}
