/**
 * GGUF reader (v2 and v3; layout in writer.ts and ggml's docs/gguf.md). It parses the header, the metadata and
 * the tensor infos through a file handle in 1 MiB chunks and never loads tensor data wholesale: tensors are
 * described by their absolute byte range and read on demand, whole or a few rows at a time, in their stored
 * type. Plain Node has no mmap, so the memory held is the parsed metadata (for a Llama 3 vocabulary of 128k
 * tokens and 280k merges, some tens of MB of JS strings) plus whatever tensor bytes the caller asks for;
 * a 7B Q4_K_M base is never resident unless someone reads all of its tensors.
 */
import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { GgufError } from './errors.ts';
import type { GgmlTypeName } from './ggml-types.ts';
import { GGML_TYPES, ggmlRowBytes, ggmlTypeByCode } from './ggml-types.ts';
import type { GgufArrayValue, GgufScalarValue, GgufValue } from './writer.ts';
import { GGUF_DEFAULT_ALIGNMENT } from './writer.ts';

const GGUF_MAGIC = 0x46554747;
const CHUNK_BYTES = 1 << 20;
const MAX_DIMS = 4;

export interface GgufTensorInfo {
  readonly name: string;
  readonly type: GgmlTypeName;
  /** ggml order: ne[0] (values per row, fastest-moving) first. */
  readonly dims: readonly number[];
  /** Row-major shape, outermost first: `dims` reversed, as the writer takes it. */
  readonly shape: readonly number[];
  readonly elements: number;
  /** Values per row (ne[0]) and rows (the product of the other dims). */
  readonly rowLength: number;
  readonly rows: number;
  readonly rowBytes: number;
  /** Absolute position of the first byte in the file, and the byte count. */
  readonly fileOffset: number;
  readonly byteLength: number;
}

export interface GgufHeader {
  readonly version: number;
  readonly alignment: number;
  readonly metadata: ReadonlyMap<string, GgufValue>;
  /** In file order. */
  readonly tensors: readonly GgufTensorInfo[];
  /** Where the tensor data section starts. */
  readonly dataOffset: number;
  readonly fileBytes: number;
}

export interface GgufFileReader {
  readonly path: string;
  readonly header: GgufHeader;
  tensor(name: string): GgufTensorInfo;
  /** The tensor's bytes in its stored type, read in one piece (size it first: `byteLength`). */
  readTensor(tensor: GgufTensorInfo | string, signal?: AbortSignal): Promise<Buffer>;
  /** Rows [first, first + count) of the tensor (a row is ne[0] values), in its stored type. */
  readRows(tensor: GgufTensorInfo | string, first: number, count: number, signal?: AbortSignal): Promise<Buffer>;
  close(): Promise<void>;
}

/** Whether `path` starts with the GGUF magic; reads 4 bytes. */
export async function isGgufFile(path: string): Promise<boolean> {
  const handle = await open(path, 'r');
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(4), 0, 4, 0);
    return bytesRead === 4 && buffer.readUInt32LE(0) === GGUF_MAGIC;
  } finally {
    await handle.close();
  }
}

/** Parses header, metadata and tensor infos of the GGUF at `path`; reads no tensor data. */
export async function readGgufHeader(path: string, signal?: AbortSignal): Promise<GgufHeader> {
  const handle = await open(path, 'r');
  try {
    return await parseHeader(handle, path, signal);
  } finally {
    await handle.close();
  }
}

/** Opens a GGUF for lazy tensor reads; close it when done. */
export async function openGguf(path: string, signal?: AbortSignal): Promise<GgufFileReader> {
  const handle = await open(path, 'r');
  let header: GgufHeader;
  try {
    header = await parseHeader(handle, path, signal);
  } catch (error) {
    await handle.close();
    throw error;
  }
  const byName = new Map(header.tensors.map((t) => [t.name, t]));
  const lookup = (tensor: GgufTensorInfo | string): GgufTensorInfo => {
    if (typeof tensor !== 'string') return tensor;
    const found = byName.get(tensor);
    if (!found) throw new GgufError(`${path} has no tensor '${tensor}'`, { path, tensor });
    return found;
  };
  const readRange = async (position: number, length: number, signal?: AbortSignal): Promise<Buffer> => {
    signal?.throwIfAborted();
    const out = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await handle.read(out, done, length - done, position + done);
      if (bytesRead === 0) throw new GgufError(`${path} ended inside tensor data`, { path, position });
      done += bytesRead;
    }
    return out;
  };
  return {
    path,
    header,
    tensor: lookup,
    readTensor: async (tensor, signal) => {
      const info = lookup(tensor);
      return readRange(info.fileOffset, info.byteLength, signal);
    },
    readRows: async (tensor, first, count, signal) => {
      const info = lookup(tensor);
      if (!Number.isSafeInteger(first) || !Number.isSafeInteger(count) || first < 0 || count < 0) {
        throw new GgufError(`invalid row range ${first}+${count}`, { first, count });
      }
      if (first + count > info.rows) {
        throw new GgufError(`rows ${first}..${first + count} are outside '${info.name}' (${info.rows} rows)`, {
          tensor: info.name,
        });
      }
      return readRange(info.fileOffset + first * info.rowBytes, count * info.rowBytes, signal);
    },
    close: () => handle.close(),
  };
}

async function parseHeader(handle: FileHandle, path: string, signal?: AbortSignal): Promise<GgufHeader> {
  const fileBytes = (await handle.stat()).size;
  const source = new ChunkedSource(handle, fileBytes, path);
  const invalid = (message: string, details?: Record<string, unknown>): GgufError =>
    new GgufError(`${path}: ${message}`, { path, ...details });

  await source.need(8);
  if (source.u32() !== GGUF_MAGIC) throw invalid('not a GGUF file (bad magic)');
  const version = source.u32();
  // v1 used 32-bit counts and lengths; llama.cpp dropped it long ago.
  if (version !== 2 && version !== 3) throw invalid(`GGUF version ${version} is not supported (2 or 3)`, { version });
  await source.need(16);
  const tensorCount = source.count('tensor count');
  const kvCount = source.count('metadata count');

  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    signal?.throwIfAborted();
    const key = await source.string();
    if (metadata.has(key)) throw invalid(`duplicate metadata key '${key}'`, { key });
    await source.need(4);
    const type = source.u32();
    metadata.set(key, await readValue(source, key, type));
  }

  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const alignmentValue = metadata.get('general.alignment');
  if (alignmentValue !== undefined) {
    if (
      alignmentValue.type !== 'uint32' ||
      alignmentValue.value === 0 ||
      (alignmentValue.value & (alignmentValue.value - 1)) !== 0
    ) {
      throw invalid('general.alignment must be a uint32 power of two');
    }
    alignment = alignmentValue.value;
  }

  const raw: { name: string; dims: number[]; type: GgmlTypeName; offset: number }[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    signal?.throwIfAborted();
    const name = await source.string();
    if (names.has(name)) throw invalid(`duplicate tensor '${name}'`, { tensor: name });
    names.add(name);
    await source.need(4);
    const nDims = source.u32();
    if (nDims < 1 || nDims > MAX_DIMS) throw invalid(`tensor '${name}' has ${nDims} dimensions`, { tensor: name });
    await source.need(nDims * 8 + 12);
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) {
      const dim = source.u64();
      if (dim < 1n || dim > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw invalid(`tensor '${name}' has dimension ${dim}`, { tensor: name });
      }
      dims.push(Number(dim));
    }
    const code = source.u32();
    const type = ggmlTypeByCode(code);
    if (type === undefined) throw invalid(`tensor '${name}' has unknown ggml type ${code}`, { tensor: name, code });
    const offset = source.u64();
    if (offset > BigInt(fileBytes)) throw invalid(`tensor '${name}' starts past the end of the file`, { tensor: name });
    raw.push({ name, dims, type, offset: Number(offset) });
  }
  const dataOffset = alignUp(source.position, alignment);

  const tensors = raw.map(({ name, dims, type, offset }): GgufTensorInfo => {
    const [rowLength = 1, ...outer] = dims;
    const rowBytes = ggmlRowBytes(type, rowLength);
    if (rowBytes === undefined) {
      throw invalid(
        `tensor '${name}' is ${type} with rows of ${rowLength}, not a multiple of ${GGML_TYPES[type].blockSize}`,
        {
          tensor: name,
        },
      );
    }
    if (offset % alignment !== 0) throw invalid(`tensor '${name}' is not aligned to ${alignment}`, { tensor: name });
    const rows = outer.reduce((a, b) => a * b, 1);
    const byteLength = rows * rowBytes;
    const fileOffset = dataOffset + offset;
    if (!Number.isSafeInteger(byteLength) || fileOffset + byteLength > fileBytes) {
      throw invalid(`tensor '${name}' (${byteLength} bytes at ${fileOffset}) runs past the end of the file`, {
        tensor: name,
      });
    }
    return {
      name,
      type,
      dims,
      shape: [...dims].reverse(),
      elements: rowLength * rows,
      rowLength,
      rows,
      rowBytes,
      fileOffset,
      byteLength,
    };
  });
  return { version, alignment, metadata, tensors, dataOffset, fileBytes };
}

function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

/** gguf_type codes (ggml/include/gguf.h) and what they read as. */
const SCALAR_BY_CODE: Record<number, GgufScalarValue['type']> = {
  0: 'uint8',
  1: 'int8',
  2: 'uint16',
  3: 'int16',
  4: 'uint32',
  5: 'int32',
  6: 'float32',
  7: 'bool',
  8: 'string',
  10: 'uint64',
  11: 'int64',
  12: 'float64',
};
const ARRAY_CODE = 9;
const SCALAR_BYTES: Record<Exclude<GgufScalarValue['type'], 'string'>, number> = {
  uint8: 1,
  int8: 1,
  uint16: 2,
  int16: 2,
  uint32: 4,
  int32: 4,
  float32: 4,
  bool: 1,
  uint64: 8,
  int64: 8,
  float64: 8,
};

async function readValue(source: ChunkedSource, key: string, code: number): Promise<GgufValue> {
  if (code === ARRAY_CODE) {
    await source.need(12);
    const itemCode = source.u32();
    const length = source.count(`length of '${key}'`);
    const itemType = SCALAR_BY_CODE[itemCode];
    if (itemType === undefined) throw source.invalid(`metadata '${key}' is an array of unknown type ${itemCode}`);
    const items: unknown[] = new Array(length);
    if (itemType === 'string') {
      for (let i = 0; i < length; i++) items[i] = await source.string();
    } else {
      const size = SCALAR_BYTES[itemType];
      for (let i = 0; i < length; ) {
        // Fill as much of the array as one chunk holds, without an await per item.
        const batch = Math.max(1, Math.min(length - i, Math.floor(CHUNK_BYTES / size)));
        await source.need(batch * size);
        for (let end = i + batch; i < end; i++) items[i] = source.scalar(itemType);
      }
    }
    return { type: 'array', itemType, value: items } as GgufArrayValue;
  }
  const type = SCALAR_BY_CODE[code];
  if (type === undefined) throw source.invalid(`metadata '${key}' has unknown type ${code}`);
  if (type === 'string') return { type, value: await source.string() };
  await source.need(SCALAR_BYTES[type]);
  return { type, value: source.scalar(type) } as GgufScalarValue;
}

/** Sequential little-endian reads over a file handle, buffered in chunks; `need(n)` before reading n bytes. */
class ChunkedSource {
  private buffer = Buffer.alloc(0);
  private offset = 0;
  /** File position of buffer[0]. */
  private start = 0;

  constructor(
    private readonly handle: FileHandle,
    private readonly fileBytes: number,
    private readonly path: string,
  ) {}

  get position(): number {
    return this.start + this.offset;
  }

  invalid(message: string): GgufError {
    return new GgufError(`${this.path}: ${message}`, { path: this.path, position: this.position });
  }

  async need(bytes: number): Promise<void> {
    const available = this.buffer.length - this.offset;
    if (available >= bytes) return;
    if (this.position + bytes > this.fileBytes) throw this.invalid('file ends inside the header');
    const size = Math.min(Math.max(bytes, CHUNK_BYTES), this.fileBytes - this.position);
    const next = Buffer.allocUnsafe(size);
    this.buffer.copy(next, 0, this.offset);
    let filled = available;
    while (filled < bytes) {
      const { bytesRead } = await this.handle.read(next, filled, size - filled, this.position + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    if (filled < bytes) throw this.invalid('file ends inside the header');
    this.start = this.position;
    this.buffer = next.subarray(0, filled);
    this.offset = 0;
  }

  u32(): number {
    const value = this.buffer.readUInt32LE(this.offset);
    this.offset += 4;
    return value;
  }

  u64(): bigint {
    const value = this.buffer.readBigUInt64LE(this.offset);
    this.offset += 8;
    return value;
  }

  /** A u64 count, bounded by the bytes left in the file (each item takes at least one byte). */
  count(what: string): number {
    const value = this.u64();
    if (value > BigInt(this.fileBytes - this.position)) throw this.invalid(`${what} ${value} exceeds the file`);
    return Number(value);
  }

  async string(): Promise<string> {
    await this.need(8);
    const length = this.count('string length');
    await this.need(length);
    const value = this.buffer.toString('utf8', this.offset, this.offset + length);
    this.offset += length;
    return value;
  }

  scalar(type: Exclude<GgufScalarValue['type'], 'string'>): number | bigint | boolean {
    const b = this.buffer;
    const at = this.offset;
    this.offset += SCALAR_BYTES[type];
    switch (type) {
      case 'uint8':
        return b.readUInt8(at);
      case 'int8':
        return b.readInt8(at);
      case 'uint16':
        return b.readUInt16LE(at);
      case 'int16':
        return b.readInt16LE(at);
      case 'uint32':
        return b.readUInt32LE(at);
      case 'int32':
        return b.readInt32LE(at);
      case 'float32':
        return b.readFloatLE(at);
      case 'float64':
        return b.readDoubleLE(at);
      case 'bool':
        return b.readUInt8(at) !== 0;
      case 'uint64':
        return b.readBigUInt64LE(at);
      case 'int64':
        return b.readBigInt64LE(at);
    }
  }
}
