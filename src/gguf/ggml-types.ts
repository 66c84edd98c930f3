/**
 * ggml tensor types as a GGUF file stores them: the `ggml_type` code (ggml/include/ggml.h), the number of
 * values per block and the bytes per block (the `block_*` structs of ggml/src/ggml-common.h, ggml 0.23.0 as
 * shipped in llama.cpp 80fb11ac). A row of `ne0` values takes `ne0 / blockSize * typeSize` bytes, and `ne0`
 * must be a multiple of the block size. Codes 4, 5, 31-33 and 36-38 were removed from ggml and are absent here.
 */
export const GGML_TYPES = {
  F32: { code: 0, blockSize: 1, typeSize: 4 },
  F16: { code: 1, blockSize: 1, typeSize: 2 },
  Q4_0: { code: 2, blockSize: 32, typeSize: 18 },
  Q4_1: { code: 3, blockSize: 32, typeSize: 20 },
  Q5_0: { code: 6, blockSize: 32, typeSize: 22 },
  Q5_1: { code: 7, blockSize: 32, typeSize: 24 },
  Q8_0: { code: 8, blockSize: 32, typeSize: 34 },
  Q8_1: { code: 9, blockSize: 32, typeSize: 36 },
  Q2_K: { code: 10, blockSize: 256, typeSize: 84 },
  Q3_K: { code: 11, blockSize: 256, typeSize: 110 },
  Q4_K: { code: 12, blockSize: 256, typeSize: 144 },
  Q5_K: { code: 13, blockSize: 256, typeSize: 176 },
  Q6_K: { code: 14, blockSize: 256, typeSize: 210 },
  Q8_K: { code: 15, blockSize: 256, typeSize: 292 },
  IQ2_XXS: { code: 16, blockSize: 256, typeSize: 66 },
  IQ2_XS: { code: 17, blockSize: 256, typeSize: 74 },
  IQ3_XXS: { code: 18, blockSize: 256, typeSize: 98 },
  IQ1_S: { code: 19, blockSize: 256, typeSize: 50 },
  IQ4_NL: { code: 20, blockSize: 32, typeSize: 18 },
  IQ3_S: { code: 21, blockSize: 256, typeSize: 110 },
  IQ2_S: { code: 22, blockSize: 256, typeSize: 82 },
  IQ4_XS: { code: 23, blockSize: 256, typeSize: 136 },
  I8: { code: 24, blockSize: 1, typeSize: 1 },
  I16: { code: 25, blockSize: 1, typeSize: 2 },
  I32: { code: 26, blockSize: 1, typeSize: 4 },
  I64: { code: 27, blockSize: 1, typeSize: 8 },
  F64: { code: 28, blockSize: 1, typeSize: 8 },
  IQ1_M: { code: 29, blockSize: 256, typeSize: 56 },
  BF16: { code: 30, blockSize: 1, typeSize: 2 },
  TQ1_0: { code: 34, blockSize: 256, typeSize: 54 },
  TQ2_0: { code: 35, blockSize: 256, typeSize: 66 },
  MXFP4: { code: 39, blockSize: 32, typeSize: 17 },
  NVFP4: { code: 40, blockSize: 64, typeSize: 36 },
  Q1_0: { code: 41, blockSize: 128, typeSize: 18 },
  Q2_0: { code: 42, blockSize: 64, typeSize: 18 },
} as const satisfies Record<string, { code: number; blockSize: number; typeSize: number }>;

export type GgmlTypeName = keyof typeof GGML_TYPES;

const NAME_BY_CODE = new Map<number, GgmlTypeName>(
  Object.entries(GGML_TYPES).map(([name, { code }]) => [code, name as GgmlTypeName]),
);

export function ggmlTypeByCode(code: number): GgmlTypeName | undefined {
  return NAME_BY_CODE.get(code);
}

/** Bytes of one row of `rowLength` values, or undefined when the row is not a whole number of blocks. */
export function ggmlRowBytes(type: GgmlTypeName, rowLength: number): number | undefined {
  const { blockSize, typeSize } = GGML_TYPES[type];
  if (rowLength % blockSize !== 0) return undefined;
  return (rowLength / blockSize) * typeSize;
}
