import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';
import { afterAll, beforeAll, expect, test, vi } from 'vitest';
import { type Decoder, openDecoder } from '../../src/llm/native/decoder.ts';
import { writeTinyLlama } from '../fixtures/tiny-llama.ts';

vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

let dir: string;
let decoder: Decoder;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'bertha-decoder-'));
  const { modelPath } = await writeTinyLlama(dir, { endless: true });
  // node-llama-cpp loads libllama and the CPU backend for this machine; the decoder binds to them.
  await getLlama({ build: 'never', gpu: false, logLevel: LlamaLogLevel.error });
  decoder = await openDecoder({
    modelPath,
    adapters: [],
    gpuLayers: 0,
    sequences: 4,
    sequenceSize: 256,
    batchSize: 512,
    threads: 2,
  });
});

afterAll(async () => {
  await decoder?.close();
  rmSync(dir, { recursive: true, force: true });
});

function greedy(): bigint {
  const { fn } = decoder.lib;
  const chain = fn.sampler_chain_init({ no_perf: true });
  fn.sampler_chain_add(chain, fn.sampler_init_greedy());
  return chain;
}

const prompts = [
  [1, 300, 301, 302],
  [1, 310, 311, 312, 313, 314],
  [1, 320, 321],
  [1, 330, 331, 332, 333],
];

async function generate(seq: number, tokens: number[], maxTokens: number, signal?: AbortSignal) {
  const sampled: number[] = [];
  const result = await decoder.generate({
    seq,
    tokens,
    sampler: greedy(),
    maxTokens,
    signal,
    onToken: (token) => {
      sampled.push(token);
      return true;
    },
  });
  return { sampled, result };
}

test('running sequences decode together, one llama_decode per step, with the answers each gives alone', async () => {
  const alone: number[][] = [];
  for (const [seq, prompt] of prompts.entries()) {
    // Nothing cached: each answer comes from its prompt alone.
    alone.push((await generate(seq, [...prompt], 24)).sampled);
    await decoder.score({ seq, tokens: [2], scoreFrom: 0, reuseAtMost: 0, onScore: () => undefined });
  }
  const before = decoder.stats.decodes;
  const batchedFrom = decoder.stats.sequencesPerDecode.length;
  const together = await Promise.all(prompts.map((prompt, seq) => generate(seq, [...prompt], 24)));
  const decodes = decoder.stats.decodes - before;
  // The four prompts go in the first batch; every later step carries one token of each sequence.
  // The last sampled token is never evaluated, so 24 tokens need 24 decodes in all.
  expect(decodes).toBe(24);
  expect(decoder.stats.sequencesPerDecode.slice(batchedFrom).every((count) => count === 4)).toBe(true);
  expect(together.map(({ sampled }) => sampled)).toEqual(alone);
});

test('a sequence reuses the prompt it holds; a score of the same tokens gives the logits generation sampled from', async () => {
  const prompt = [1, 340, 341, 342, 343, 344];
  const first = await generate(0, prompt, 4);
  const again = await generate(0, prompt, 4);
  // Only BOS is shared with what the sequence held before.
  expect(first.result.reused).toBe(1);
  // All but the last prompt token: its output is what sampling needs.
  expect(again.result.reused).toBe(prompt.length - 1);
  expect(again.sampled).toEqual(first.sampled);

  let argmax = -1;
  await decoder.score({
    seq: 1,
    tokens: prompt,
    scoreFrom: prompt.length - 1,
    onScore: (_position, output) => {
      const logits = output.logits();
      argmax = logits.indexOf(Math.max(...logits));
    },
  });
  expect(argmax).toBe(first.sampled[0]);
});

test('an aborted generation stops at the next step and leaves its sequence usable', async () => {
  const controller = new AbortController();
  const sampled: number[] = [];
  const result = await decoder.generate({
    seq: 2,
    tokens: [1, 350, 351],
    sampler: greedy(),
    maxTokens: 200,
    signal: controller.signal,
    onToken: (token) => {
      sampled.push(token);
      if (sampled.length === 5) controller.abort();
      return true;
    },
  });
  expect(result.cancelled).toBe(true);
  expect(sampled.length).toBe(5);
  const next = await generate(2, [1, 350, 351], 3);
  expect(next.sampled.length).toBe(3);
  expect(next.result.cancelled).toBe(false);
});

test('a generation aborted before its first step still leaves its sequence consistent for the next one', async () => {
  await generate(3, [1, 360, 361, 362, 363], 4);
  // Shares only BOS with what sequence 3 holds: the rest is dropped before anything runs.
  const aborted = await generate(3, [1, 370, 371], 4, AbortSignal.abort());
  expect(aborted.result.cancelled).toBe(true);
  expect(aborted.sampled).toEqual([]);
  expect(decoder.held(3)).toEqual([1]);
  const next = await generate(3, [1, 380, 381, 382], 3);
  expect(next.result.reused).toBe(1);
  expect(next.sampled.length).toBe(3);
});
