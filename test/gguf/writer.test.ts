import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readGgufFileInfo } from 'node-llama-cpp';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { GgufFile } from '../../src/gguf/index.ts';
import { encodeGguf, float32ToFloat16Bits, GgufError, gguf, writeGguf } from '../../src/gguf/index.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bertha-gguf-writer-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const sample: GgufFile = {
  metadata: {
    'general.architecture': gguf.string('llama'),
    'test.u8': gguf.uint8(255),
    'test.i8': gguf.int8(-128),
    'test.u16': gguf.uint16(65535),
    'test.i16': gguf.int16(-32768),
    'test.u32': gguf.uint32(4294967295),
    'test.i32': gguf.int32(-2147483648),
    'test.f32': gguf.float32(0.5),
    'test.f64': gguf.float64(Math.PI),
    'test.u64': gguf.uint64(2n ** 53n + 1n),
    'test.i64': gguf.int64(-(2n ** 40n)),
    'test.yes': gguf.bool(true),
    'test.text': gguf.string('héllo 🦙'),
    'test.strings': gguf.array('string', ['a', '', 'ünï']),
    'test.ints': gguf.array('int32', [1, -2, 3]),
    'test.floats': gguf.array('float32', [0.25, -1.5]),
    'test.bools': gguf.array('bool', [true, false]),
  },
  tensors: [
    { name: 'odd', shape: [3], type: 'F32', data: new Float32Array([1, 2, 3]) },
    { name: 'matrix', shape: [2, 5], type: 'F32', data: Float32Array.from({ length: 10 }, (_, i) => i / 10) },
    { name: 'half', shape: [3], type: 'F16', data: new Float32Array([1, -2, 0.5]) },
  ],
};

test('metadata of every value type round-trips through node-llama-cpp readGgufFileInfo', async () => {
  const path = join(dir, 'sample.gguf');
  await writeGguf(path, sample);
  const info = await readGgufFileInfo(path);
  expect(info.version).toBe(3);
  expect(Number(info.tensorCount)).toBe(3);
  const metadata = info.metadata as unknown as Record<string, Record<string, unknown>>;
  expect(metadata.general?.alignment).toBe(32);
  expect(metadata.test).toEqual({
    u8: 255,
    i8: -128,
    u16: 65535,
    i16: -32768,
    u32: 4294967295,
    i32: -2147483648,
    f32: 0.5,
    f64: Math.PI,
    u64: 2n ** 53n + 1n,
    i64: -(2n ** 40n),
    yes: true,
    text: 'héllo 🦙',
    strings: ['a', '', 'ünï'],
    ints: [1, -2, 3],
    floats: [0.25, -1.5],
    bools: [true, false],
  });
});

test('tensor data starts on 32-byte boundaries with ggml dims reversed from the row-major shape', async () => {
  const path = join(dir, 'aligned.gguf');
  const { bytes } = await writeGguf(path, sample);
  const file = await readFile(path);
  expect(file.length).toBe(bytes);
  expect(file.length % 32).toBe(0);
  const info = await readGgufFileInfo(path);
  const tensors = info.tensorInfo ?? [];
  expect(tensors.map((t) => [t.name, t.dimensions.map(Number), t.ggmlType, Number(t.offset)])).toEqual([
    ['odd', [3], 0, 0],
    ['matrix', [5, 2], 0, 32],
    ['half', [3], 1, 96],
  ]);
  for (const tensor of tensors) expect(Number(tensor.fileOffset) % 32).toBe(0);
  const matrix = tensors[1];
  const at = Number(matrix?.fileOffset);
  expect(Array.from(new Float32Array(file.buffer.slice(file.byteOffset + at, file.byteOffset + at + 40)))).toEqual(
    Array.from(sample.tensors[1]?.data ?? []),
  );
  const half = Number(tensors[2]?.fileOffset);
  expect([file.readUInt16LE(half), file.readUInt16LE(half + 2), file.readUInt16LE(half + 4)]).toEqual([
    0x3c00, 0xc000, 0x3800,
  ]);
});

test('encodeGguf returns the same bytes writeGguf streams', async () => {
  const path = join(dir, 'same.gguf');
  await writeGguf(path, sample);
  expect(encodeGguf(sample).equals(await readFile(path))).toBe(true);
});

test('a custom alignment pads the data section to it', async () => {
  const path = join(dir, 'align64.gguf');
  await writeGguf(path, { ...sample, alignment: 64 });
  const info = await readGgufFileInfo(path);
  expect((info.metadata as unknown as { general: { alignment: number } }).general.alignment).toBe(64);
  expect(info.tensorInfo?.map((t) => Number(t.fileOffset) % 64)).toEqual([0, 0, 0]);
});

test('float32 to float16 rounds to nearest even and keeps specials', () => {
  expect(float32ToFloat16Bits(1)).toBe(0x3c00);
  expect(float32ToFloat16Bits(65504)).toBe(0x7bff);
  expect(float32ToFloat16Bits(1e6)).toBe(0x7c00);
  expect(float32ToFloat16Bits(-Infinity)).toBe(0xfc00);
  expect(float32ToFloat16Bits(Number.NaN) & 0x7e00).toBe(0x7e00);
  expect(float32ToFloat16Bits(2 ** -24)).toBe(0x0001);
  expect(float32ToFloat16Bits(2 ** -26)).toBe(0);
  expect(float32ToFloat16Bits(-0)).toBe(0x8000);
  // 1 + 2^-11 is halfway between 1 and the next half (1 + 2^-10): ties go to the even mantissa.
  expect(float32ToFloat16Bits(1 + 2 ** -11)).toBe(0x3c00);
  expect(float32ToFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
  expect(float32ToFloat16Bits(0.1)).toBe(0x2e66);
});

const invalidFiles: [string, GgufFile][] = [
  ['a key that is not lower_snake_case', { metadata: { 'General.Name': gguf.string('x') }, tensors: [] }],
  ['an integer out of range', { metadata: { 'a.b': gguf.uint8(256) }, tensors: [] }],
  ['a fractional integer', { metadata: { 'a.b': gguf.int32(1.5) }, tensors: [] }],
  ['a value of the wrong kind', { metadata: { 'a.b': { type: 'uint64', value: 5 } as never }, tensors: [] }],
  ['general.alignment in metadata', { metadata: { 'general.alignment': gguf.uint32(32) }, tensors: [] }],
  ['an alignment that is not a power of two', { metadata: {}, tensors: [], alignment: 24 }],
  [
    'a shape that does not match the data',
    { metadata: {}, tensors: [{ name: 't', shape: [2, 2], type: 'F32', data: new Float32Array(3) }] },
  ],
  [
    'five dimensions',
    { metadata: {}, tensors: [{ name: 't', shape: [1, 1, 1, 1, 1], type: 'F32', data: new Float32Array(1) }] },
  ],
  ['a zero dimension', { metadata: {}, tensors: [{ name: 't', shape: [0], type: 'F32', data: new Float32Array(0) }] }],
  [
    'a name over 63 bytes',
    { metadata: {}, tensors: [{ name: 'x'.repeat(64), shape: [1], type: 'F32', data: new Float32Array(1) }] },
  ],
  [
    'a duplicate tensor name',
    {
      metadata: {},
      tensors: [
        { name: 't', shape: [1], type: 'F32', data: new Float32Array(1) },
        { name: 't', shape: [1], type: 'F32', data: new Float32Array(1) },
      ],
    },
  ],
  ['F32 with half bits', { metadata: {}, tensors: [{ name: 't', shape: [1], type: 'F32', data: new Uint16Array(1) }] }],
];

test.each(invalidFiles)('rejects %s with a GgufError before writing anything', async (_, file) => {
  const path = join(dir, 'invalid.gguf');
  expect(() => encodeGguf(file)).toThrow(GgufError);
  await expect(writeGguf(path, file)).rejects.toMatchObject({ code: 'gguf_invalid', name: 'GgufError' });
  expect((await readdir(dir)).filter((name) => name.startsWith('invalid'))).toEqual([]);
});

test('an aborted write leaves no file behind', async () => {
  const controller = new AbortController();
  controller.abort();
  await expect(writeGguf(join(dir, 'aborted.gguf'), sample, controller.signal)).rejects.toThrow();
  expect((await readdir(dir)).filter((name) => name.startsWith('aborted'))).toEqual([]);
});
