import type { Ggml, Ptr } from './ggml.ts';

export {
  type Ggml,
  GgmlLibraryError,
  GgmlType,
  ggmlBinDir,
  loadGgml,
  type OptimizerParams,
  OptLoss,
  OptOptimizer,
  PINNED_GGML_COMMIT,
  PINNED_GGML_VERSION,
  type Ptr,
  ROPE_TYPE_NORMAL,
} from './ggml.ts';

/** Element count of a tensor (ggml returns int64, which koffi hands back as a number or a BigInt). */
export function elementCount(ggml: Ggml, tensor: Ptr): number {
  return Number(ggml.fn.nelements(tensor));
}

export function writeTensor(ggml: Ggml, tensor: Ptr, values: Float32Array | Int32Array): void {
  const expected = ggml.fn.nbytes(tensor);
  if (values.byteLength !== Number(expected)) {
    throw new RangeError(`tensor holds ${expected} bytes, got ${values.byteLength}`);
  }
  ggml.fn.backend_tensor_set(tensor, values, 0, values.byteLength);
}

export function readF32(ggml: Ggml, tensor: Ptr): Float32Array {
  const out = new Float32Array(elementCount(ggml, tensor));
  ggml.fn.backend_tensor_get(tensor, out, 0, out.byteLength);
  return out;
}

/** A context that only holds tensor and graph metadata (`no_alloc`); a backend buffer holds the data. */
export function metadataContext(ggml: Ggml, tensors: number, graphNodes = 0): Ptr {
  const size =
    tensors * ggml.fn.tensor_overhead() + (graphNodes > 0 ? 2 * ggml.fn.graph_overhead_custom(graphNodes, true) : 0);
  const ctx = ggml.fn.init({ mem_size: size, mem_buffer: null, no_alloc: true });
  if (!ctx) throw new RangeError(`ggml_init could not reserve ${size} bytes`);
  return ctx;
}
