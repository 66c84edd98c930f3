import type { GgmlBindings, Ptr } from './ffi/ggml.ts';
import { ROPE_TYPE_NORMAL } from './ffi/index.ts';
import { headDim, type LlamaConfig } from './model.ts';

/** What the graph needs to know of a Llama model, whether Bertha trained it or it came from a served GGUF. */
export interface LlamaGraphShape {
  embeddingLength: number;
  blockCount: number;
  headCount: number;
  /** Fewer than headCount: grouped-query attention, headCount / headCountKv query heads per K/V head. */
  headCountKv: number;
  headDim: number;
  rmsEps: number;
  ropeFreqBase: number;
  /** Linear RoPE scaling: positions times this (1 / `rope.scaling.factor`). */
  ropeFreqScale: number;
  /** The training context, which llama.cpp passes to RoPE as n_ctx_orig. */
  contextLength: number;
}

export function graphShapeOf(config: LlamaConfig): LlamaGraphShape {
  return {
    embeddingLength: config.embeddingLength,
    blockCount: config.blockCount,
    headCount: config.headCount,
    headCountKv: config.headCount,
    headDim: headDim(config),
    rmsEps: config.rmsEps,
    ropeFreqBase: config.ropeFreqBase,
    ropeFreqScale: 1,
    contextLength: config.contextLength,
  };
}

export interface LlamaGraphInputs {
  shape: LlamaGraphShape;
  /** Base weights by GGUF name, in any type ggml can multiply; no `output.weight` means the head is `token_embd.weight`. */
  weights: ReadonlyMap<string, Ptr>;
  /** `rope_freqs.weight` (Llama 3.1 RoPE factors) when the model has it. */
  ropeFreqs?: Ptr | undefined;
  /** LoRA A/B tensors by GGUF name (`blk.0.attn_q.weight.lora_a`) and their scale alpha / rank. */
  lora?: { scale: number; tensors: ReadonlyMap<string, Ptr> };
  /** I32 [T, B] token ids. */
  tokens: Ptr;
  /** I32 [T] positions 0..T-1. */
  positions: Ptr;
  /** F32 [T, T] causal mask: 0 where key <= query, -inf elsewhere. A constant: a trainable mask has no backward. */
  mask: Ptr;
  sequenceLength: number;
  batchSize: number;
}

function required(map: ReadonlyMap<string, Ptr>, name: string): Ptr {
  const t = map.get(name);
  if (t === undefined) throw new RangeError(`missing tensor ${name}`);
  return t;
}

/**
 * Nodes a training graph of this shape needs, forward, backward and optimizer together: about 300 per
 * block with adapters on every projection, doubled for safety. ggml aborts when a graph outgrows its size.
 */
export function graphNodeBudget(shape: LlamaGraphShape): number {
  return 1024 * (shape.blockCount + 2) + 4096;
}

/**
 * The forward graph of llama.cpp's LLM_ARCH_LLAMA (src/models/llama.cpp) without a KV cache:
 * every op here has a backward pass in ggml 0.23.0 (the fused `ggml_swiglu` has none, hence
 * the split form). Frozen weights may be quantized: their backward is `ggml_out_prod`, which
 * ggml's CPU backend has for F32, F16 and the quantized types. Returns logits F32 [vocab, T*B].
 */
export function buildLlamaGraph(fn: GgmlBindings, ctx: Ptr, inputs: LlamaGraphInputs): Ptr {
  const { shape, weights, lora, sequenceLength: T, batchSize: B } = inputs;
  const H = shape.headCount;
  const Hkv = shape.headCountKv;
  const D = shape.headDim;
  const N = T * B;
  const eps = shape.rmsEps;

  // llama.cpp's build_lora_mm: W x, plus (alpha / r) * B (A x) for each adapter on W.
  const project = (name: string, weight: Ptr, x: Ptr): Ptr => {
    const out = fn.mul_mat(ctx, weight, x);
    const a = lora?.tensors.get(`${name}.lora_a`);
    const b = lora?.tensors.get(`${name}.lora_b`);
    if (a === undefined || b === undefined || !lora) return out;
    return fn.add(ctx, out, fn.scale(ctx, fn.mul_mat(ctx, b, fn.mul_mat(ctx, a, x)), lora.scale));
  };
  const projectNamed = (name: string, x: Ptr) => project(name, required(weights, name), x);
  const rope = (t: Ptr) =>
    fn.rope_ext(
      ctx,
      t,
      inputs.positions,
      inputs.ropeFreqs ?? null,
      D,
      ROPE_TYPE_NORMAL,
      shape.contextLength,
      shape.ropeFreqBase,
      shape.ropeFreqScale,
      0,
      1,
      32,
      1,
    );
  // Query head h reads K/V head floor(h / group), as llama.cpp's broadcast mul_mat does. ggml's
  // backward of a broadcast mul_mat needs a batch of one, so the heads are repeated explicitly.
  const group = H / Hkv;
  const perQueryHead = (t: Ptr, ne0: number, ne1: number): Ptr =>
    group === 1
      ? t
      : fn.reshape_4d(
          ctx,
          fn.repeat_4d(ctx, fn.reshape_4d(ctx, t, ne0 * ne1, 1, Hkv, B), ne0 * ne1, group, Hkv, B),
          ne0,
          ne1,
          H,
          B,
        );

  let x = fn.get_rows(ctx, required(weights, 'token_embd.weight'), fn.reshape_1d(ctx, inputs.tokens, N));
  for (let i = 0; i < shape.blockCount; i++) {
    const blk = `blk.${i}`;
    let cur = fn.mul(ctx, fn.rms_norm(ctx, x, eps), required(weights, `${blk}.attn_norm.weight`));
    let q = fn.reshape_4d(ctx, projectNamed(`${blk}.attn_q.weight`, cur), D, H, T, B);
    let k = fn.reshape_4d(ctx, projectNamed(`${blk}.attn_k.weight`, cur), D, Hkv, T, B);
    const v = fn.reshape_4d(ctx, projectNamed(`${blk}.attn_v.weight`, cur), D, Hkv, T, B);
    q = fn.cont(ctx, fn.permute(ctx, rope(q), 0, 2, 1, 3)); // [D, T, H, B]
    k = perQueryHead(fn.cont(ctx, fn.permute(ctx, rope(k), 0, 2, 1, 3)), D, T); // [D, T, H, B]
    const vT = perQueryHead(fn.cont(ctx, fn.permute(ctx, v, 1, 2, 0, 3)), T, D); // [T, D, H, B]
    const kq = fn.soft_max_ext(ctx, fn.mul_mat(ctx, k, q), inputs.mask, 1 / Math.sqrt(D), 0); // [Tk, Tq, H, B]
    const kqv = fn.cont(ctx, fn.permute(ctx, fn.mul_mat(ctx, vT, kq), 0, 2, 1, 3)); // [D, H, T, B]
    x = fn.add(ctx, x, projectNamed(`${blk}.attn_output.weight`, fn.reshape_2d(ctx, kqv, D * H, N)));

    cur = fn.mul(ctx, fn.rms_norm(ctx, x, eps), required(weights, `${blk}.ffn_norm.weight`));
    const gated = fn.swiglu_split(
      ctx,
      projectNamed(`${blk}.ffn_gate.weight`, cur),
      projectNamed(`${blk}.ffn_up.weight`, cur),
    );
    x = fn.add(ctx, x, projectNamed(`${blk}.ffn_down.weight`, gated));
  }
  x = fn.mul(ctx, fn.rms_norm(ctx, x, eps), required(weights, 'output_norm.weight'));
  const head = weights.get('output.weight') ?? required(weights, 'token_embd.weight');
  const logits = project('output.weight', head, x);
  fn.set_name(logits, 'logits');
  return logits;
}

export function causalMask(T: number): Float32Array {
  const mask = new Float32Array(T * T);
  for (let q = 0; q < T; q++) for (let k = q + 1; k < T; k++) mask[q * T + k] = Number.NEGATIVE_INFINITY;
  return mask;
}
