/**
 * A GGUF's tokenizer description (`tokenizer.ggml.*`), resolved the way llama.cpp 80fb11ac loads it
 * (src/llama-vocab.cpp, llama_vocab::impl::load): per-model defaults for the special ids and the add_* flags,
 * token attributes from `token_type`, and the load-time corrections llama.cpp applies by token text (tokens
 * spelled like end-of-generation or fill-in-the-middle markers become control tokens).
 */
import { GgufError, UnsupportedBaseError } from './errors.ts';
import type { PreTokenizer } from './pre-tokenizer.ts';
import { resolvePreTokenizer } from './pre-tokenizer.ts';
import type { GgufValue } from './writer.ts';

/** llama_token_attr bits (include/llama.h). */
export const TokenAttr = {
  undefined: 0,
  unknown: 1 << 0,
  unused: 1 << 1,
  normal: 1 << 2,
  control: 1 << 3,
  userDefined: 1 << 4,
  byte: 1 << 5,
} as const;

export interface GgufVocabulary {
  /** `tokenizer.ggml.model`: 'llama' is SentencePiece-style (scores), 'gpt2' byte-level BPE (merges). */
  readonly model: 'llama' | 'gpt2';
  /** The BPE pre-tokenizer (`tokenizer.ggml.pre`); undefined for 'llama'. */
  readonly pre: PreTokenizer | undefined;
  /** Token texts by id; empty texts renamed `[EMPTY_<id>]` as llama.cpp does. */
  readonly tokens: readonly string[];
  /** Merge priority per token (higher merges first); zeros when the file has none. */
  readonly scores: readonly number[];
  /** llama_token_attr per token, after llama.cpp's corrections. */
  readonly attributes: readonly number[];
  /** BPE merges "left right" in rank order; empty for 'llama'. */
  readonly merges: readonly string[];
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  readonly unkId: number | undefined;
  readonly padId: number | undefined;
  /** Whether tokenizing with special tokens prepends BOS / appends EOS. */
  readonly addBos: boolean;
  readonly addEos: boolean;
  /** SentencePiece's leading "▁": prepended to text at the start and after each special token. */
  readonly addSpacePrefix: boolean;
}

// Texts llama.cpp marks as control tokens whatever their token_type (its end-of-generation list).
const END_OF_GENERATION_TEXTS = new Set([
  '<|eot_id|>',
  '<|im_end|>',
  '<|end|>',
  '<|return|>',
  '<|call|>',
  '<|flush|>',
  '<|calls|>',
  '<end_of_turn>',
  '<|endoftext|>',
  '</s>',
  '<|eom_id|>',
  '<EOT>',
  '_<EOT>',
  '[EOT]',
  '[EOS]',
  '<|end_of_text|>',
  '<end_of_utterance>',
  '<eos>',
  '<turn|>',
  '<|tool_response>',
  '<｜end▁of▁sentence｜>',
  '[e~[',
]);

// Fill-in-the-middle markers, promoted to control only when the file does not name that marker's id.
const FILL_IN_THE_MIDDLE: readonly { keys: readonly string[]; texts: readonly string[] }[] = [
  {
    keys: ['tokenizer.ggml.fim_pre_token_id', 'tokenizer.ggml.prefix_token_id'],
    texts: [
      '<|fim_prefix|>',
      '<fim-prefix>',
      '<fim_prefix>',
      '<｜fim▁begin｜>',
      '<PRE>',
      '▁<PRE>',
      '<|code_prefix|>',
      '<|prefix|>',
    ],
  },
  {
    keys: ['tokenizer.ggml.fim_suf_token_id', 'tokenizer.ggml.suffix_token_id'],
    texts: [
      '<|fim_suffix|>',
      '<fim-suffix>',
      '<fim_suffix>',
      '<｜fim▁hole｜>',
      '<SUF>',
      '▁<SUF>',
      '<|code_suffix|>',
      '<|suffix|>',
    ],
  },
  {
    keys: ['tokenizer.ggml.fim_mid_token_id', 'tokenizer.ggml.middle_token_id'],
    texts: [
      '<|fim_middle|>',
      '<fim-middle>',
      '<fim_middle>',
      '<｜fim▁end｜>',
      '<MID>',
      '▁<MID>',
      '<|code_middle|>',
      '<|middle|>',
    ],
  },
  { keys: ['tokenizer.ggml.fim_pad_token_id'], texts: ['<|fim_pad|>', '<fim-pad>', '<fim_pad>', '<PAD>', '[PAD]'] },
  {
    keys: ['tokenizer.ggml.fim_rep_token_id'],
    texts: ['<|fim_repo|>', '<|repo_name|>', '<fim-repo>', '<REPO>', '<reponame>'],
  },
  { keys: ['tokenizer.ggml.fim_sep_token_id'], texts: ['<|file_sep|>'] },
];

// llama.cpp renders these gpt-oss markers as text (user-defined), whatever their type.
const ALWAYS_USER_DEFINED = new Set(['<|channel|>', '<|message|>', '<|start|>', '<|constrain|>']);

/** llama_token_type (stored per token) -> llama_token_attr. */
const ATTR_BY_TYPE: Readonly<Record<number, number>> = {
  1: TokenAttr.normal,
  2: TokenAttr.unknown,
  3: TokenAttr.control,
  4: TokenAttr.userDefined,
  5: TokenAttr.unused,
  6: TokenAttr.byte,
};

export function vocabularyFromMetadata(metadata: ReadonlyMap<string, GgufValue>): GgufVocabulary {
  const model = stringKey(metadata, 'tokenizer.ggml.model');
  if (model !== 'llama' && model !== 'gpt2') {
    throw new UnsupportedBaseError(
      'unsupported_tokenizer',
      `tokenizer model '${model ?? '(missing)'}' is not supported; supported: 'llama' (SentencePiece) and 'gpt2' (byte-level BPE)`,
      { model: model ?? null },
    );
  }
  const pre = model === 'gpt2' ? resolvePreTokenizer(stringKey(metadata, 'tokenizer.ggml.pre')) : undefined;
  const rawTokens = stringArrayKey(metadata, 'tokenizer.ggml.tokens');
  if (!rawTokens || rawTokens.length === 0) throw new GgufError('the GGUF has no tokenizer.ggml.tokens');
  const n = rawTokens.length;
  const tokens = rawTokens.map((text, id) => (text === '' ? `[EMPTY_${id}]` : text));
  const seen = new Map<string, number>();
  tokens.forEach((text, id) => {
    const first = seen.get(text);
    // llama.cpp aborts on this (GGML_ASSERT in llama_vocab::impl::load).
    if (first !== undefined) throw new GgufError(`tokens ${first} and ${id} are both '${text}'`, { ids: [first, id] });
    seen.set(text, id);
  });

  const scores = numberArrayKey(metadata, 'tokenizer.ggml.scores', n) ?? new Array<number>(n).fill(0);
  const types = numberArrayKey(metadata, 'tokenizer.ggml.token_type', n);
  const attributes = tokens.map((_, id) =>
    types ? (ATTR_BY_TYPE[types[id] ?? 0] ?? TokenAttr.undefined) : TokenAttr.normal,
  );
  for (const { keys, texts } of FILL_IN_THE_MIDDLE) {
    if (keys.some((key) => validId(metadata, key, n) !== undefined)) continue;
    for (const text of texts) promote(seen, attributes, text);
  }
  for (const text of END_OF_GENERATION_TEXTS) promote(seen, attributes, text);
  for (const text of ALWAYS_USER_DEFINED) {
    const id = seen.get(text);
    if (id !== undefined) attributes[id] = TokenAttr.userDefined;
  }
  // gpt-oss / solar-open: '<|end|>' is not an end-of-generation token when '<|return|>'/'<|call|>' exist.
  if ((seen.has('<|return|>') && seen.has('<|call|>')) || (seen.has('<|calls|>') && seen.has('<|flush|>'))) {
    const id = seen.get('<|end|>');
    if (id !== undefined) attributes[id] = TokenAttr.userDefined;
  }
  if (seen.has('<|tool_response>')) {
    const id = seen.get('</s>');
    if (id !== undefined) attributes[id] = TokenAttr.normal;
  }

  const merges = model === 'gpt2' ? stringArrayKey(metadata, 'tokenizer.ggml.merges') : [];
  if (merges === undefined) throw new GgufError('a gpt2 tokenizer needs tokenizer.ggml.merges');
  const spm = model === 'llama';
  const defaults = spm ? { bos: 1, eos: 2, unk: 0 } : { bos: 11, eos: 11, unk: undefined };
  const specialId = (key: string, fallback: number | undefined): number | undefined =>
    validId(metadata, key, n) ?? (fallback !== undefined && fallback < n ? fallback : undefined);
  return {
    model,
    pre,
    tokens,
    scores,
    attributes,
    merges,
    bosId: specialId('tokenizer.ggml.bos_token_id', defaults.bos),
    eosId: specialId('tokenizer.ggml.eos_token_id', defaults.eos),
    unkId: specialId('tokenizer.ggml.unknown_token_id', defaults.unk),
    padId: specialId('tokenizer.ggml.padding_token_id', undefined),
    addBos: boolKey(metadata, 'tokenizer.ggml.add_bos_token') ?? (spm || (pre?.addBosDefault ?? false)),
    addEos: boolKey(metadata, 'tokenizer.ggml.add_eos_token') ?? false,
    addSpacePrefix: boolKey(metadata, 'tokenizer.ggml.add_space_prefix') ?? spm,
  };
}

function promote(ids: ReadonlyMap<string, number>, attributes: number[], text: string): void {
  const id = ids.get(text);
  if (id !== undefined) attributes[id] = (attributes[id] ?? 0) | TokenAttr.control;
}

function stringKey(metadata: ReadonlyMap<string, GgufValue>, key: string): string | undefined {
  const value = metadata.get(key);
  if (value === undefined) return undefined;
  if (value.type !== 'string') throw new GgufError(`${key} must be a string`, { key });
  return value.value;
}

function boolKey(metadata: ReadonlyMap<string, GgufValue>, key: string): boolean | undefined {
  const value = metadata.get(key);
  if (value === undefined) return undefined;
  if (value.type !== 'bool') throw new GgufError(`${key} must be a bool`, { key });
  return value.value;
}

function stringArrayKey(metadata: ReadonlyMap<string, GgufValue>, key: string): readonly string[] | undefined {
  const value = metadata.get(key);
  if (value === undefined) return undefined;
  if (value.type !== 'array' || value.itemType !== 'string') throw new GgufError(`${key} must be an array of strings`);
  return value.value;
}

/** A numeric array of at least `length` items (llama.cpp reads the first `length`). */
function numberArrayKey(
  metadata: ReadonlyMap<string, GgufValue>,
  key: string,
  length: number,
): readonly number[] | undefined {
  const value = metadata.get(key);
  if (value === undefined) return undefined;
  if (value.type !== 'array' || (value.itemType !== 'float32' && value.itemType !== 'int32')) {
    throw new GgufError(`${key} must be an array of float32 or int32`, { key });
  }
  if (value.value.length < length) {
    throw new GgufError(`${key} has ${value.value.length} entries for ${length} tokens`, { key });
  }
  return value.value;
}

/** An integer key that names a token; out-of-range ids are ignored as llama.cpp does (it keeps its default). */
function validId(metadata: ReadonlyMap<string, GgufValue>, key: string, n: number): number | undefined {
  const value = metadata.get(key);
  if (value === undefined || value.type === 'array' || value.type === 'string' || value.type === 'bool')
    return undefined;
  const id = Number(value.value);
  return Number.isInteger(id) && id >= 0 && id < n ? id : undefined;
}
