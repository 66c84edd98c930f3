import koffi from 'koffi';
import { describe, expect, it } from 'vitest';
import { initParamsType, optimizerParamsType, optParamsType } from '../../src/train/ffi/ggml.ts';
import {
  GgmlType,
  loadGgml,
  metadataContext,
  PINNED_GGML_COMMIT,
  PINNED_GGML_VERSION,
  readF32,
  writeTensor,
} from '../../src/train/ffi/index.ts';

describe('ggml FFI', () => {
  it('loads the pinned ggml build with every bound symbol', () => {
    const ggml = loadGgml();
    expect(ggml.fn.version()).toBe(PINNED_GGML_VERSION);
    expect(ggml.fn.commit()).toBe(PINNED_GGML_COMMIT);
    expect(ggml.constantOptimizerParams).toBeGreaterThan(0n);
  });

  it('lays out the structs it passes by value as the x86-64/arm64 C ABI does', () => {
    // sizeof on a 64-bit ABI: ggml_init_params {size_t, void*, bool}; ggml_opt_params
    // {4 pointers, 3 x int32, (pad), 2 pointers, int32, (pad)}; 7 floats.
    expect(koffi.sizeof(initParamsType)).toBe(24);
    expect(koffi.sizeof(optParamsType)).toBe(72);
    expect(koffi.offsetof(optParamsType, 'get_opt_pars')).toBe(48);
    expect(koffi.sizeof(optimizerParamsType)).toBe(28);
  });

  it('computes mul_mat, rms_norm and the constant-mask softmax exactly as ggml defines them', async () => {
    const ggml = loadGgml();
    const { fn } = ggml;
    const backend = ggml.cpuBackend(1);
    expect(fn.backend_name(backend)).toBe('CPU');
    const ctx = metadataContext(ggml, 16, 64);
    try {
      // ggml_mul_mat(a[K,M], b[K,N]) -> [M,N] with out[m,n] = sum_k a[k,m] * b[k,n]
      const a = fn.new_tensor_2d(ctx, GgmlType.F32, 3, 2) as bigint;
      const b = fn.new_tensor_2d(ctx, GgmlType.F32, 3, 2) as bigint;
      const product = fn.mul_mat(ctx, a, b);
      const norm = fn.rms_norm(ctx, a, 0);
      const mask = fn.new_tensor_2d(ctx, GgmlType.F32, 3, 2) as bigint;
      const soft = fn.soft_max_ext(ctx, a, mask, 1, 0);
      const graph = fn.new_graph_custom(ctx, 64, false) as bigint;
      for (const t of [product, norm, soft]) fn.build_forward_expand(graph, t);
      const buffer = fn.backend_alloc_ctx_tensors(ctx, backend) as bigint;
      writeTensor(ggml, a, Float32Array.of(1, 2, 3, 4, 5, 6));
      writeTensor(ggml, b, Float32Array.of(1, 0, -1, 2, 1, 0));
      writeTensor(ggml, mask, Float32Array.of(0, -Infinity, -Infinity, 0, 0, -Infinity));
      expect(fn.backend_graph_compute(backend, graph)).toBe(0);
      expect(Array.from(readF32(ggml, product))).toEqual([-2, -2, 4, 13]);
      const rms = Math.sqrt((1 + 4 + 9) / 3);
      const normed = readF32(ggml, norm);
      for (const [i, v] of [1 / rms, 2 / rms, 3 / rms].entries()) expect(normed[i]).toBeCloseTo(v, 5);
      const probabilities = readF32(ggml, soft);
      expect(probabilities[0]).toBeCloseTo(1, 6);
      expect(probabilities[1]).toBe(0);
      expect(probabilities[3]).toBeCloseTo(Math.exp(4) / (Math.exp(4) + Math.exp(5)), 6);
      expect(probabilities[5]).toBe(0);
      fn.backend_buffer_free(buffer);
    } finally {
      fn.free(ctx);
      fn.backend_free(backend);
    }
  });
});
