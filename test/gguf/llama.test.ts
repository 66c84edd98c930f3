import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Llama, LlamaModel, Token } from 'node-llama-cpp';
import { getLlama, LlamaChatSession, resolveChatWrapper } from 'node-llama-cpp';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { LlamaHyperparameters, LlamaModelSpec } from '../../src/gguf/index.ts';
import {
  BYTE_LEVEL_CHARS,
  buildLlamaGguf,
  byteLevelText,
  GgufError,
  LLAMA2_CHAT_TEMPLATE,
  llamaTensorShapes,
  writeLlamaGguf,
} from '../../src/gguf/index.ts';
import type { TinyLlama } from '../fixtures/tiny-llama.ts';
import { tinyBytePairTokenizer, tinySentencePieceTokenizer, writeTinyLlama } from '../fixtures/tiny-llama.ts';

let dir: string;
let llama: Llama;
let tiny: TinyLlama;
let model: LlamaModel;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bertha-gguf-llama-'));
  llama = await getLlama({ build: 'never', gpu: false, maxThreads: 2 });
  tiny = await writeTinyLlama(dir);
  model = await llama.loadModel({ modelPath: tiny.modelPath });
});
afterAll(async () => {
  await model?.dispose();
  await llama?.dispose();
  await rm(dir, { recursive: true, force: true });
});

const SAMPLES = [
  'Hello world',
  'the answer is 42.',
  '  leading and trailing spaces  ',
  'Hello , world . it \'s "quoted"',
  'unicode: héllo wörld — ünïcode ✓ 日本語 Ελληνικά',
  'emoji 🦙🚀 and a family 👨‍👩‍👧 flag 🇩🇪',
  'tabs\tand\nnew\r\nlines\n\n',
  'bytes \u0000 \u007f \u00ff',
];

test('the tiny model is a few hundred KB and node-llama-cpp reads its hyperparameters', () => {
  expect(tiny.bytes).toBeLessThan(700_000);
  expect(model.fileInfo.metadata.general.architecture).toBe('llama');
  expect(model.trainContextSize).toBe(512);
  expect(model.embeddingVectorSize).toBe(64);
  expect(model.fileInfo.metadata.tokenizer.chat_template).toBe(LLAMA2_CHAT_TEMPLATE);
  expect(model.tokens.bosString).toBe('<s>');
  expect(model.tokens.eosString).toBe('</s>');
});

test('the fixture is deterministic for a seed', async () => {
  const again = await writeTinyLlama(dir, { fileName: 'again.gguf' });
  const other = await writeTinyLlama(dir, { fileName: 'other.gguf', seed: 2 });
  const [first, second, third] = await Promise.all([tiny, again, other].map((m) => readFile(m.modelPath)));
  expect(first?.equals(second ?? Buffer.alloc(0))).toBe(true);
  expect(first?.equals(third ?? Buffer.alloc(0))).toBe(false);
});

test.each(SAMPLES)('SentencePiece tokenize/detokenize round-trips %j', (text) => {
  const tokens = model.tokenize(text);
  expect(tokens.length).toBeGreaterThan(0);
  expect(model.detokenize(tokens)).toBe(text);
});

test('SentencePiece uses word pieces and falls back to bytes for unknown characters', () => {
  const pieces = (text: string): string[] => model.tokenize(text).map((token) => tiny.tokenizer.tokens[token] ?? '');
  expect(pieces('hello world')).toEqual(['▁hello', '▁world']);
  // '日' is 3 UTF-8 bytes, none of them a piece: three <0xNN> byte tokens.
  expect(model.tokenize('日').length).toBe(4);
});

test('resolveChatWrapper recognises the Llama 2 template as node-llama-cpp Llama2Chat', () => {
  const wrapper = resolveChatWrapper({
    bosString: model.tokens.bosString,
    filename: model.filename,
    fileInfo: model.fileInfo,
    tokenizer: model.tokenizer,
  });
  expect(wrapper?.wrapperName).toBe('Llama2Chat');
});

test('a chat session generates tokens from the random weights', async () => {
  const context = await model.createContext({ contextSize: 256 });
  try {
    const session = new LlamaChatSession({ contextSequence: context.getSequence() });
    expect(session.chatWrapper.wrapperName).toBe('Llama2Chat');
    let generated = 0;
    await session.prompt('Hello, who are you?', {
      maxTokens: 12,
      temperature: 0,
      onToken: (tokens) => {
        generated += tokens.length;
      },
    });
    expect(generated).toBeGreaterThan(0);
  } finally {
    await context.dispose();
  }
});

test('llama.cpp next-token probabilities match a reference forward pass over the row-major weights', async () => {
  const spec = tinySpec(7);
  const path = join(dir, 'reference.gguf');
  await writeLlamaGguf(path, spec);
  const reference = await llama.loadModel({ modelPath: path });
  const context = await reference.createContext({ contextSize: 64 });
  try {
    const input = [1, 300, 42, 380, 7] as Token[];
    const [, , , , last] = await context
      .getSequence()
      .controlledEvaluate(
        input.map((token, i) => (i === input.length - 1 ? [token, { generateNext: { probabilities: true } }] : token)),
      );
    const probabilities = last?.next.probabilities;
    expect(probabilities?.size).toBe(spec.hparams.nVocab);
    const expected = referenceProbabilities(spec, input);
    let maxError = 0;
    for (const [token, probability] of probabilities ?? [])
      maxError = Math.max(maxError, Math.abs(probability - (expected[token] ?? 0)));
    expect(maxError).toBeLessThan(1e-4);
    expect([...(probabilities?.keys() ?? [])][0]).toBe(argmax(expected));
  } finally {
    await context.dispose();
    await reference.dispose();
  }
});

test('F16 weights load and generate', async () => {
  const half = await writeTinyLlama(dir, { weightType: 'F16', fileName: 'tiny-f16.gguf' });
  expect(half.bytes).toBeLessThan(tiny.bytes * 0.6);
  const halfModel = await llama.loadModel({ modelPath: half.modelPath });
  const context = await halfModel.createContext({ contextSize: 128 });
  try {
    const session = new LlamaChatSession({ contextSequence: context.getSequence() });
    let generated = 0;
    await session.prompt('Hello', {
      maxTokens: 4,
      temperature: 0,
      onToken: (tokens) => {
        generated += tokens.length;
      },
    });
    expect(generated).toBeGreaterThan(0);
  } finally {
    await context.dispose();
    await halfModel.dispose();
  }
});

test('byte-level BPE (gpt2, pre qwen2) round-trips text and applies the merges', async () => {
  const bpe = await writeTinyLlama(dir, { tokenizer: 'gpt2', fileName: 'tiny-bpe.gguf' });
  const bpeModel = await llama.loadModel({ modelPath: bpe.modelPath });
  try {
    for (const text of SAMPLES) expect(bpeModel.detokenize(bpeModel.tokenize(text))).toBe(text);
    const pieces = bpeModel.tokenize('hello the world').map((token) => bpeModel.detokenize([token]));
    expect(pieces).toEqual(['hello', ' the', ' world']);
    expect(bpeModel.tokens.bosString).toBe('<s>');
  } finally {
    await bpeModel.dispose();
  }
});

test('byteLevelText spells bytes with GPT-2 byte-to-unicode characters', () => {
  expect(byteLevelText(' the')).toBe('Ġthe');
  expect(byteLevelText('\n')).toBe('Ċ');
  expect(byteLevelText('é')).toBe('Ã©');
  expect(new Set(BYTE_LEVEL_CHARS).size).toBe(256);
});

test('llama validation rejects inconsistent models before writing', () => {
  const spec = tinySpec(1);
  const without = (name: string): Map<string, Float32Array> => {
    const tensors = new Map(spec.tensors as Map<string, Float32Array>);
    tensors.delete(name);
    return tensors;
  };
  const cases: LlamaModelSpec[] = [
    { ...spec, tensors: without('blk.1.ffn_down.weight') },
    {
      ...spec,
      tensors: new Map([...(spec.tensors as Map<string, Float32Array>), ['blk.9.attn_q.weight', new Float32Array(1)]]),
    },
    {
      ...spec,
      tensors: new Map([...(spec.tensors as Map<string, Float32Array>), ['output_norm.weight', new Float32Array(3)]]),
    },
    { ...spec, hparams: { ...spec.hparams, nHead: 3 } },
    { ...spec, hparams: { ...spec.hparams, nHeadKv: 3 } },
    { ...spec, hparams: { ...spec.hparams, nVocab: spec.hparams.nVocab + 1 } },
    { ...spec, tokenizer: { ...tinySentencePieceTokenizer(), bosId: 10_000 } },
    {
      ...spec,
      tokenizer: {
        ...tinySentencePieceTokenizer(),
        tokens: ['<unk>', '<unk>', ...tinySentencePieceTokenizer().tokens.slice(2)],
      },
    },
    { ...spec, tokenizer: { ...tinySentencePieceTokenizer(), scores: [] } },
  ];
  for (const invalid of cases) expect(() => buildLlamaGguf(invalid)).toThrow(GgufError);

  const bpe = tinyBytePairTokenizer();
  const bpeHparams: LlamaHyperparameters = { ...spec.hparams, nVocab: bpe.tokens.length };
  const bpeCases = [
    { ...bpe, merges: ['h x'] },
    { ...bpe, merges: ['hello'] },
    { ...bpe, tokens: bpe.tokens.map((token) => (token === BYTE_LEVEL_CHARS[0x41] ? '<unused>' : token)) },
  ];
  for (const tokenizer of bpeCases) {
    expect(() => buildLlamaGguf({ ...spec, hparams: bpeHparams, tokenizer, tensors: new Map() })).toThrow(GgufError);
  }
});

function tinySpec(seed: number): LlamaModelSpec & { tensors: Map<string, Float32Array> } {
  const tokenizer = tinySentencePieceTokenizer();
  const hparams: LlamaHyperparameters = {
    nVocab: tokenizer.tokens.length,
    nCtx: 256,
    nEmbd: 32,
    nLayer: 2,
    nHead: 4,
    nHeadKv: 2,
    nFf: 48,
    ropeFreqBase: 10000,
    rmsEps: 1e-5,
  };
  let state = seed;
  const random = (): number => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31 - 0.5;
  };
  const tensors = new Map<string, Float32Array>();
  // Norm weights are random too, so a mix-up between two of them shows in the probabilities.
  for (const [name, shape] of llamaTensorShapes(hparams)) {
    tensors.set(
      name,
      Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => random() * 1.5),
    );
  }
  return { hparams, tokenizer, tensors };
}

/**
 * Llama forward pass written from the architecture, independent of llama.cpp: RMSNorm, "normal" RoPE on
 * adjacent pairs, grouped-query causal attention, SwiGLU, untied output. Weights are row-major [out, in].
 */
function referenceProbabilities(
  spec: LlamaModelSpec & { tensors: Map<string, Float32Array> },
  input: number[],
): number[] {
  const { nEmbd, nHead, nHeadKv, nLayer, nFf, nVocab, ropeFreqBase, rmsEps } = spec.hparams;
  const w = (name: string): Float32Array => spec.tensors.get(name) ?? new Float32Array();
  const headDim = nEmbd / nHead;
  const matVec = (m: Float32Array, x: number[], out: number): number[] =>
    Array.from({ length: out }, (_, o) => x.reduce((sum, xi, i) => sum + (m[o * x.length + i] ?? 0) * xi, 0));
  const rmsNorm = (x: number[], g: Float32Array): number[] => {
    const scale = 1 / Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length + rmsEps);
    return x.map((v, i) => v * scale * (g[i] ?? 0));
  };
  const rope = (x: number[], heads: number, pos: number): number[] => {
    const out = [...x];
    for (let h = 0; h < heads; h++) {
      for (let j = 0; j < headDim; j += 2) {
        const theta = pos * ropeFreqBase ** (-j / headDim);
        const a = x[h * headDim + j] ?? 0;
        const b = x[h * headDim + j + 1] ?? 0;
        out[h * headDim + j] = a * Math.cos(theta) - b * Math.sin(theta);
        out[h * headDim + j + 1] = a * Math.sin(theta) + b * Math.cos(theta);
      }
    }
    return out;
  };
  const embedding = w('token_embd.weight');
  let xs = input.map((token) => Array.from(embedding.subarray(token * nEmbd, (token + 1) * nEmbd)));
  for (let l = 0; l < nLayer; l++) {
    const normed = xs.map((x) => rmsNorm(x, w(`blk.${l}.attn_norm.weight`)));
    const qs = normed.map((x, pos) => rope(matVec(w(`blk.${l}.attn_q.weight`), x, nEmbd), nHead, pos));
    const ks = normed.map((x, pos) => rope(matVec(w(`blk.${l}.attn_k.weight`), x, headDim * nHeadKv), nHeadKv, pos));
    const vs = normed.map((x) => matVec(w(`blk.${l}.attn_v.weight`), x, headDim * nHeadKv));
    xs = xs.map((x, pos) => {
      const attended = new Array<number>(nEmbd).fill(0);
      for (let h = 0; h < nHead; h++) {
        const kvHead = Math.floor(h / (nHead / nHeadKv));
        const scores = ks.slice(0, pos + 1).map((k) => {
          let dot = 0;
          for (let d = 0; d < headDim; d++) dot += (qs[pos]?.[h * headDim + d] ?? 0) * (k[kvHead * headDim + d] ?? 0);
          return dot / Math.sqrt(headDim);
        });
        const weights = softmax(scores);
        weights.forEach((p, t) => {
          for (let d = 0; d < headDim; d++)
            attended[h * headDim + d] = (attended[h * headDim + d] ?? 0) + p * (vs[t]?.[kvHead * headDim + d] ?? 0);
        });
      }
      const projected = matVec(w(`blk.${l}.attn_output.weight`), attended, nEmbd);
      return x.map((v, i) => v + (projected[i] ?? 0));
    });
    xs = xs.map((x) => {
      const h = rmsNorm(x, w(`blk.${l}.ffn_norm.weight`));
      const gate = matVec(w(`blk.${l}.ffn_gate.weight`), h, nFf);
      const up = matVec(w(`blk.${l}.ffn_up.weight`), h, nFf);
      const down = matVec(
        w(`blk.${l}.ffn_down.weight`),
        gate.map((g, i) => (g / (1 + Math.exp(-g))) * (up[i] ?? 0)),
        nEmbd,
      );
      return x.map((v, i) => v + (down[i] ?? 0));
    });
  }
  const last = rmsNorm(xs[xs.length - 1] ?? [], w('output_norm.weight'));
  return softmax(matVec(w('output.weight'), last, nVocab));
}

function softmax(values: number[]): number[] {
  const max = Math.max(...values);
  const exps = values.map((v) => Math.exp(v - max));
  const total = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / total);
}

function argmax(values: number[]): number {
  return values.reduce((best, v, i) => (v > (values[best] ?? -Infinity) ? i : best), 0);
}
