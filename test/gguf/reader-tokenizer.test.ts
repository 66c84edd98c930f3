import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Llama, Token } from 'node-llama-cpp';
import { getLlama } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { seededRandom } from '../../src/core/random.ts';
import type {
  GgufFile,
  GgufValue,
  GgufVocabulary,
  LlamaTokenizerSpec,
  QuantizedTypeName,
} from '../../src/gguf/index.ts';
import {
  createGgufTokenizer,
  dequantize,
  encodeGguf,
  float16BitsToFloat32,
  float32ToFloat16Bits,
  GGML_TYPES,
  GgufError,
  gguf,
  openGguf,
  preTokenize,
  quantize,
  readGgufHeader,
  readLlamaBase,
  resolvePreTokenizer,
  UnsupportedBaseError,
  vocabularyFromMetadata,
  writeGguf,
} from '../../src/gguf/index.ts';
import {
  llamaBaseFixture,
  trainedBytePairTokenizer,
  trainedSentencePieceTokenizer,
  writeLlamaBaseFixture,
} from '../fixtures/llama-bases.ts';
import { tinyBytePairTokenizer, tinySentencePieceTokenizer } from '../fixtures/tiny-llama.ts';
import { loadGgmlReference } from './ggml-reference.ts';
import { fuzzTexts, TOKENIZER_TEXTS } from './tokenizer-texts.ts';

let dir: string;
let llama: Llama;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bertha-gguf-reader-'));
  llama = await getLlama({ build: 'never', gpu: false, maxThreads: 1 });
});
afterAll(async () => {
  await llama?.dispose();
  await rm(dir, { recursive: true, force: true });
});

const QUANTIZED: readonly QuantizedTypeName[] = ['Q8_0', 'Q4_0', 'Q4_K', 'Q6_K'];
const ERROR_BOUND: Record<QuantizedTypeName, number> = { Q8_0: 0.05, Q4_0: 1, Q4_K: 0.6, Q6_K: 0.2 };

function wave(length: number, seed = 1): Float32Array {
  const random = seededRandom(seed);
  return Float32Array.from({ length }, (_, i) => Math.sin(i * 0.37) * (1 + (i % 7)) + (random() - 0.5));
}

function maxError(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs((a[i] ?? 0) - (b[i] ?? 0)));
  return worst;
}

describe('ggml tensor types', () => {
  test('the type table gives libggml-base block and byte sizes for every ggml type', () => {
    const ggml = loadGgmlReference();
    for (const [name, { code, blockSize, typeSize }] of Object.entries(GGML_TYPES)) {
      expect({
        name: ggml.typeName(code).toUpperCase(),
        blockSize: ggml.blockSize(code),
        typeSize: ggml.typeSize(code),
      }).toEqual({
        name: name.toUpperCase(),
        blockSize,
        typeSize,
      });
    }
    expect(GGML_TYPES.Q8_0).toMatchObject({ blockSize: 32, typeSize: 34 });
    expect(GGML_TYPES.Q4_0).toMatchObject({ blockSize: 32, typeSize: 18 });
    expect(GGML_TYPES.Q4_K).toMatchObject({ blockSize: 256, typeSize: 144 });
    expect(GGML_TYPES.Q6_K).toMatchObject({ blockSize: 256, typeSize: 210 });
  });

  test('Q8_0 and Q4_0 encode byte for byte like ggml, and every block type decodes bit for bit like ggml', () => {
    const ggml = loadGgmlReference();
    const values = wave(512 * 3);
    for (const type of QUANTIZED) {
      const { code } = GGML_TYPES[type];
      const ours = quantize(type, values);
      const theirs = ggml.quantize(code, values, 3);
      expect(ours.length).toBe(theirs.length);
      if (type === 'Q8_0' || type === 'Q4_0') expect(Buffer.from(ours).equals(Buffer.from(theirs))).toBe(true);
      // Our decoder reads ggml's bytes and ggml's decoder reads ours, with identical results.
      expect(dequantize(type, theirs, values.length)).toEqual(ggml.dequantize(code, theirs, values.length));
      expect(dequantize(type, ours, values.length)).toEqual(ggml.dequantize(code, ours, values.length));
      // Our K-quant encoders pick scales more simply than ggml's search, but land close to it.
      const ourError = maxError(dequantize(type, ours, values.length), values);
      const ggmlError = maxError(dequantize(type, theirs, values.length), values);
      expect(ourError).toBeLessThanOrEqual(ggmlError * 1.25 + 1e-6);
    }
  });

  test('F16 and BF16 decode bit for bit like ggml', () => {
    const ggml = loadGgmlReference();
    const random = seededRandom(4);
    const bytes = Uint8Array.from({ length: 2048 }, () => Math.floor(random() * 256));
    for (const type of ['F16', 'BF16'] as const) {
      expect(dequantize(type, bytes, 1024)).toEqual(ggml.dequantize(GGML_TYPES[type].code, bytes, 1024));
    }
  });

  test('the writer refuses block types whose rows are not whole blocks, or blocks of the wrong size', () => {
    const tensor = (type: QuantizedTypeName, shape: number[], data: Float32Array | Uint8Array): GgufFile => ({
      metadata: {},
      tensors: [{ name: 't', shape, type, data }],
    });
    expect(() => encodeGguf(tensor('Q4_K', [2, 64], new Float32Array(128)))).toThrow(/multiple of 256/);
    expect(() => encodeGguf(tensor('Q8_0', [2, 48], new Float32Array(96)))).toThrow(/multiple of 32/);
    expect(() => encodeGguf(tensor('Q8_0', [1, 32], new Uint8Array(33)))).toThrow(/33 bytes/);
    expect(encodeGguf(tensor('Q8_0', [1, 32], quantize('Q8_0', wave(32)))).length).toBeGreaterThan(34);
  });

  test('F16 round-trips through half bits', () => {
    for (const value of [0, 1, -2, 0.5, 65504, 6e-8, -0.333]) {
      expect(float16BitsToFloat32(float32ToFloat16Bits(value))).toBeCloseTo(value, 3);
    }
  });
});

describe('GGUF reader', () => {
  const metadata: Record<string, GgufValue> = {
    'general.architecture': gguf.string('test'),
    'test.u8': gguf.uint8(255),
    'test.i16': gguf.int16(-32768),
    'test.u32': gguf.uint32(4294967295),
    'test.i32': gguf.int32(-7),
    'test.f32': gguf.float32(0.5),
    'test.f64': gguf.float64(Math.PI),
    'test.u64': gguf.uint64(2n ** 53n + 1n),
    'test.i64': gguf.int64(-(2n ** 40n)),
    'test.yes': gguf.bool(true),
    'test.text': gguf.string('héllo 🦙'),
    'test.strings': gguf.array('string', ['a', '', 'ünï']),
    'test.floats': gguf.array('float32', [0.25, -1.5]),
    'test.bools': gguf.array('bool', [true, false]),
  };
  const matrix = wave(4 * 256, 2);
  const file: GgufFile = {
    metadata,
    tensors: [
      { name: 'f32', shape: [3], type: 'F32', data: new Float32Array([1, 2, 3]) },
      { name: 'f16', shape: [2, 4], type: 'F16', data: new Float32Array([1, -2, 0.5, 4, 5, 6, 7, 8]) },
      ...QUANTIZED.map((type) => ({ name: type.toLowerCase(), shape: [4, 256], type, data: matrix })),
    ],
  };

  test('header, metadata and tensor infos read back without reading tensor data', async () => {
    const path = join(dir, 'all-types.gguf');
    const { bytes } = await writeGguf(path, file);
    const header = await readGgufHeader(path);
    expect(header.version).toBe(3);
    expect(header.alignment).toBe(32);
    expect(header.fileBytes).toBe(bytes);
    expect(Object.fromEntries(header.metadata)).toEqual({ ...metadata, 'general.alignment': gguf.uint32(32) });
    expect(header.tensors.map((t) => [t.name, t.type, t.shape, t.dims, t.byteLength])).toEqual([
      ['f32', 'F32', [3], [3], 12],
      ['f16', 'F16', [2, 4], [4, 2], 16],
      ['q8_0', 'Q8_0', [4, 256], [256, 4], 4 * 8 * 34],
      ['q4_0', 'Q4_0', [4, 256], [256, 4], 4 * 8 * 18],
      ['q4_k', 'Q4_K', [4, 256], [256, 4], 4 * 144],
      ['q6_k', 'Q6_K', [4, 256], [256, 4], 4 * 210],
    ]);
    for (const tensor of header.tensors) {
      expect(tensor.fileOffset % 32).toBe(0);
      expect(tensor.fileOffset).toBeGreaterThanOrEqual(header.dataOffset);
    }
  });

  test('tensors are read lazily, whole or by rows, in their stored type', async () => {
    const path = join(dir, 'lazy.gguf');
    await writeGguf(path, file);
    const whole = await readFile(path);
    const reader = await openGguf(path);
    try {
      for (const info of reader.header.tensors) {
        const bytes = await reader.readTensor(info.name);
        expect(bytes.equals(whole.subarray(info.fileOffset, info.fileOffset + info.byteLength))).toBe(true);
      }
      expect(dequantize('F16', await reader.readTensor('f16'), 8)).toEqual(
        new Float32Array([1, -2, 0.5, 4, 5, 6, 7, 8]),
      );
      for (const type of QUANTIZED) {
        const info = reader.tensor(type.toLowerCase());
        expect(info.rowBytes).toBe((256 / GGML_TYPES[type].blockSize) * GGML_TYPES[type].typeSize);
        const rows = await reader.readRows(info, 1, 2);
        expect(rows.length).toBe(2 * info.rowBytes);
        const decoded = dequantize(type, rows, 512);
        expect(decoded).toEqual(dequantize(type, quantize(type, matrix), 1024).subarray(256, 768));
        // Values reach about ±8: a 4-bit step is about 1, an 8-bit step 1/16.
        expect(maxError(decoded, matrix.subarray(256, 768))).toBeLessThan(ERROR_BOUND[type]);
      }
      await expect(reader.readRows('q8_0', 3, 2)).rejects.toThrow(GgufError);
      expect(() => reader.tensor('missing')).toThrow(GgufError);
    } finally {
      await reader.close();
    }
  });

  test('malformed files are refused as gguf_invalid', async () => {
    const path = join(dir, 'good.gguf');
    await writeGguf(path, file);
    const good = await readFile(path);
    const variants: Record<string, Buffer> = {
      'bad magic': Buffer.concat([Buffer.from('GGUX'), good.subarray(4)]),
      'version 1': Buffer.concat([good.subarray(0, 4), Buffer.from([1, 0, 0, 0]), good.subarray(8)]),
      truncated: good.subarray(0, 200),
      'data cut off': good.subarray(0, good.length - 64),
    };
    for (const [name, bytes] of Object.entries(variants)) {
      const broken = join(dir, `${name.replaceAll(' ', '-')}.gguf`);
      await writeFile(broken, bytes);
      const error = await readGgufHeader(broken).catch((e: unknown) => e);
      expect(error, name).toBeInstanceOf(GgufError);
      expect((error as GgufError).code).toBe('gguf_invalid');
    }
  });
});

describe('Llama bases', () => {
  test('a grouped-query SentencePiece base in Q8_0/Q4_0/F16 reads back and runs in node-llama-cpp', async () => {
    const tokenizer = trainedSentencePieceTokenizer();
    const tensorTypes = { 'token_embd.weight': 'F16', 'output.weight': 'Q4_0' } as const;
    const { file, hparams } = llamaBaseFixture({ tokenizer, weightType: 'Q8_0', tensorTypes });
    const path = join(dir, 'spm-gqa.gguf');
    await writeGguf(path, file);
    const base = await readLlamaBase(path);
    expect(base.hparams).toEqual({
      nVocab: tokenizer.tokens.length,
      nCtxTrain: 256,
      nEmbd: 64,
      nLayer: 2,
      nHead: 4,
      nHeadKv: 2,
      nFf: 96,
      headDim: 16,
      nRot: 16,
      ropeFreqBase: 10000,
      ropeFreqScale: 1,
      rmsEps: expect.closeTo(1e-5, 10),
    });
    expect(base.vocabulary).toMatchObject({
      model: 'llama',
      bosId: 1,
      eosId: 2,
      unkId: 0,
      addBos: true,
      addSpacePrefix: true,
    });
    expect(base.tiedEmbeddings).toBe(false);
    const info = (name: string): [string, number, number] => {
      const t = base.tensors.get(name);
      return [t?.type ?? '', t?.byteLength ?? 0, t?.dims.length ?? 0];
    };
    expect(info('token_embd.weight')).toEqual(['F16', hparams.nVocab * 64 * 2, 2]);
    expect(info('blk.0.attn_q.weight')).toEqual(['Q8_0', 64 * (64 / 32) * 34, 2]);
    expect(info('blk.1.attn_k.weight')).toEqual(['Q8_0', 32 * (64 / 32) * 34, 2]);
    expect(info('blk.1.ffn_down.weight')).toEqual(['Q8_0', 64 * (96 / 32) * 34, 2]);
    expect(info('output.weight')).toEqual(['Q4_0', hparams.nVocab * (64 / 32) * 18, 2]);
    expect(info('output_norm.weight')).toEqual(['F32', 64 * 4, 1]);
    await expectRunsInLlamaCpp(path, { headCountKv: 2 });
  });

  test('a Llama 3 style base in Q4_K with Q6_K tensors reads back with its BPE vocabulary and runs', async () => {
    const tokenizer = trainedBytePairTokenizer();
    const shape = { nEmbd: 256, nFf: 256, nLayer: 1, nHead: 8, nHeadKv: 2, ropeFreqBase: 500000 };
    const tensorTypes = { 'output.weight': 'Q6_K', 'blk.0.attn_v.weight': 'Q6_K' } as const;
    const { file } = llamaBaseFixture({ tokenizer, shape, weightType: 'Q4_K', tensorTypes });
    const path = join(dir, 'bpe-q4k.gguf');
    await writeGguf(path, file);
    const base = await readLlamaBase(path);
    expect(base.hparams).toMatchObject({
      nEmbd: 256,
      nLayer: 1,
      nHead: 8,
      nHeadKv: 2,
      headDim: 32,
      ropeFreqBase: 500000,
    });
    expect(base.vocabulary).toMatchObject({
      model: 'gpt2',
      addBos: true,
      bosId: tokenizer.bosId,
      eosId: tokenizer.eosId,
    });
    expect(base.vocabulary.pre?.name).toBe('llama-bpe');
    const nVocab = tokenizer.tokens.length;
    expect(base.tensors.get('token_embd.weight')).toMatchObject({ type: 'Q4_K', byteLength: nVocab * 144 });
    expect(base.tensors.get('blk.0.attn_k.weight')).toMatchObject({ type: 'Q4_K', byteLength: 64 * 144 });
    expect(base.tensors.get('blk.0.attn_v.weight')).toMatchObject({ type: 'Q6_K', byteLength: 64 * 210 });
    expect(base.tensors.get('output.weight')).toMatchObject({ type: 'Q6_K', byteLength: nVocab * 210 });
    await expectRunsInLlamaCpp(path, { headCountKv: 2 });
  });

  test('a tied-embedding base reads back without output.weight', async () => {
    const path = join(dir, 'tied.gguf');
    await writeLlamaBaseFixture(path, { tokenizer: trainedSentencePieceTokenizer(60), tied: true });
    const base = await readLlamaBase(path);
    expect(base.tiedEmbeddings).toBe(true);
    expect(base.tensors.has('output.weight')).toBe(false);
  });

  test('bases the trainer cannot reproduce are refused with a stable code that names the cause', async () => {
    const small = { nLayer: 1, nEmbd: 32, nFf: 32, nHead: 2, nHeadKv: 1 };
    const spm = llamaBaseFixture({ tokenizer: trainedSentencePieceTokenizer(40), shape: small }).file;
    const bpe = llamaBaseFixture({ tokenizer: trainedBytePairTokenizer('llama-bpe', 40), shape: small }).file;
    const withMetadata = (base: GgufFile, extra: Record<string, GgufValue>): GgufFile => ({
      ...base,
      metadata: { ...base.metadata, ...extra },
    });
    const renamed = (architecture: string): GgufFile => ({
      ...spm,
      metadata: Object.fromEntries(
        Object.entries(spm.metadata).map(([key, value]) => [
          key.replace(/^llama\./, `${architecture}.`),
          key === 'general.architecture' ? gguf.string(architecture) : value,
        ]),
      ),
    });
    const cases: [string, GgufFile, string, string][] = [
      ['qwen2 architecture', renamed('qwen2'), 'unsupported_architecture', "'qwen2'"],
      ['gemma architecture', renamed('gemma'), 'unsupported_architecture', "'gemma'"],
      [
        'Mistral sliding window',
        withMetadata(spm, { 'llama.attention.sliding_window': gguf.uint32(64) }),
        'unsupported_sliding_window',
        'sliding window of 64',
      ],
      [
        'Mixtral experts',
        withMetadata(spm, { 'llama.expert_count': gguf.uint32(8), 'llama.expert_used_count': gguf.uint32(2) }),
        'unsupported_mixture_of_experts',
        '8 experts',
      ],
      [
        'yarn RoPE',
        withMetadata(spm, { 'llama.rope.scaling.type': gguf.string('yarn') }),
        'unsupported_rope_scaling',
        'yarn',
      ],
      [
        'attention bias',
        {
          ...spm,
          tensors: [
            ...spm.tensors,
            { name: 'blk.0.attn_q.bias', shape: [32], type: 'F32', data: new Float32Array(32) },
          ],
        },
        'unsupported_layout',
        'blk.0.attn_q.bias',
      ],
      [
        'per-layer head counts',
        withMetadata(spm, { 'llama.attention.head_count': gguf.array('uint32', [2, 2]) }),
        'unsupported_layout',
        'head_count',
      ],
      [
        'T5 tokenizer',
        withMetadata(spm, { 'tokenizer.ggml.model': gguf.string('t5') }),
        'unsupported_tokenizer',
        "'t5'",
      ],
      [
        'deepseek-llm pre-tokenizer',
        withMetadata(bpe, { 'tokenizer.ggml.pre': gguf.string('deepseek-llm') }),
        'unsupported_pre_tokenizer',
        "'deepseek-llm'",
      ],
    ];
    for (const [name, variant, code, mention] of cases) {
      const path = join(dir, `refused-${name.replaceAll(' ', '-')}.gguf`);
      await writeGguf(path, variant);
      const error = await readLlamaBase(path).catch((e: unknown) => e);
      expect(error, name).toBeInstanceOf(UnsupportedBaseError);
      expect((error as UnsupportedBaseError).code, name).toBe(code);
      expect((error as Error).message, name).toContain(mention);
    }
    // A window as long as the context is plain causal attention.
    const fullWindow = join(dir, 'full-window.gguf');
    await writeGguf(fullWindow, withMetadata(spm, { 'llama.attention.sliding_window': gguf.uint32(256) }));
    await expect(readLlamaBase(fullWindow)).resolves.toMatchObject({ hparams: { nLayer: 1 } });
  });
});

/** Loads the model fully, checks llama.cpp read the K/V head count, and evaluates a prompt. */
async function expectRunsInLlamaCpp(path: string, expected: { headCountKv: number }): Promise<void> {
  const model = await llama.loadModel({ modelPath: path });
  try {
    const attention = (model.fileInfo.metadata as unknown as { llama: { attention: Record<string, unknown> } }).llama
      .attention;
    expect(attention.head_count_kv).toBe(expected.headCountKv);
    const context = await model.createContext({ contextSize: 64 });
    try {
      const sequence = context.getSequence();
      const prompt = model.tokenize('the answer is');
      const results = await sequence.controlledEvaluate(
        prompt.map((token, i) =>
          i === prompt.length - 1 ? [token, { generateNext: { probabilities: true } }] : token,
        ),
      );
      const probabilities = results[results.length - 1]?.next.probabilities;
      expect(probabilities?.size).toBeGreaterThan(0);
      for (const p of probabilities?.values() ?? []) expect(Number.isFinite(p)).toBe(true);
    } finally {
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
}

const VOCABULARIES: [string, () => LlamaTokenizerSpec][] = [
  ['SentencePiece (Llama 2 style, trained)', () => trainedSentencePieceTokenizer()],
  ['byte-level BPE, llama-bpe (Llama 3 style, trained)', () => trainedBytePairTokenizer('llama-bpe')],
  ['byte-level BPE, qwen2', () => trainedBytePairTokenizer('qwen2')],
  ['byte-level BPE, gpt-2', () => trainedBytePairTokenizer('gpt-2')],
  ['byte-level BPE, command-r', () => trainedBytePairTokenizer('command-r')],
  ["SentencePiece, tiny-llama's fixture", () => tinySentencePieceTokenizer()],
  ["byte-level BPE, tiny-llama's fixture (qwen2)", () => tinyBytePairTokenizer()],
];

describe('tokenizers from the GGUF vocabulary', () => {
  test.each(VOCABULARIES)('%s gives node-llama-cpp\u2019s tokens and text', async (label, spec) => {
    const path = join(dir, `vocab-${label.replace(/[^a-z0-9]+/gi, '-')}.gguf`);
    await writeLlamaBaseFixture(path, {
      tokenizer: spec(),
      shape: { nLayer: 1, nEmbd: 32, nFf: 32, nHead: 2, nHeadKv: 1 },
    });
    const ours = createGgufTokenizer((await readLlamaBase(path)).vocabulary);
    const model = await llama.loadModel({ modelPath: path, vocabOnly: true });
    try {
      expect(ours.vocabulary.addBos).toBe(model.tokens.shouldPrependBosToken);
      expect(ours.vocabulary.bosId).toBe(model.tokens.bos ?? undefined);
      const texts = [...TOKENIZER_TEXTS, ...fuzzTexts(300, 11)];
      const mismatches: string[] = [];
      for (const text of texts) {
        for (const parseSpecial of [false, true]) {
          const expected = Array.from(model.tokenize(text, parseSpecial));
          const actual = ours.tokenize(text, { parseSpecial });
          if (JSON.stringify(actual) !== JSON.stringify(expected))
            mismatches.push(`${JSON.stringify(text)} special=${parseSpecial}`);
          for (const special of [false, true]) {
            if (ours.detokenize(expected, { special }) !== model.detokenize(expected as Token[], special)) {
              mismatches.push(`detokenize ${JSON.stringify(text)} special=${special}`);
            }
          }
        }
      }
      expect(mismatches).toEqual([]);
      const bos = ours.vocabulary.bosId;
      expect(ours.tokenize('Hello world', { addSpecial: true })).toEqual([bos, ...model.tokenize('Hello world')]);
    } finally {
      await model.dispose();
    }
  });

  test('SentencePiece prefixes a space, merges by score and falls back to byte tokens', () => {
    const spec = trainedSentencePieceTokenizer();
    const { file } = llamaBaseFixture({ tokenizer: spec });
    const vocabulary = readVocabulary(file);
    const tokenizer = createGgufTokenizer(vocabulary);
    const pieces = (text: string, parseSpecial = false): string[] =>
      tokenizer.tokenize(text, { parseSpecial }).map((id) => vocabulary.tokens[id] ?? '?');
    expect(pieces('the model')).toEqual(['▁the', '▁model']);
    expect(pieces('🦙')).toEqual(['▁', '<0xF0>', '<0x9F>', '<0xA6>', '<0x99>']);
    expect(pieces('a\nb')).toEqual(['▁a', '<0x0A>', 'b']);
    // A special token resets the leading space; user-defined tokens split even without parseSpecial.
    expect(pieces('the<sep>model')).toEqual(['▁the', '<sep>', '▁model']);
    expect(pieces('the</s>model', true)).toEqual(['▁the', '</s>', '▁model']);
    expect(pieces('the</s>model')).not.toContain('</s>');
    expect(tokenizer.tokenize('', { addSpecial: true })).toEqual([1]);
  });

  test('Llama 3 BPE takes whole-word tokens past the merges, and parses control tokens only when asked', () => {
    const spec = trainedBytePairTokenizer();
    const vocabulary = readVocabulary(llamaBaseFixture({ tokenizer: spec }).file);
    const tokenizer = createGgufTokenizer(vocabulary);
    const texts = (text: string, parseSpecial = false): string[] =>
      tokenizer.tokenize(text, { parseSpecial }).map((id) => tokenizer.detokenize([id], { special: true }));
    expect(texts(' xyzzy')).toEqual([' xyzzy']);
    expect(texts('<|eot_id|>', true)).toEqual(['<|eot_id|>']);
    expect(texts('<|eot_id|>').length).toBeGreaterThan(1);
    expect(texts('a<tool_call>b')).toEqual(['a', '<tool_call>', 'b']);
  });

  test('pre-tokenizers split with llama.cpp\u2019s character classes, not the running ICU\u2019s', () => {
    const llama3 = resolvePreTokenizer('llama-bpe');
    expect(preTokenize("Hello world's 1234567 !!\n\n  x", llama3)).toEqual([
      'Hello',
      ' world',
      "'s",
      ' ',
      '123',
      '456',
      '7',
      ' !!\n\n',
      ' ',
      ' x',
    ]);
    expect(preTokenize('ab 12', resolvePreTokenizer('qwen2'))).toEqual(['ab', ' ', '1', '2']);
    // U+1C89 became a letter in Unicode 16; llama.cpp's tables predate it, so it starts the next word.
    if (/\p{L}/u.test('\u1C89')) expect(preTokenize('a\u1C89b', llama3)).toEqual(['a', '\u1C89b']);
    expect(() => resolvePreTokenizer('tekken')).toThrow(/'tekken'/);
  });
});

/** The vocabulary readLlamaBase would return for `file`, without writing it. */
function readVocabulary(file: GgufFile): GgufVocabulary {
  return vocabularyFromMetadata(new Map(Object.entries(file.metadata)));
}
