import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Llama, LlamaContext, LlamaModel } from 'node-llama-cpp';
import { getLlama, readGgufFileInfo } from 'node-llama-cpp';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { buildLoraGguf, GgufError } from '../../src/gguf/index.ts';
import type { TinyLlama } from '../fixtures/tiny-llama.ts';
import { writeTinyLlama, writeTinyLora } from '../fixtures/tiny-llama.ts';

let dir: string;
let llama: Llama;
let tiny: TinyLlama;
let model: LlamaModel;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bertha-gguf-lora-'));
  llama = await getLlama({ build: 'never', gpu: false, maxThreads: 2 });
  tiny = await writeTinyLlama(dir);
  model = await llama.loadModel({ modelPath: tiny.modelPath });
});
afterAll(async () => {
  await model?.dispose();
  await llama?.dispose();
  await rm(dir, { recursive: true, force: true });
});

async function nextTokenProbabilities(context: LlamaContext): Promise<Map<number, number>> {
  const input = model.tokenize('the answer is', true);
  const results = await context
    .getSequence()
    .controlledEvaluate(
      input.map((token, i) => (i === input.length - 1 ? [token, { generateNext: { probabilities: true } }] : token)),
    );
  return results[input.length - 1]?.next.probabilities ?? new Map();
}

test('the adapter carries the metadata llama-adapter.cpp requires', async () => {
  const { adapterPath, bytes } = await writeTinyLora(dir, tiny.hparams);
  expect(bytes).toBeLessThan(20_000);
  const info = await readGgufFileInfo(adapterPath);
  const metadata = info.metadata as unknown as { general: Record<string, unknown>; adapter: Record<string, unknown> };
  expect(metadata.general.type).toBe('adapter');
  expect(metadata.general.architecture).toBe('llama');
  expect(metadata.adapter).toEqual({ type: 'lora', lora: { alpha: 4 } });
  const q = info.tensorInfo?.filter((t) => t.name.startsWith('blk.0.attn_q.'));
  expect(q?.map((t) => [t.name, t.dimensions.map(Number)])).toEqual([
    ['blk.0.attn_q.weight.lora_a', [64, 4]],
    ['blk.0.attn_q.weight.lora_b', [4, 64]],
  ]);
});

test('llama.cpp loads the adapter and it changes the next-token distribution', async () => {
  const { adapterPath } = await writeTinyLora(dir, tiny.hparams, { projections: ['attn_q', 'attn_v', 'ffn_down'] });
  const plain = await model.createContext({ contextSize: 64 });
  const adapted = await model.createContext({ contextSize: 64, lora: { adapters: [{ filePath: adapterPath }] } });
  try {
    const before = await nextTokenProbabilities(plain);
    const after = await nextTokenProbabilities(adapted);
    let change = 0;
    for (const [token, probability] of before) change += Math.abs(probability - (after.get(token) ?? 0));
    expect(change).toBeGreaterThan(0.05);
    // The base model is unchanged for contexts without the adapter.
    const again = await model.createContext({ contextSize: 64 });
    try {
      expect([...(await nextTokenProbabilities(again))]).toEqual([...before]);
    } finally {
      await again.dispose();
    }
  } finally {
    await adapted.dispose();
    await plain.dispose();
  }
});

test('LoRA validation catches shapes llama.cpp would refuse at load time', () => {
  const weight = { target: 'blk.0.attn_k.weight', rank: 2, a: new Float32Array(2 * 64), b: new Float32Array(64 * 2) };
  // attn_k is [n_head_kv * head_dim, n_embd] = [32, 64] in the tiny model, not [64, 64].
  expect(() => buildLoraGguf({ alpha: 2, weights: [weight], base: tiny.hparams })).toThrow(GgufError);
  expect(() =>
    buildLoraGguf({ alpha: 2, weights: [{ ...weight, target: 'blk.0.attn_norm.weight' }], base: tiny.hparams }),
  ).toThrow(GgufError);
  expect(() => buildLoraGguf({ alpha: 2, weights: [{ ...weight, target: 'token_embd.weight' }] })).toThrow(GgufError);
  expect(() => buildLoraGguf({ alpha: 2, weights: [{ ...weight, rank: 3 }] })).toThrow(GgufError);
  expect(() => buildLoraGguf({ alpha: 0, weights: [weight] })).toThrow(GgufError);
  expect(() => buildLoraGguf({ alpha: 2, weights: [] })).toThrow(GgufError);
  expect(
    buildLoraGguf({ alpha: 2, weights: [{ ...weight, b: new Float32Array(32 * 2) }], base: tiny.hparams }).tensors,
  ).toHaveLength(2);
});
