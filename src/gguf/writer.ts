/**
 * GGUF v3 writer. Layout per ggml's docs/gguf.md (and gguf-py's GGUFWriter):
 *
 *   header   magic "GGUF" (u32 LE 0x46554747), version u32 = 3, tensor_count u64, metadata_kv_count u64
 *   metadata kv*: key (gguf string), value type u32, value
 *   tensors  info*: name (gguf string), n_dims u32, ne[n_dims] u64 (ggml order: fastest-moving first),
 *            ggml type u32, offset u64 (relative to the data section, a multiple of the alignment)
 *   padding  zeros up to `general.alignment`
 *   data     each tensor's bytes, each padded to the alignment
 *
 * A gguf string is a u64 byte length followed by UTF-8 bytes (no terminator). Everything is little-endian.
 */
import { open, rename, rm } from 'node:fs/promises';
import { GgufError } from './errors.ts';
import { GGML_TYPES } from './ggml-types.ts';
import { float32ToFloat16Bits } from './half.ts';
import type { QuantizedTypeName } from './quantize.ts';
import { quantize } from './quantize.ts';

export { GgufError } from './errors.ts';
export { float32ToFloat16Bits } from './half.ts';

const GGUF_MAGIC = 0x46554747;
const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;
// ggml.h: GGML_MAX_DIMS = 4, GGML_MAX_NAME = 64 (including the terminating NUL).
const MAX_DIMS = 4;
const MAX_TENSOR_NAME_BYTES = 63;

/** gguf_type codes (ggml/include/gguf.h). */
const VALUE_TYPE_CODE = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
} as const;

/** The ggml types written here: the float types and the block types `quantize` encodes. */
const WRITABLE_TYPES = new Set<string>(['F32', 'F16', 'Q8_0', 'Q4_0', 'Q4_K', 'Q6_K']);

export type GgufNumberType = 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32' | 'float32' | 'float64';
export type GgufBigIntType = 'uint64' | 'int64';

export type GgufScalarValue =
  | { readonly type: GgufNumberType; readonly value: number }
  | { readonly type: GgufBigIntType; readonly value: bigint }
  | { readonly type: 'bool'; readonly value: boolean }
  | { readonly type: 'string'; readonly value: string };

export type GgufArrayValue =
  | { readonly type: 'array'; readonly itemType: GgufNumberType; readonly value: readonly number[] }
  | { readonly type: 'array'; readonly itemType: GgufBigIntType; readonly value: readonly bigint[] }
  | { readonly type: 'array'; readonly itemType: 'bool'; readonly value: readonly boolean[] }
  | { readonly type: 'array'; readonly itemType: 'string'; readonly value: readonly string[] };

export type GgufValue = GgufScalarValue | GgufArrayValue;

function arrayValue(itemType: GgufNumberType, value: readonly number[]): GgufValue;
function arrayValue(itemType: GgufBigIntType, value: readonly bigint[]): GgufValue;
function arrayValue(itemType: 'bool', value: readonly boolean[]): GgufValue;
function arrayValue(itemType: 'string', value: readonly string[]): GgufValue;
function arrayValue(itemType: GgufArrayValue['itemType'], value: readonly unknown[]): GgufValue {
  return { type: 'array', itemType, value } as GgufArrayValue;
}

/** Constructors that keep metadata literals short: `gguf.uint32(4)`, `gguf.array('string', tokens)`. */
export const gguf = {
  uint8: (value: number): GgufValue => ({ type: 'uint8', value }),
  int8: (value: number): GgufValue => ({ type: 'int8', value }),
  uint16: (value: number): GgufValue => ({ type: 'uint16', value }),
  int16: (value: number): GgufValue => ({ type: 'int16', value }),
  uint32: (value: number): GgufValue => ({ type: 'uint32', value }),
  int32: (value: number): GgufValue => ({ type: 'int32', value }),
  float32: (value: number): GgufValue => ({ type: 'float32', value }),
  float64: (value: number): GgufValue => ({ type: 'float64', value }),
  uint64: (value: bigint): GgufValue => ({ type: 'uint64', value }),
  int64: (value: bigint): GgufValue => ({ type: 'int64', value }),
  bool: (value: boolean): GgufValue => ({ type: 'bool', value }),
  string: (value: string): GgufValue => ({ type: 'string', value }),
  array: arrayValue,
};

export type GgufTensorType = 'F32' | 'F16' | QuantizedTypeName;

export interface GgufTensor {
  readonly name: string;
  /**
   * Row-major shape, outermost dimension first (as numpy/PyTorch write it); GGUF stores it reversed.
   * For block types the last (innermost) dimension must be a multiple of the block size (32 or 256).
   */
  readonly shape: readonly number[];
  readonly type: GgufTensorType;
  /**
   * F32: Float32Array. F16: Float32Array (rounded to half here) or Uint16Array of raw half bits.
   * Q8_0, Q4_0, Q4_K, Q6_K: Float32Array (quantized here, see quantize.ts) or Uint8Array of encoded blocks.
   */
  readonly data: Float32Array | Uint16Array | Uint8Array;
}

export interface GgufFile {
  /** Keys in insertion order; `general.alignment` is added by the writer. */
  readonly metadata: Readonly<Record<string, GgufValue>>;
  readonly tensors: readonly GgufTensor[];
  /** Data alignment in bytes, a power of two; default 32. */
  readonly alignment?: number;
}

interface TensorLayout {
  readonly tensor: GgufTensor;
  readonly bytes: number;
  readonly offset: number;
}

interface GgufLayout {
  readonly head: Buffer;
  readonly tensors: readonly TensorLayout[];
  readonly alignment: number;
  readonly totalBytes: number;
}

/** Encodes a whole GGUF file in memory. */
export function encodeGguf(file: GgufFile): Buffer {
  const layout = layOut(file);
  const out = Buffer.alloc(layout.totalBytes);
  layout.head.copy(out, 0);
  for (const entry of layout.tensors) tensorBytes(entry.tensor).copy(out, layout.head.length + entry.offset);
  return out;
}

/**
 * Streams a GGUF file to `path` through a temporary sibling that is renamed into place,
 * so a reader never sees a half-written model. Everything is validated before the first write.
 */
export async function writeGguf(path: string, file: GgufFile, signal?: AbortSignal): Promise<{ bytes: number }> {
  const layout = layOut(file);
  const tempPath = `${path}.${process.pid}.${Date.now()}.partial`;
  const handle = await open(tempPath, 'w');
  try {
    let position = 0;
    const write = async (bytes: Buffer): Promise<void> => {
      signal?.throwIfAborted();
      await handle.write(bytes, 0, bytes.length, position);
      position += bytes.length;
    };
    await write(layout.head);
    for (const entry of layout.tensors) {
      await write(tensorBytes(entry.tensor));
      await write(Buffer.alloc(padding(entry.bytes, layout.alignment)));
    }
    await handle.close();
    await rename(tempPath, path);
    return { bytes: layout.totalBytes };
  } catch (error) {
    await handle.close().catch(() => undefined);
    await rm(tempPath, { force: true });
    throw error;
  }
}

function layOut(file: GgufFile): GgufLayout {
  const alignment = file.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  if (!Number.isInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0) {
    throw new GgufError(`alignment must be a positive power of two, got ${alignment}`, { alignment });
  }
  if ('general.alignment' in file.metadata) {
    throw new GgufError("set 'general.alignment' through the alignment option, not metadata");
  }
  const metadata: [string, GgufValue][] = [
    ...Object.entries(file.metadata),
    ['general.alignment', gguf.uint32(alignment)],
  ];

  const bytes = new ByteSink();
  bytes.u32(GGUF_MAGIC);
  bytes.u32(GGUF_VERSION);
  bytes.u64(BigInt(file.tensors.length));
  bytes.u64(BigInt(metadata.length));
  for (const [key, value] of metadata) {
    checkKey(key);
    bytes.string(key);
    writeValue(bytes, key, value);
  }

  const seen = new Set<string>();
  const tensors: TensorLayout[] = [];
  let offset = 0;
  for (const tensor of file.tensors) {
    const size = checkTensor(tensor, seen);
    bytes.string(tensor.name);
    bytes.u32(tensor.shape.length);
    for (const dim of [...tensor.shape].reverse()) bytes.u64(BigInt(dim));
    bytes.u32(GGML_TYPES[tensor.type].code);
    bytes.u64(BigInt(offset));
    tensors.push({ tensor, bytes: size, offset });
    offset += size + padding(size, alignment);
  }
  bytes.zeros(padding(bytes.length, alignment));
  const head = bytes.toBuffer();
  return { head, tensors, alignment, totalBytes: head.length + offset };
}

function padding(length: number, alignment: number): number {
  return (alignment - (length % alignment)) % alignment;
}

// docs/gguf.md: keys are ASCII, lower_snake_case segments joined by '.', at most 65535 bytes.
const KEY_PATTERN = /^[a-z0-9_]+(\.[a-z0-9_]+)*$/;

function checkKey(key: string): void {
  if (!KEY_PATTERN.test(key) || key.length > 0xffff) {
    throw new GgufError(`metadata key '${key}' is not dot-separated lower_snake_case ASCII`, { key });
  }
}

function checkTensor(tensor: GgufTensor, seen: Set<string>): number {
  const { name, shape, type, data } = tensor;
  const nameBytes = Buffer.byteLength(name, 'utf8');
  if (nameBytes === 0 || nameBytes > MAX_TENSOR_NAME_BYTES) {
    throw new GgufError(`tensor name '${name}' must be 1..${MAX_TENSOR_NAME_BYTES} bytes`, { name });
  }
  if (seen.has(name)) throw new GgufError(`duplicate tensor '${name}'`, { name });
  seen.add(name);
  if (shape.length < 1 || shape.length > MAX_DIMS || !shape.every((d) => Number.isSafeInteger(d) && d > 0)) {
    throw new GgufError(`tensor '${name}' has invalid shape [${shape.join(', ')}]: 1..${MAX_DIMS} positive integers`, {
      name,
      shape,
    });
  }
  if (!WRITABLE_TYPES.has(type)) throw new GgufError(`tensor '${name}' has unsupported type '${type}'`, { name, type });
  if (type === 'F32' && !(data instanceof Float32Array)) {
    throw new GgufError(`tensor '${name}' is F32 and needs a Float32Array`, { name });
  }
  const elements = shape.reduce((a, b) => a * b, 1);
  const { blockSize, typeSize } = GGML_TYPES[type];
  const rowLength = shape[shape.length - 1] ?? 0;
  if (rowLength % blockSize !== 0) {
    throw new GgufError(`tensor '${name}' is ${type}: its rows of ${rowLength} must be a multiple of ${blockSize}`, {
      name,
      shape,
    });
  }
  const size = (elements / blockSize) * typeSize;
  if (blockSize > 1 && data instanceof Uint8Array) {
    if (data.length !== size) {
      throw new GgufError(`tensor '${name}' has ${data.length} bytes of ${type} blocks, shape needs ${size}`, {
        name,
        shape,
      });
    }
    return size;
  }
  if (data instanceof Uint8Array || (blockSize > 1 && !(data instanceof Float32Array))) {
    throw new GgufError(
      `tensor '${name}' is ${type}: pass a Float32Array${blockSize > 1 ? ' or encoded blocks' : ''}`,
      {
        name,
      },
    );
  }
  if (data.length !== elements) {
    throw new GgufError(`tensor '${name}' has ${data.length} values, shape [${shape.join(', ')}] needs ${elements}`, {
      name,
      shape,
      values: data.length,
    });
  }
  return size;
}

function tensorBytes(tensor: GgufTensor): Buffer {
  const { data, type } = tensor;
  if (type === 'F16' && data instanceof Float32Array) {
    const half = new Uint16Array(data.length);
    for (let i = 0; i < data.length; i++) half[i] = float32ToFloat16Bits(data[i] ?? 0);
    return littleEndian(half);
  }
  if (type !== 'F32' && type !== 'F16' && data instanceof Float32Array) return littleEndian(quantize(type, data));
  return littleEndian(data);
}

function littleEndian(data: Float32Array | Uint16Array | Uint8Array): Buffer {
  // GGUF is little-endian; Node runs little-endian on every platform Bertha targets (x64, arm64).
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

function writeValue(bytes: ByteSink, key: string, value: GgufValue): void {
  bytes.u32(VALUE_TYPE_CODE[value.type]);
  if (value.type !== 'array') {
    writeScalar(bytes, key, value.type, value.value);
    return;
  }
  bytes.u32(VALUE_TYPE_CODE[value.itemType]);
  bytes.u64(BigInt(value.value.length));
  for (const item of value.value) writeScalar(bytes, key, value.itemType, item);
}

const INTEGER_RANGE: Record<'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32', readonly [number, number]> = {
  uint8: [0, 0xff],
  int8: [-0x80, 0x7f],
  uint16: [0, 0xffff],
  int16: [-0x8000, 0x7fff],
  uint32: [0, 0xffffffff],
  int32: [-0x80000000, 0x7fffffff],
};

const INTEGER_BYTES = { uint8: 1, int8: 1, uint16: 2, int16: 2, uint32: 4, int32: 4 } as const;

const BIGINT_RANGE: Record<GgufBigIntType, readonly [bigint, bigint]> = {
  uint64: [0n, 0xffffffffffffffffn],
  int64: [-0x8000000000000000n, 0x7fffffffffffffffn],
};

function writeScalar(bytes: ByteSink, key: string, type: GgufScalarValue['type'], value: unknown): void {
  const invalid = (): GgufError =>
    new GgufError(`metadata '${key}': ${String(value)} is not a valid ${type}`, { key, type, value: String(value) });
  switch (type) {
    case 'string':
      if (typeof value !== 'string') throw invalid();
      bytes.string(value);
      return;
    case 'bool':
      if (typeof value !== 'boolean') throw invalid();
      bytes.u8(value ? 1 : 0);
      return;
    case 'float32':
    case 'float64':
      if (typeof value !== 'number') throw invalid();
      if (type === 'float32') bytes.f32(value);
      else bytes.f64(value);
      return;
    case 'uint64':
    case 'int64': {
      const [min, max] = BIGINT_RANGE[type];
      if (typeof value !== 'bigint' || value < min || value > max) throw invalid();
      if (type === 'uint64') bytes.u64(value);
      else bytes.i64(value);
      return;
    }
    default: {
      const [min, max] = INTEGER_RANGE[type];
      if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) throw invalid();
      bytes.integer(type, value);
    }
  }
}

/** Growable little-endian byte buffer for the header, metadata and tensor infos. */
class ByteSink {
  private buffer = Buffer.alloc(4096);
  length = 0;

  /** Returns a view of `size` fresh bytes at the end (the buffer may move, so never hold it across calls). */
  private take(size: number): Buffer {
    if (this.length + size > this.buffer.length) {
      const next = Buffer.alloc(Math.max(this.buffer.length * 2, this.length + size));
      this.buffer.copy(next, 0, 0, this.length);
      this.buffer = next;
    }
    const view = this.buffer.subarray(this.length, this.length + size);
    this.length += size;
    return view;
  }

  u8(value: number): void {
    this.take(1).writeUInt8(value);
  }
  u32(value: number): void {
    this.take(4).writeUInt32LE(value);
  }
  u64(value: bigint): void {
    this.take(8).writeBigUInt64LE(value);
  }
  i64(value: bigint): void {
    this.take(8).writeBigInt64LE(value);
  }
  f32(value: number): void {
    this.take(4).writeFloatLE(value);
  }
  f64(value: number): void {
    this.take(8).writeDoubleLE(value);
  }
  integer(type: keyof typeof INTEGER_RANGE, value: number): void {
    const view = this.take(INTEGER_BYTES[type]);
    switch (type) {
      case 'uint8':
        view.writeUInt8(value);
        break;
      case 'int8':
        view.writeInt8(value);
        break;
      case 'uint16':
        view.writeUInt16LE(value);
        break;
      case 'int16':
        view.writeInt16LE(value);
        break;
      case 'uint32':
        view.writeUInt32LE(value);
        break;
      case 'int32':
        view.writeInt32LE(value);
        break;
    }
  }
  string(value: string): void {
    const encoded = Buffer.from(value, 'utf8');
    this.u64(BigInt(encoded.length));
    encoded.copy(this.take(encoded.length));
  }
  zeros(count: number): void {
    this.take(count);
  }
  toBuffer(): Buffer {
    return Buffer.from(this.buffer.subarray(0, this.length));
  }
}
