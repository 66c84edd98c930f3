import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { BerthaError } from '../core/errors.ts';

/**
 * Training checkpoints as safetensors (https://github.com/huggingface/safetensors, "Format"):
 * an 8-byte little-endian header length, a JSON header mapping names to dtype, shape and
 * byte offsets, then the raw data. Only F32 here. safetensors lists shapes outermost first,
 * the reverse of ggml's `ne`, which is what `Checkpoint` carries.
 */
export interface CheckpointTensor {
  /** ggml order: ne0 (contiguous) first. */
  shape: number[];
  data: Float32Array;
}

export interface Checkpoint {
  metadata: Record<string, string>;
  tensors: Map<string, CheckpointTensor>;
}

export class CheckpointError extends BerthaError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('checkpoint_invalid', message, 500, details);
  }
}

export async function writeCheckpoint(path: string, checkpoint: Checkpoint): Promise<void> {
  const header: Record<string, unknown> = { __metadata__: checkpoint.metadata };
  let offset = 0;
  for (const [name, t] of checkpoint.tensors) {
    header[name] = { dtype: 'F32', shape: [...t.shape].reverse(), data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces so the data starts 8-byte aligned, as the format recommends.
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(headerBytes.length));
  const parts: Buffer[] = [length, headerBytes];
  for (const t of checkpoint.tensors.values())
    parts.push(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  await mkdir(dirname(path), { recursive: true });
  const partial = `${path}.partial`;
  await writeFile(partial, Buffer.concat(parts));
  await rename(partial, path);
}

export async function readCheckpoint(path: string): Promise<Checkpoint> {
  const bytes = await readFile(path);
  if (bytes.length < 8) throw new CheckpointError(`${path} is not a safetensors file`);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  if (8 + headerLength > bytes.length) throw new CheckpointError(`${path} has a truncated header`);
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, unknown>;
  const dataStart = 8 + headerLength;
  const tensors = new Map<string, CheckpointTensor>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = entry as Record<string, string>;
      continue;
    }
    const { dtype, shape, data_offsets } = entry as { dtype: string; shape: number[]; data_offsets: [number, number] };
    if (dtype !== 'F32') throw new CheckpointError(`${path}: tensor ${name} is ${dtype}, only F32 is supported`);
    const [begin, end] = data_offsets;
    const count = shape.reduce((a, b) => a * b, 1);
    if (end - begin !== count * 4 || dataStart + end > bytes.length) {
      throw new CheckpointError(`${path}: tensor ${name} has inconsistent offsets`);
    }
    // Copy so that the data is 4-byte aligned whatever the header length.
    const data = new Float32Array(count);
    new Uint8Array(data.buffer).set(bytes.subarray(dataStart + begin, dataStart + end));
    tensors.set(name, { shape: [...shape].reverse(), data });
  }
  return { metadata, tensors };
}
