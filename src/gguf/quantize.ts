/**
 * Block quantization in the layouts of ggml/src/ggml-common.h (ggml 0.23.0), for writing fixture and test
 * GGUFs and for reading quantized weights back as F32 (reference computations, tests). Training reads
 * quantized bases through ggml itself; nothing here is on a hot path.
 *
 * - Q8_0 (34 bytes / 32 values): f16 d, then 32 int8 q; x = d * q. Same bytes as ggml's quantize_row_q8_0_ref.
 * - Q4_0 (18 bytes / 32 values): f16 d, then 16 bytes; value j in the low nibble of byte j, value j + 16 in
 *   the high nibble; x = d * (q - 8). Same bytes as ggml's quantize_row_q4_0_ref.
 * - Q4_K (144 bytes / 256 values): f16 d, f16 dmin, 12 bytes of 6-bit scales and mins for 8 sub-blocks of 32,
 *   128 bytes of nibbles; x = d * sc * q - dmin * m.
 * - Q6_K (210 bytes / 256 values): 128 bytes low nibbles, 64 bytes high 2-bit pairs, 16 int8 scales for
 *   sub-blocks of 16, f16 d; x = d * sc * (q - 32).
 *
 * The K-quant encoders here pick scales with a plain min/max rule, not ggml's iterative search, so their bytes
 * differ from llama-quantize's; any bytes in the layout are a valid tensor, and the decoders read both.
 */

import { GgufError } from './errors.ts';
import type { GgmlTypeName } from './ggml-types.ts';
import { GGML_TYPES } from './ggml-types.ts';
import { float16BitsToFloat32, float32ToFloat16Bits } from './half.ts';

export type QuantizedTypeName = 'Q8_0' | 'Q4_0' | 'Q4_K' | 'Q6_K';
/** Types this module encodes from F32 (and decodes back). */
export const QUANTIZED_TYPES: readonly QuantizedTypeName[] = ['Q8_0', 'Q4_0', 'Q4_K', 'Q6_K'];
/** Types `dequantize` reads. */
export const DEQUANTIZABLE_TYPES: readonly GgmlTypeName[] = ['F32', 'F16', 'BF16', ...QUANTIZED_TYPES];

const f = Math.fround;
const QK_K = 256;

/** Rounds to the nearest binary16 value, as storing a scale in a ggml_half does. */
function toHalf(value: number): number {
  return float16BitsToFloat32(float32ToFloat16Bits(value));
}

// C's roundf: halves away from zero.
function roundAway(value: number): number {
  return value < 0 ? -Math.round(-value) : Math.round(value);
}

function checkLength(type: GgmlTypeName, length: number): number {
  const { blockSize } = GGML_TYPES[type];
  if (length % blockSize !== 0) {
    throw new GgufError(`${type} needs a multiple of ${blockSize} values, got ${length}`, { type, length });
  }
  return length / blockSize;
}

/** Quantizes `values` (rows laid end to end; each row a multiple of the block size) into `type` blocks. */
export function quantize(type: QuantizedTypeName, values: Float32Array): Uint8Array {
  const blocks = checkLength(type, values.length);
  const out = new Uint8Array(blocks * GGML_TYPES[type].typeSize);
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    const x = values.subarray(b * GGML_TYPES[type].blockSize, (b + 1) * GGML_TYPES[type].blockSize);
    const at = b * GGML_TYPES[type].typeSize;
    if (type === 'Q8_0') quantizeQ8_0Block(x, view, at);
    else if (type === 'Q4_0') quantizeQ4_0Block(x, view, at);
    else if (type === 'Q4_K') quantizeQ4_KBlock(x, view, at);
    else quantizeQ6_KBlock(x, view, at);
  }
  return out;
}

function quantizeQ8_0Block(x: Float32Array, view: DataView, at: number): void {
  let amax = 0;
  for (const v of x) amax = Math.max(amax, Math.abs(v));
  const d = f(amax / 127);
  const id = d ? f(1 / d) : 0;
  view.setUint16(at, float32ToFloat16Bits(d), true);
  for (let j = 0; j < 32; j++) view.setInt8(at + 2 + j, roundAway(f((x[j] ?? 0) * id)));
}

function quantizeQ4_0Block(x: Float32Array, view: DataView, at: number): void {
  let amax = 0;
  let max = 0;
  for (const v of x) {
    if (amax < Math.abs(v)) {
      amax = Math.abs(v);
      max = v;
    }
  }
  const d = f(max / -8);
  const id = d ? f(1 / d) : 0;
  view.setUint16(at, float32ToFloat16Bits(d), true);
  const nibble = (v: number): number => Math.min(15, Math.trunc(f(f(v * id) + 8.5)));
  for (let j = 0; j < 16; j++) view.setUint8(at + 2 + j, nibble(x[j] ?? 0) | (nibble(x[j + 16] ?? 0) << 4));
}

function quantizeQ4_KBlock(x: Float32Array, view: DataView, at: number): void {
  // Per sub-block of 32: x ≈ scale * q - offset with q in 0..15 and offset >= 0 (ggml clamps the minimum to <= 0).
  const scales = new Float64Array(8);
  const offsets = new Float64Array(8);
  for (let s = 0; s < 8; s++) {
    let lo = 0;
    let hi = Number.NEGATIVE_INFINITY;
    for (let l = 0; l < 32; l++) {
      const v = x[s * 32 + l] ?? 0;
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    scales[s] = (hi - lo) / 15;
    offsets[s] = -lo;
  }
  const maxScale = Math.max(...scales);
  const maxOffset = Math.max(...offsets);
  const d = toHalf(maxScale / 63);
  const dmin = toHalf(maxOffset / 63);
  const sc = Array.from(scales, (v) => (d > 0 ? Math.min(63, Math.round(v / d)) : 0));
  const mn = Array.from(offsets, (v) => (dmin > 0 ? Math.min(63, Math.round(v / dmin)) : 0));
  view.setUint16(at, float32ToFloat16Bits(d), true);
  view.setUint16(at + 2, float32ToFloat16Bits(dmin), true);
  // 12 scale bytes: see get_scale_min_k4 in ggml-quants.c for the unpacking this mirrors.
  const packed = new Uint8Array(12);
  for (let j = 0; j < 4; j++) {
    packed[j] = ((sc[j] ?? 0) & 63) | (((sc[j + 4] ?? 0) >> 4) << 6);
    packed[j + 4] = ((mn[j] ?? 0) & 63) | (((mn[j + 4] ?? 0) >> 4) << 6);
    packed[j + 8] = ((sc[j + 4] ?? 0) & 0xf) | (((mn[j + 4] ?? 0) & 0xf) << 4);
  }
  packed.forEach((byte, i) => {
    view.setUint8(at + 4 + i, byte);
  });
  const quant = (s: number, l: number): number => {
    const step = f(d * (sc[s] ?? 0));
    if (step === 0) return 0;
    const q = Math.round(((x[s * 32 + l] ?? 0) + f(dmin * (mn[s] ?? 0))) / step);
    return Math.max(0, Math.min(15, q));
  };
  for (let chunk = 0; chunk < 4; chunk++) {
    for (let l = 0; l < 32; l++) {
      view.setUint8(at + 16 + chunk * 32 + l, quant(2 * chunk, l) | (quant(2 * chunk + 1, l) << 4));
    }
  }
}

function quantizeQ6_KBlock(x: Float32Array, view: DataView, at: number): void {
  const scales = new Float64Array(16);
  for (let s = 0; s < 16; s++) {
    let amax = 0;
    for (let l = 0; l < 16; l++) amax = Math.max(amax, Math.abs(x[s * 16 + l] ?? 0));
    scales[s] = amax / 31;
  }
  const d = toHalf(Math.max(...scales) / 127);
  const sc = Array.from(scales, (v) => (d > 0 ? Math.min(127, Math.round(v / d)) : 0));
  const q = new Uint8Array(QK_K);
  for (let i = 0; i < QK_K; i++) {
    const step = f(d * (sc[i >> 4] ?? 0));
    const value = step === 0 ? 0 : Math.max(-32, Math.min(31, Math.round((x[i] ?? 0) / step)));
    q[i] = value + 32;
  }
  const ql = at;
  const qh = at + 128;
  for (let chunk = 0; chunk < 2; chunk++) {
    const base = chunk * 128;
    for (let l = 0; l < 32; l++) {
      const q1 = q[base + l] ?? 0;
      const q2 = q[base + l + 32] ?? 0;
      const q3 = q[base + l + 64] ?? 0;
      const q4 = q[base + l + 96] ?? 0;
      view.setUint8(ql + chunk * 64 + l, (q1 & 0xf) | ((q3 & 0xf) << 4));
      view.setUint8(ql + chunk * 64 + l + 32, (q2 & 0xf) | ((q4 & 0xf) << 4));
      view.setUint8(qh + chunk * 32 + l, (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
    }
  }
  sc.forEach((value, s) => {
    view.setInt8(at + 192 + s, value);
  });
  view.setUint16(at + 208, float32ToFloat16Bits(d), true);
}

/**
 * Decodes `count` values of `type` from `bytes` to F32, with ggml's own float32 arithmetic
 * (dequantize_row_* in ggml-quants.c), so results equal ggml's `to_float` bit for bit.
 */
export function dequantize(type: GgmlTypeName, bytes: Uint8Array, count: number): Float32Array {
  const blocks = checkLength(type, count);
  const { typeSize, blockSize } = GGML_TYPES[type];
  if (bytes.length < blocks * typeSize) {
    throw new GgufError(`${count} ${type} values need ${blocks * typeSize} bytes, got ${bytes.length}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  const half = (offset: number): number => float16BitsToFloat32(view.getUint16(offset, true));
  switch (type) {
    case 'F32':
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
      return out;
    case 'F16':
      for (let i = 0; i < count; i++) out[i] = half(i * 2);
      return out;
    case 'BF16': {
      // bfloat16 is the top half of a binary32.
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) bits[i] = view.getUint16(i * 2, true) << 16;
      return out;
    }
    case 'Q8_0':
      for (let b = 0; b < blocks; b++) {
        const at = b * typeSize;
        const d = half(at);
        for (let j = 0; j < 32; j++) out[b * blockSize + j] = f(view.getInt8(at + 2 + j) * d);
      }
      return out;
    case 'Q4_0':
      for (let b = 0; b < blocks; b++) {
        const at = b * typeSize;
        const d = half(at);
        for (let j = 0; j < 16; j++) {
          const byte = view.getUint8(at + 2 + j);
          out[b * blockSize + j] = f(((byte & 0xf) - 8) * d);
          out[b * blockSize + j + 16] = f(((byte >> 4) - 8) * d);
        }
      }
      return out;
    case 'Q4_K':
      for (let b = 0; b < blocks; b++) decodeQ4_KBlock(view, b * typeSize, out, b * blockSize);
      return out;
    case 'Q6_K':
      for (let b = 0; b < blocks; b++) decodeQ6_KBlock(view, b * typeSize, out, b * blockSize);
      return out;
    default:
      throw new GgufError(
        `dequantizing ${type} is not implemented; readable types: ${DEQUANTIZABLE_TYPES.join(', ')}`,
        {
          type,
        },
      );
  }
}

function decodeQ4_KBlock(view: DataView, at: number, out: Float32Array, to: number): void {
  const d = float16BitsToFloat32(view.getUint16(at, true));
  const dmin = float16BitsToFloat32(view.getUint16(at + 2, true));
  const scale = (j: number): [number, number] => {
    const q = (i: number): number => view.getUint8(at + 4 + i);
    if (j < 4) return [q(j) & 63, q(j + 4) & 63];
    return [(q(j + 4) & 0xf) | ((q(j - 4) >> 6) << 4), (q(j + 4) >> 4) | ((q(j) >> 6) << 4)];
  };
  for (let chunk = 0; chunk < 4; chunk++) {
    const [sc1, m1] = scale(2 * chunk);
    const [sc2, m2] = scale(2 * chunk + 1);
    const d1 = f(d * sc1);
    const min1 = f(dmin * m1);
    const d2 = f(d * sc2);
    const min2 = f(dmin * m2);
    for (let l = 0; l < 32; l++) {
      const byte = view.getUint8(at + 16 + chunk * 32 + l);
      out[to + chunk * 64 + l] = f(f(d1 * (byte & 0xf)) - min1);
      out[to + chunk * 64 + 32 + l] = f(f(d2 * (byte >> 4)) - min2);
    }
  }
}

function decodeQ6_KBlock(view: DataView, at: number, out: Float32Array, to: number): void {
  const d = float16BitsToFloat32(view.getUint16(at + 208, true));
  for (let chunk = 0; chunk < 2; chunk++) {
    const ql = at + chunk * 64;
    const qh = at + 128 + chunk * 32;
    const sc = at + 192 + chunk * 8;
    for (let l = 0; l < 32; l++) {
      const is = l >> 4;
      const low1 = view.getUint8(ql + l);
      const low2 = view.getUint8(ql + l + 32);
      const high = view.getUint8(qh + l);
      const q1 = ((low1 & 0xf) | ((high & 3) << 4)) - 32;
      const q2 = ((low2 & 0xf) | (((high >> 2) & 3) << 4)) - 32;
      const q3 = ((low1 >> 4) | (((high >> 4) & 3) << 4)) - 32;
      const q4 = ((low2 >> 4) | (((high >> 6) & 3) << 4)) - 32;
      const base = to + chunk * 128;
      out[base + l] = f(f(d * view.getInt8(sc + is)) * q1);
      out[base + l + 32] = f(f(d * view.getInt8(sc + is + 2)) * q2);
      out[base + l + 64] = f(f(d * view.getInt8(sc + is + 4)) * q3);
      out[base + l + 96] = f(f(d * view.getInt8(sc + is + 6)) * q4);
    }
  }
}
