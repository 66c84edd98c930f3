import type { GgmlBindings, Ptr } from './ffi/ggml.ts';
import { ROPE_TYPE_NORMAL } from './ffi/index.ts';
import { headDim, type LlamaConfig, type LoraConfig } from './model.ts';

export interface LlamaGraphInputs {
  config: LlamaConfig;
  /** Base weights by GGUF name. */
  weights: ReadonlyMap<string, Ptr>;
  /** LoRA A/B tensors by GGUF name (`blk.0.attn_q.weight.lora_a`), when an adapter is applied. */
  lora?: { config: LoraConfig; tensors: ReadonlyMap<string, Ptr> };
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
 * The forward graph of llama.cpp's LLM_ARCH_LLAMA (src/models/llama.cpp) without a KV cache:
 * every op here has a backward pass in ggml 0.23.0 (the fused `ggml_swiglu` has none, hence
 * the split form). Returns logits F32 [vocab, T*B].
 */
export function buildLlamaGraph(fn: GgmlBindings, ctx: Ptr, inputs: LlamaGraphInputs): Ptr {
  const { config, weights, lora, sequenceLength: T, batchSize: B } = inputs;
  const E = config.embeddingLength;
  const H = config.headCount;
  const D = headDim(config);
  const N = T * B;
  const eps = config.rmsEps;
  const loraScale = lora ? lora.config.alpha / lora.config.rank : 0;

  // llama.cpp's build_lora_mm: W x, plus (alpha / r) * B (A x) for each adapter on W.
  const project = (name: string, x: Ptr): Ptr => {
    const out = fn.mul_mat(ctx, required(weights, name), x);
    const a = lora?.tensors.get(`${name}.lora_a`);
    const b = lora?.tensors.get(`${name}.lora_b`);
    if (a === undefined || b === undefined) return out;
    return fn.add(ctx, out, fn.scale(ctx, fn.mul_mat(ctx, b, fn.mul_mat(ctx, a, x)), loraScale));
  };
  const rope = (t: Ptr) =>
    fn.rope_ext(ctx, t, inputs.positions, null, D, ROPE_TYPE_NORMAL, 0, config.ropeFreqBase, 1, 0, 1, 32, 1);

  let x = fn.get_rows(ctx, required(weights, 'token_embd.weight'), fn.reshape_1d(ctx, inputs.tokens, N));
  for (let i = 0; i < config.blockCount; i++) {
    const blk = `blk.${i}`;
    let cur = fn.mul(ctx, fn.rms_norm(ctx, x, eps), required(weights, `${blk}.attn_norm.weight`));
    let q = fn.reshape_4d(ctx, project(`${blk}.attn_q.weight`, cur), D, H, T, B);
    let k = fn.reshape_4d(ctx, project(`${blk}.attn_k.weight`, cur), D, H, T, B);
    const v = fn.reshape_4d(ctx, project(`${blk}.attn_v.weight`, cur), D, H, T, B);
    q = fn.cont(ctx, fn.permute(ctx, rope(q), 0, 2, 1, 3)); // [D, T, H, B]
    k = fn.cont(ctx, fn.permute(ctx, rope(k), 0, 2, 1, 3)); // [D, T, H, B]
    const vT = fn.cont(ctx, fn.permute(ctx, v, 1, 2, 0, 3)); // [T, D, H, B]
    const kq = fn.soft_max_ext(ctx, fn.mul_mat(ctx, k, q), inputs.mask, 1 / Math.sqrt(D), 0); // [Tk, Tq, H, B]
    const kqv = fn.cont(ctx, fn.permute(ctx, fn.mul_mat(ctx, vT, kq), 0, 2, 1, 3)); // [D, H, T, B]
    x = fn.add(ctx, x, project(`${blk}.attn_output.weight`, fn.reshape_2d(ctx, kqv, E, N)));

    cur = fn.mul(ctx, fn.rms_norm(ctx, x, eps), required(weights, `${blk}.ffn_norm.weight`));
    const gated = fn.swiglu_split(ctx, project(`${blk}.ffn_gate.weight`, cur), project(`${blk}.ffn_up.weight`, cur));
    x = fn.add(ctx, x, project(`${blk}.ffn_down.weight`, gated));
  }
  x = fn.mul(ctx, fn.rms_norm(ctx, x, eps), required(weights, 'output_norm.weight'));
  const logits = project('output.weight', x);
  fn.set_name(logits, 'logits');
  return logits;
}

export function causalMask(T: number): Float32Array {
  const mask = new Float32Array(T * T);
  for (let q = 0; q < T; q++) for (let k = q + 1; k < T; k++) mask[q * T + k] = Number.NEGATIVE_INFINITY;
  return mask;
}
