/**
 * LoRA adapter GGUF, as llama.cpp's src/llama-adapter.cpp (`llama_adapter_lora_init_impl`) reads it:
 * `general.type` = "adapter", `adapter.type` = "lora", `adapter.lora.alpha` (f32), `general.architecture`
 * equal to the base model's, and for each adapted weight W a pair `<W>.lora_a` / `<W>.lora_b`.
 * llama.cpp checks ggml shapes a = {in, r} and b = {r, out} against W = {in, out}: row-major that is
 * A [r, in] and B [out, r], the layout of PEFT's lora_A / lora_B weights. The update is
 * W x + (alpha / r) * scale * B (A x).
 */

import type { LlamaHyperparameters } from './llama.ts';
import { llamaTensorShapes } from './llama.ts';
import type { GgufFile, GgufTensor } from './writer.ts';
import { GgufError, gguf, writeGguf } from './writer.ts';

export interface LoraWeight {
  /** Name of the adapted base tensor, e.g. `blk.0.attn_q.weight`. */
  readonly target: string;
  readonly rank: number;
  /** Row-major [rank, in_features]. */
  readonly a: Float32Array;
  /** Row-major [out_features, rank]. */
  readonly b: Float32Array;
}

export interface LoraAdapterSpec {
  readonly alpha: number;
  readonly weights: readonly LoraWeight[];
  readonly name?: string;
  /**
   * The base model's hyperparameters: when given, every target must be a llama weight matrix whose
   * shape matches A and B (llama.cpp refuses the adapter otherwise, when it loads it).
   */
  readonly base?: LlamaHyperparameters;
}

export function buildLoraGguf(spec: LoraAdapterSpec): GgufFile {
  if (!(Number.isFinite(spec.alpha) && spec.alpha > 0))
    throw new GgufError(`LoRA alpha must be positive, got ${spec.alpha}`);
  if (spec.weights.length === 0) throw new GgufError('a LoRA adapter needs at least one weight pair');
  const baseShapes = spec.base ? llamaTensorShapes(spec.base) : undefined;
  const tensors: GgufTensor[] = [];
  for (const weight of spec.weights) {
    const [out, inFeatures] = loraShape(weight);
    if (baseShapes) {
      const expected = baseShapes.get(weight.target);
      if (expected?.length !== 2) {
        throw new GgufError(`LoRA target '${weight.target}' is not a weight matrix of the base model`, {
          target: weight.target,
        });
      }
      if (expected[0] !== out || expected[1] !== inFeatures) {
        throw new GgufError(
          `LoRA on '${weight.target}' is [${out}, ${inFeatures}], the base weight is [${expected.join(', ')}]`,
          {
            target: weight.target,
          },
        );
      }
    }
    tensors.push({ name: `${weight.target}.lora_a`, shape: [weight.rank, inFeatures], type: 'F32', data: weight.a });
    tensors.push({ name: `${weight.target}.lora_b`, shape: [out, weight.rank], type: 'F32', data: weight.b });
  }
  return {
    metadata: {
      'general.architecture': gguf.string('llama'),
      'general.type': gguf.string('adapter'),
      'general.name': gguf.string(spec.name ?? 'bertha-lora'),
      'adapter.type': gguf.string('lora'),
      'adapter.lora.alpha': gguf.float32(spec.alpha),
    },
    tensors,
  };
}

export async function writeLoraGguf(
  path: string,
  spec: LoraAdapterSpec,
  signal?: AbortSignal,
): Promise<{ bytes: number }> {
  return writeGguf(path, buildLoraGguf(spec), signal);
}

/** [out_features, in_features] of the adapted weight, from A, B and the rank. */
function loraShape(weight: LoraWeight): [number, number] {
  const { target, rank, a, b } = weight;
  if (!target.endsWith('.weight'))
    throw new GgufError(`LoRA target '${target}' must name a '.weight' tensor`, { target });
  // llama-adapter.cpp expects token_embd's pair transposed relative to every other weight; not produced here.
  if (target === 'token_embd.weight') throw new GgufError('LoRA on token_embd.weight is not supported', { target });
  if (
    !Number.isSafeInteger(rank) ||
    rank <= 0 ||
    a.length % rank !== 0 ||
    b.length % rank !== 0 ||
    a.length === 0 ||
    b.length === 0
  ) {
    throw new GgufError(`LoRA on '${target}': A (${a.length}) and B (${b.length}) values do not fit rank ${rank}`, {
      target,
      rank,
    });
  }
  return [b.length / rank, a.length / rank];
}
