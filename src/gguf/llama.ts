/**
 * Builds a llama-architecture GGUF that llama.cpp (commit 80fb11ac, the one node-llama-cpp 3.21.1 ships) loads.
 * Key names come from llama.cpp's src/llama-arch.cpp; tensor shapes from src/models/llama.cpp
 * (`load_arch_tensors`), whose ggml shapes {ne0, ne1} are the reverse of the row-major shapes used here:
 * a projection is stored [out_features, in_features], like a PyTorch Linear weight.
 *
 * Attention uses llama.cpp's "normal" RoPE (rotating adjacent pairs of each head's values); weights converted
 * from Hugging Face checkpoints need the q/k permutation convert_hf_to_gguf.py applies, weights trained
 * against ggml's rope (mode 0) do not.
 */

import type { GgufFile, GgufTensor, GgufTensorType, GgufValue } from './writer.ts';
import { GgufError, gguf, writeGguf } from './writer.ts';

export interface LlamaHyperparameters {
  readonly nVocab: number;
  readonly nCtx: number;
  readonly nEmbd: number;
  readonly nLayer: number;
  readonly nHead: number;
  readonly nHeadKv: number;
  readonly nFf: number;
  readonly ropeFreqBase: number;
  readonly rmsEps: number;
}

/** llama_token_type (include/llama.h), stored per token in `tokenizer.ggml.token_type`. */
export const TokenType = {
  undefined: 0,
  normal: 1,
  unknown: 2,
  control: 3,
  userDefined: 4,
  unused: 5,
  byte: 6,
} as const;
export type TokenType = (typeof TokenType)[keyof typeof TokenType];

interface SpecialTokenIds {
  readonly bosId: number;
  readonly eosId: number;
  readonly padId?: number;
  /** Whether llama.cpp prepends BOS when tokenizing with special tokens; llama.cpp's default per model when unset. */
  readonly addBos?: boolean;
  readonly addEos?: boolean;
}

/**
 * SentencePiece-style vocabulary (llama.cpp's SPM tokenizer): '▁' (U+2581) stands for a space, and bytes
 * without a piece fall back to `<0xNN>` tokens of type `byte`. Every multi-character piece must be reachable
 * by joining two shorter pieces, since SPM merges adjacent symbols whose concatenation is in the vocabulary.
 */
export interface SentencePieceTokenizerSpec extends SpecialTokenIds {
  readonly model: 'llama';
  readonly tokens: readonly string[];
  /** Merge priority: the higher a piece's score, the earlier it is formed. */
  readonly scores: readonly number[];
  readonly tokenTypes: readonly TokenType[];
  readonly unkId: number;
  /** Prepend '▁' to the input, as Llama 2's tokenizer does; default true. */
  readonly addSpacePrefix?: boolean;
}

/**
 * GPT-2 style byte-level BPE: token texts are bytes mapped through GPT-2's bytes_to_unicode table
 * (see `byteLevelText`); merges are "left right" pairs in rank order.
 */
export interface BytePairTokenizerSpec extends SpecialTokenIds {
  readonly model: 'gpt2';
  readonly tokens: readonly string[];
  readonly merges: readonly string[];
  /** Defaults to `normal` everywhere except the special ids, which become `control`. */
  readonly tokenTypes?: readonly TokenType[];
  /**
   * llama.cpp pre-tokenizer name (`tokenizer.ggml.pre`); default `DEFAULT_BPE_PRE_TOKENIZER`.
   * It picks the regex that splits text before the merges, and whether detokenizing "cleans" spaces:
   * 'default', 'gpt-2' and 'llama-bpe' drop the space in " ," / " ." / " 's", so their round trips are lossy.
   */
  readonly pre?: string;
}

export type LlamaTokenizerSpec = SentencePieceTokenizerSpec | BytePairTokenizerSpec;

/**
 * 'qwen2' splits like GPT-4 (letters, 1-digit numbers, punctuation runs, whitespace) and keeps
 * clean_up_tokenization_spaces off, so detokenize(tokenize(text)) === text for any UTF-8 text.
 */
export const DEFAULT_BPE_PRE_TOKENIZER = 'qwen2';

/**
 * Llama 2 chat format as a Jinja template: meta-llama/Llama-2-7b-chat-hf's tokenizer_config.json template
 * without the space it puts between an assistant answer and </s>. With that space node-llama-cpp 3.21
 * falls back to a generic Jinja wrapper; without it `resolveChatWrapper` recognises its own Llama2Chat wrapper.
 */
export const LLAMA2_CHAT_TEMPLATE =
  "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}" +
  '{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}' +
  "{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}" +
  "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
  "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}" +
  "{% else %}{% set content = message['content'] %}{% endif %}" +
  "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}" +
  "{% elif message['role'] == 'assistant' %}{{ ' ' + content.strip() + eos_token }}{% endif %}{% endfor %}";

export interface LlamaModelSpec {
  readonly name?: string;
  readonly hparams: LlamaHyperparameters;
  readonly tokenizer: LlamaTokenizerSpec;
  readonly chatTemplate?: string;
  /** Row-major F32 weights by llama.cpp tensor name; see `llamaTensorShapes`. `output.weight` may be left out (tied embeddings). */
  readonly tensors: ReadonlyMap<string, Float32Array> | Readonly<Record<string, Float32Array>>;
  /**
   * Storage type of the 2-D weights; norms always stay F32. Default F32. Block types need every weight row
   * (n_embd, n_ff, n_head * head size) to be a multiple of the block: 32 for Q8_0/Q4_0, 256 for Q4_K/Q6_K.
   */
  readonly weightType?: GgufTensorType;
  /** Per-tensor storage types that override `weightType`, e.g. Q6_K for `output.weight` as llama-quantize's Q4_K_M does. */
  readonly tensorTypes?: Readonly<Record<string, GgufTensorType>>;
}

/** llama_ftype (include/llama.h) for a file whose 2-D weights are mostly `type`. */
const FILE_TYPE: Record<GgufTensorType, number> = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 7, Q4_K: 15, Q6_K: 18 };

const OPTIONAL_TENSORS = new Set(['output.weight']);

/** Every tensor a llama model has, in file order, with its row-major shape. */
export function llamaTensorShapes(hparams: LlamaHyperparameters): Map<string, readonly number[]> {
  const { nVocab, nEmbd, nHead, nHeadKv, nFf, nLayer } = hparams;
  const headDim = nEmbd / nHead;
  const shapes = new Map<string, readonly number[]>([['token_embd.weight', [nVocab, nEmbd]]]);
  for (let i = 0; i < nLayer; i++) {
    shapes.set(`blk.${i}.attn_norm.weight`, [nEmbd]);
    shapes.set(`blk.${i}.attn_q.weight`, [nHead * headDim, nEmbd]);
    shapes.set(`blk.${i}.attn_k.weight`, [nHeadKv * headDim, nEmbd]);
    shapes.set(`blk.${i}.attn_v.weight`, [nHeadKv * headDim, nEmbd]);
    shapes.set(`blk.${i}.attn_output.weight`, [nEmbd, nHead * headDim]);
    shapes.set(`blk.${i}.ffn_norm.weight`, [nEmbd]);
    shapes.set(`blk.${i}.ffn_gate.weight`, [nFf, nEmbd]);
    shapes.set(`blk.${i}.ffn_up.weight`, [nFf, nEmbd]);
    shapes.set(`blk.${i}.ffn_down.weight`, [nEmbd, nFf]);
  }
  shapes.set('output_norm.weight', [nEmbd]);
  shapes.set('output.weight', [nVocab, nEmbd]);
  return shapes;
}

export function checkLlamaHyperparameters(hparams: LlamaHyperparameters): void {
  const { nEmbd, nHead, nHeadKv, ropeFreqBase, rmsEps } = hparams;
  for (const key of ['nVocab', 'nCtx', 'nEmbd', 'nLayer', 'nHead', 'nHeadKv', 'nFf'] as const) {
    const value = hparams[key];
    if (!Number.isSafeInteger(value) || value <= 0 || value > 0xffffffff) {
      throw new GgufError(`hyperparameter ${key} must be a positive uint32, got ${value}`, { [key]: value });
    }
  }
  if (nEmbd % nHead !== 0) throw new GgufError(`nEmbd ${nEmbd} is not a multiple of nHead ${nHead}`);
  // llama.cpp's graph asserts an even head size for RoPE and groups query heads over KV heads.
  if ((nEmbd / nHead) % 2 !== 0) throw new GgufError(`head size ${nEmbd / nHead} must be even for RoPE`);
  if (nHead % nHeadKv !== 0) throw new GgufError(`nHead ${nHead} is not a multiple of nHeadKv ${nHeadKv}`);
  if (!(ropeFreqBase > 0) || !(rmsEps > 0)) throw new GgufError('ropeFreqBase and rmsEps must be positive');
}

/** The GGUF (metadata + tensors) of a llama model, validated; write it with `writeGguf` or `encodeGguf`. */
export function buildLlamaGguf(spec: LlamaModelSpec): GgufFile {
  const { hparams } = spec;
  checkLlamaHyperparameters(hparams);
  const weightType = spec.weightType ?? 'F32';
  const metadata: Record<string, GgufValue> = {
    'general.architecture': gguf.string('llama'),
    'general.type': gguf.string('model'),
    'general.name': gguf.string(spec.name ?? 'bertha-llama'),
    'general.file_type': gguf.uint32(FILE_TYPE[weightType]),
    'llama.vocab_size': gguf.uint32(hparams.nVocab),
    'llama.context_length': gguf.uint32(hparams.nCtx),
    'llama.embedding_length': gguf.uint32(hparams.nEmbd),
    'llama.block_count': gguf.uint32(hparams.nLayer),
    'llama.feed_forward_length': gguf.uint32(hparams.nFf),
    'llama.attention.head_count': gguf.uint32(hparams.nHead),
    'llama.attention.head_count_kv': gguf.uint32(hparams.nHeadKv),
    'llama.rope.dimension_count': gguf.uint32(hparams.nEmbd / hparams.nHead),
    'llama.rope.freq_base': gguf.float32(hparams.ropeFreqBase),
    'llama.attention.layer_norm_rms_epsilon': gguf.float32(hparams.rmsEps),
    ...tokenizerMetadata(spec.tokenizer, hparams.nVocab),
  };
  if (spec.chatTemplate !== undefined) metadata['tokenizer.chat_template'] = gguf.string(spec.chatTemplate);
  return { metadata, tensors: llamaTensors(spec, weightType) };
}

export async function writeLlamaGguf(
  path: string,
  spec: LlamaModelSpec,
  signal?: AbortSignal,
): Promise<{ bytes: number }> {
  return writeGguf(path, buildLlamaGguf(spec), signal);
}

function llamaTensors(spec: LlamaModelSpec, weightType: GgufTensorType): GgufTensor[] {
  const given = spec.tensors instanceof Map ? spec.tensors : new Map(Object.entries(spec.tensors));
  const shapes = llamaTensorShapes(spec.hparams);
  const unknown = [...given.keys(), ...Object.keys(spec.tensorTypes ?? {})].filter((name) => !shapes.has(name));
  if (unknown.length > 0) throw new GgufError(`unknown llama tensors: ${unknown.join(', ')}`, { unknown });
  const tensors: GgufTensor[] = [];
  for (const [name, shape] of shapes) {
    const data = given.get(name);
    if (data === undefined) {
      if (OPTIONAL_TENSORS.has(name)) continue;
      throw new GgufError(`missing llama tensor '${name}'`, { name });
    }
    const elements = shape.reduce((a, b) => a * b, 1);
    if (data.length !== elements) {
      throw new GgufError(`tensor '${name}' has ${data.length} values, shape [${shape.join(', ')}] needs ${elements}`, {
        name,
        shape,
      });
    }
    const type = spec.tensorTypes?.[name] ?? (shape.length === 2 ? weightType : 'F32');
    tensors.push({ name, shape, type, data });
  }
  return tensors;
}

function tokenizerMetadata(tokenizer: LlamaTokenizerSpec, nVocab: number): Record<string, GgufValue> {
  const { tokens } = tokenizer;
  if (tokens.length !== nVocab) throw new GgufError(`tokenizer has ${tokens.length} tokens, nVocab is ${nVocab}`);
  checkUniqueTokens(tokens);
  const specialIds: Record<string, number | undefined> = {
    bosId: tokenizer.bosId,
    eosId: tokenizer.eosId,
    padId: tokenizer.padId,
    unkId: tokenizer.model === 'llama' ? tokenizer.unkId : undefined,
  };
  for (const [key, id] of Object.entries(specialIds)) {
    if (id !== undefined && !(Number.isInteger(id) && id >= 0 && id < nVocab)) {
      throw new GgufError(`tokenizer ${key} ${id} is outside the vocabulary`, { [key]: id });
    }
  }
  const metadata: Record<string, GgufValue> =
    tokenizer.model === 'llama' ? sentencePieceMetadata(tokenizer) : bytePairMetadata(tokenizer);
  metadata['tokenizer.ggml.bos_token_id'] = gguf.uint32(tokenizer.bosId);
  metadata['tokenizer.ggml.eos_token_id'] = gguf.uint32(tokenizer.eosId);
  if (tokenizer.padId !== undefined) metadata['tokenizer.ggml.padding_token_id'] = gguf.uint32(tokenizer.padId);
  if (tokenizer.addBos !== undefined) metadata['tokenizer.ggml.add_bos_token'] = gguf.bool(tokenizer.addBos);
  if (tokenizer.addEos !== undefined) metadata['tokenizer.ggml.add_eos_token'] = gguf.bool(tokenizer.addEos);
  return metadata;
}

// llama.cpp asserts (aborting the process) that no two token texts are equal, and renames empty ones.
function checkUniqueTokens(tokens: readonly string[]): void {
  const seen = new Map<string, number>();
  tokens.forEach((token, id) => {
    if (token === '') throw new GgufError(`token ${id} is empty`, { id });
    const first = seen.get(token);
    if (first !== undefined)
      throw new GgufError(`tokens ${first} and ${id} are both '${token}'`, { token, ids: [first, id] });
    seen.set(token, id);
  });
}

function sentencePieceMetadata(tokenizer: SentencePieceTokenizerSpec): Record<string, GgufValue> {
  const { tokens, scores, tokenTypes } = tokenizer;
  if (scores.length !== tokens.length || tokenTypes.length !== tokens.length) {
    throw new GgufError(
      `tokens (${tokens.length}), scores (${scores.length}) and tokenTypes (${tokenTypes.length}) differ in length`,
    );
  }
  tokenTypes.forEach((type, id) => {
    if (type === TokenType.byte && !/^<0x[0-9A-F]{2}>$/.test(tokens[id] ?? '')) {
      throw new GgufError(`byte token ${id} '${tokens[id]}' is not spelled <0xNN>`, { id });
    }
  });
  return {
    'tokenizer.ggml.model': gguf.string('llama'),
    'tokenizer.ggml.tokens': gguf.array('string', tokens),
    'tokenizer.ggml.scores': gguf.array('float32', scores),
    'tokenizer.ggml.token_type': gguf.array('int32', tokenTypes),
    'tokenizer.ggml.unknown_token_id': gguf.uint32(tokenizer.unkId),
    'tokenizer.ggml.add_space_prefix': gguf.bool(tokenizer.addSpacePrefix ?? true),
  };
}

function bytePairMetadata(tokenizer: BytePairTokenizerSpec): Record<string, GgufValue> {
  const { tokens, merges } = tokenizer;
  const vocabulary = new Set(tokens);
  // Without a token for every byte, llama.cpp silently drops the bytes it cannot spell.
  const missingBytes = BYTE_LEVEL_CHARS.filter((char) => !vocabulary.has(char));
  if (missingBytes.length > 0) {
    throw new GgufError(`byte-level vocabulary lacks ${missingBytes.length} of the 256 byte tokens`, { missingBytes });
  }
  merges.forEach((merge, rank) => {
    const parts = merge.split(' ');
    const [left, right] = parts;
    if (
      parts.length !== 2 ||
      !left ||
      !right ||
      !vocabulary.has(left) ||
      !vocabulary.has(right) ||
      !vocabulary.has(left + right)
    ) {
      throw new GgufError(`merge ${rank} '${merge}' must join two tokens into a token of the vocabulary`, {
        rank,
        merge,
      });
    }
  });
  if (merges.length === 0) throw new GgufError('a byte-level BPE tokenizer needs at least one merge');
  const special = new Set([tokenizer.bosId, tokenizer.eosId, tokenizer.padId]);
  const tokenTypes =
    tokenizer.tokenTypes ?? tokens.map((_, id) => (special.has(id) ? TokenType.control : TokenType.normal));
  if (tokenTypes.length !== tokens.length) throw new GgufError('tokenTypes and tokens differ in length');
  return {
    'tokenizer.ggml.model': gguf.string('gpt2'),
    'tokenizer.ggml.pre': gguf.string(tokenizer.pre ?? DEFAULT_BPE_PRE_TOKENIZER),
    'tokenizer.ggml.tokens': gguf.array('string', tokens),
    'tokenizer.ggml.token_type': gguf.array('int32', tokenTypes),
    'tokenizer.ggml.merges': gguf.array('string', merges),
  };
}

/** GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the rest to U+0100 onwards. */
function byteLevelChars(): string[] {
  const printable = (byte: number): boolean =>
    (byte >= 0x21 && byte <= 0x7e) || (byte >= 0xa1 && byte <= 0xac) || (byte >= 0xae && byte <= 0xff);
  let next = 0x100;
  return Array.from({ length: 256 }, (_, byte) => String.fromCodePoint(printable(byte) ? byte : next++));
}

/** The 256 byte-level token texts, indexed by byte value. */
export const BYTE_LEVEL_CHARS: readonly string[] = byteLevelChars();

/** The byte-level (GPT-2) token text that spells `bytes`, e.g. " the" -> "Ġthe". */
export function byteLevelText(bytes: Uint8Array | string): string {
  const raw = typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes;
  let text = '';
  for (const byte of raw) text += BYTE_LEVEL_CHARS[byte];
  return text;
}
