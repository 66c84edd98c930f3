/**
 * ggml's own type table, quantizers and dequantizers, called through koffi in node-llama-cpp's libggml-base
 * (ggml 0.23.0), as the reference the GGUF writer and reader are checked against.
 */
import { join } from 'node:path';
import koffi from 'koffi';
import { ggmlBinDir } from '../../src/train/ffi/index.ts';

export interface GgmlReference {
  typeSize(code: number): number;
  blockSize(code: number): number;
  typeName(code: number): string;
  /** ggml_quantize_chunk over `rows` rows of `values.length / rows` values, without an importance matrix. */
  quantize(code: number, values: Float32Array, rows: number): Uint8Array;
  /** The type's `to_float` from ggml_get_type_traits. */
  dequantize(code: number, bytes: Uint8Array, count: number): Float32Array;
}

let loaded: GgmlReference | undefined;

export function loadGgmlReference(): GgmlReference {
  if (loaded) return loaded;
  const lib = koffi.load(join(ggmlBinDir(), process.platform === 'darwin' ? 'libggml-base.dylib' : 'libggml-base.so'));
  const typeSize = lib.func('size_t ggml_type_size(int type)');
  const blockSize = lib.func('int64_t ggml_blck_size(int type)');
  const typeName = lib.func('const char *ggml_type_name(int type)');
  const quantizeChunk = lib.func(
    'size_t ggml_quantize_chunk(int type, const float *src, _Out_ uint8_t *dst, int64_t start, int64_t nrows, int64_t n_per_row, const float *imatrix)',
  );
  const traitsType = koffi.struct('bertha_ggml_type_traits', {
    type_name: 'const char *',
    blck_size: 'int64_t',
    blck_size_interleave: 'int64_t',
    type_size: 'size_t',
    is_quantized: 'bool',
    to_float: 'void *',
    from_float_ref: 'void *',
  });
  const getTraits = lib.func('ggml_get_type_traits', koffi.pointer(traitsType), ['int']);
  const toFloat = koffi.proto('void bertha_ggml_to_float_t(const uint8_t *x, _Out_ float *y, int64_t k)');
  loaded = {
    typeSize: (code) => Number(typeSize(code)),
    blockSize: (code) => Number(blockSize(code)),
    typeName: (code) => typeName(code) as string,
    quantize(code, values, rows) {
      const perRow = values.length / rows;
      const out = new Uint8Array((values.length / Number(blockSize(code))) * Number(typeSize(code)));
      quantizeChunk(code, values, out, 0, rows, perRow, null);
      return out;
    },
    dequantize(code, bytes, count) {
      const traits = koffi.decode(getTraits(code), traitsType) as { to_float: unknown };
      const out = new Float32Array(count);
      koffi.call(traits.to_float, toFloat, bytes, out, count);
      return out;
    },
  };
  return loaded;
}
