/**
 * A served Llama-family GGUF read as a base for fine-tuning: hyper-parameters, tokenizer and tensor table of an
 * `LLM_ARCH_LLAMA` file (Llama 2 and 3, TinyLlama, Mistral 7B without sliding window, SmolLM, ...), with the
 * defaults llama.cpp 80fb11ac applies (llama_model_base::load_hparams, src/models/llama.cpp). Anything the
 * trainer's graph cannot reproduce is refused here, with an `UnsupportedBaseError` whose code says why.
 */
import { GgufError, UnsupportedBaseError } from './errors.ts';
import type { GgufHeader, GgufTensorInfo } from './reader.ts';
import { readGgufHeader } from './reader.ts';
import type { GgufVocabulary } from './vocabulary.ts';
import { vocabularyFromMetadata } from './vocabulary.ts';
import type { GgufValue } from './writer.ts';

export interface LlamaBaseHyperparameters {
  readonly nVocab: number;
  /** `llama.context_length`: the context the model was trained with. */
  readonly nCtxTrain: number;
  readonly nEmbd: number;
  readonly nLayer: number;
  readonly nHead: number;
  /** Fewer than nHead means grouped-query attention (nHead / nHeadKv query heads share one K/V head). */
  readonly nHeadKv: number;
  readonly nFf: number;
  /** Per-head size of Q, K and V (`attention.key_length`, default nEmbd / nHead). */
  readonly headDim: number;
  /** Rotated dimensions per head (`rope.dimension_count`); llama.cpp requires it to equal headDim. */
  readonly nRot: number;
  readonly ropeFreqBase: number;
  /** Linear RoPE scaling (`rope.scaling.type` none or linear): positions are multiplied by 1 / `rope.scaling.factor`. */
  readonly ropeFreqScale: number;
  readonly rmsEps: number;
}

export interface LlamaBase {
  readonly path: string;
  readonly fileBytes: number;
  readonly name: string | undefined;
  readonly hparams: LlamaBaseHyperparameters;
  readonly vocabulary: GgufVocabulary;
  /** Every tensor by name, in its stored type (read them through `openGguf`). */
  readonly tensors: ReadonlyMap<string, GgufTensorInfo>;
  /** No `output.weight`: the output projection reuses `token_embd.weight`. */
  readonly tiedEmbeddings: boolean;
  /** `rope_freqs.weight` (Llama 3.1+ long-context RoPE factors, nRot / 2 values) when present. */
  readonly ropeFreqs: GgufTensorInfo | undefined;
  readonly chatTemplate: string | undefined;
}

const PER_LAYER = [
  'attn_norm',
  'attn_q',
  'attn_k',
  'attn_v',
  'attn_output',
  'ffn_norm',
  'ffn_gate',
  'ffn_up',
  'ffn_down',
];

/** Reads the header of the GGUF at `path` (no tensor data) and checks it is a base the trainer supports. */
export async function readLlamaBase(path: string, signal?: AbortSignal): Promise<LlamaBase> {
  return llamaBaseFromHeader(path, await readGgufHeader(path, signal));
}

export function llamaBaseFromHeader(path: string, header: GgufHeader): LlamaBase {
  const { metadata } = header;
  const key = (name: string): GgufValue | undefined => metadata.get(name);
  const architecture = stringValue(key('general.architecture'));
  if (architecture !== 'llama') {
    throw new UnsupportedBaseError(
      'unsupported_architecture',
      `${path} is a '${architecture ?? '(no general.architecture)'}' model; only 'llama' GGUFs (Llama 2/3, TinyLlama, Mistral without sliding window) can be fine-tuned`,
      { path, architecture: architecture ?? null },
    );
  }
  const nLayer = required(path, metadata, 'llama.block_count');
  const uint = (name: string, fallback?: number): number => perLayer(path, metadata, name, nLayer, fallback);
  const nEmbd = required(path, metadata, 'llama.embedding_length');
  const nCtxTrain = required(path, metadata, 'llama.context_length');
  const nHead = uint('llama.attention.head_count');
  const nHeadKv = uint('llama.attention.head_count_kv', nHead);
  const nFf = uint('llama.feed_forward_length');
  const experts = optionalNumber(key('llama.expert_count')) ?? 0;
  if (experts > 0) {
    throw new UnsupportedBaseError(
      'unsupported_mixture_of_experts',
      `${path} is a mixture of ${experts} experts (Mixtral-style); only dense Llama models can be fine-tuned`,
      { path, experts },
    );
  }
  const slidingWindow = optionalNumber(key('llama.attention.sliding_window'));
  if (slidingWindow !== undefined && slidingWindow > 0 && slidingWindow < nCtxTrain) {
    throw new UnsupportedBaseError(
      'unsupported_sliding_window',
      `${path} attends over a sliding window of ${slidingWindow} tokens within its ${nCtxTrain}-token context (Mistral v0.1 style); the trainer's graph uses full causal attention, so its gradients would not match the model`,
      { path, slidingWindow, nCtxTrain },
    );
  }
  if (nHead <= 0 || nHeadKv <= 0 || nHead % nHeadKv !== 0) {
    throw new GgufError(`${path}: ${nHead} attention heads cannot be grouped over ${nHeadKv} K/V heads`, { path });
  }
  const defaultHead = nEmbd / nHead;
  const headDim = optionalNumber(key('llama.attention.key_length')) ?? defaultHead;
  const valueDim = optionalNumber(key('llama.attention.value_length')) ?? defaultHead;
  const nRot = optionalNumber(key('llama.rope.dimension_count')) ?? headDim;
  if (!Number.isInteger(headDim) || valueDim !== headDim || nRot !== headDim) {
    throw new UnsupportedBaseError(
      'unsupported_layout',
      `${path}: key length ${headDim}, value length ${valueDim} and RoPE dimensions ${nRot} must all be equal (llama.cpp's llama graph requires it)`,
      { path, headDim, valueDim, nRot },
    );
  }
  const scalingType = stringValue(key('llama.rope.scaling.type')) ?? 'linear';
  if (scalingType !== 'none' && scalingType !== 'linear') {
    throw new UnsupportedBaseError(
      'unsupported_rope_scaling',
      `${path} uses '${scalingType}' RoPE scaling; only none and linear are supported`,
      { path, ropeScaling: scalingType },
    );
  }
  const scalingFactor =
    optionalNumber(key('llama.rope.scaling.factor')) ?? optionalNumber(key('llama.rope.scale_linear')) ?? 0;
  const rmsEps = optionalNumber(key('llama.attention.layer_norm_rms_epsilon'));
  if (rmsEps === undefined) throw new GgufError(`${path} lacks llama.attention.layer_norm_rms_epsilon`, { path });

  const vocabulary = vocabularyFromMetadata(metadata);
  const nVocab = optionalNumber(key('llama.vocab_size')) ?? vocabulary.tokens.length;
  const hparams: LlamaBaseHyperparameters = {
    nVocab,
    nCtxTrain,
    nEmbd,
    nLayer,
    nHead,
    nHeadKv,
    nFf,
    headDim,
    nRot,
    ropeFreqBase: optionalNumber(key('llama.rope.freq_base')) ?? 10000,
    ropeFreqScale: scalingFactor === 0 ? 1 : 1 / scalingFactor,
    rmsEps,
  };
  const tensors = new Map(header.tensors.map((t) => [t.name, t]));
  checkTensors(path, tensors, hparams);
  return {
    path,
    fileBytes: header.fileBytes,
    name: stringValue(key('general.name')),
    hparams,
    vocabulary,
    tensors,
    tiedEmbeddings: !tensors.has('output.weight'),
    ropeFreqs: tensors.get('rope_freqs.weight'),
    chatTemplate: stringValue(key('tokenizer.chat_template')),
  };
}

/** The tensors src/models/llama.cpp creates, with their ggml shapes {ne0, ne1}; nothing else is accepted. */
function checkTensors(path: string, tensors: ReadonlyMap<string, GgufTensorInfo>, h: LlamaBaseHyperparameters): void {
  const kv = h.nHeadKv * h.headDim;
  const q = h.nHead * h.headDim;
  const expected = new Map<string, readonly number[]>([
    ['token_embd.weight', [h.nEmbd, h.nVocab]],
    ['output_norm.weight', [h.nEmbd]],
  ]);
  const optional = new Map<string, readonly number[]>([
    ['output.weight', [h.nEmbd, h.nVocab]],
    ['rope_freqs.weight', [h.nRot / 2]],
  ]);
  const layerShapes: Record<string, readonly number[]> = {
    attn_norm: [h.nEmbd],
    attn_q: [h.nEmbd, q],
    attn_k: [h.nEmbd, kv],
    attn_v: [h.nEmbd, kv],
    attn_output: [q, h.nEmbd],
    ffn_norm: [h.nEmbd],
    ffn_gate: [h.nEmbd, h.nFf],
    ffn_up: [h.nEmbd, h.nFf],
    ffn_down: [h.nFf, h.nEmbd],
  };
  for (let i = 0; i < h.nLayer; i++) {
    for (const part of PER_LAYER) expected.set(`blk.${i}.${part}.weight`, layerShapes[part] ?? []);
  }
  const unexpected = [...tensors.keys()].filter((name) => !expected.has(name) && !optional.has(name));
  if (unexpected.length > 0) {
    const shown =
      unexpected.slice(0, 5).join(', ') + (unexpected.length > 5 ? `, and ${unexpected.length - 5} more` : '');
    throw new UnsupportedBaseError(
      'unsupported_layout',
      `${path} has tensors the trainer's Llama graph does not use (biases, fused QKV or other additions): ${shown}`,
      { path, tensors: unexpected },
    );
  }
  for (const [name, dims] of [...expected, ...optional]) {
    const tensor = tensors.get(name);
    if (!tensor) {
      if (optional.has(name)) continue;
      throw new GgufError(`${path} lacks tensor '${name}'`, { path, tensor: name });
    }
    if (tensor.dims.length !== dims.length || tensor.dims.some((d, i) => d !== dims[i])) {
      throw new GgufError(`${path}: tensor '${name}' is {${tensor.dims.join(', ')}}, expected {${dims.join(', ')}}`, {
        path,
        tensor: name,
      });
    }
  }
}

function stringValue(value: GgufValue | undefined): string | undefined {
  return value?.type === 'string' ? value.value : undefined;
}

function optionalNumber(value: GgufValue | undefined): number | undefined {
  if (value === undefined || value.type === 'string' || value.type === 'bool' || value.type === 'array')
    return undefined;
  return Number(value.value);
}

function required(path: string, metadata: ReadonlyMap<string, GgufValue>, name: string): number {
  const value = optionalNumber(metadata.get(name));
  if (value === undefined || !Number.isSafeInteger(value) || value <= 0) {
    throw new GgufError(`${path}: ${name} must be a positive integer`, { path, key: name });
  }
  return value;
}

/**
 * A hyper-parameter that llama.cpp accepts as one number or one per layer (get_key_or_arr). Per-layer arrays
 * are accepted when all layers agree; differing layers (Deci-style) are refused.
 */
function perLayer(
  path: string,
  metadata: ReadonlyMap<string, GgufValue>,
  name: string,
  nLayer: number,
  fallback?: number,
): number {
  const value = metadata.get(name);
  if (value === undefined) {
    if (fallback !== undefined) return fallback;
    throw new GgufError(`${path} lacks ${name}`, { path, key: name });
  }
  if (value.type !== 'array') return required(path, metadata, name);
  const values = (value.value as readonly unknown[]).map(Number);
  const first = values[0];
  if (values.length !== nLayer || first === undefined || values.some((v) => v !== first)) {
    throw new UnsupportedBaseError(
      'unsupported_layout',
      `${path}: ${name} differs between layers (${values.slice(0, 8).join(', ')}...); only uniform layers are supported`,
      { path, key: name },
    );
  }
  return first;
}
