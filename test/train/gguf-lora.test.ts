import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Llama, Token } from 'node-llama-cpp';
import { getLlama } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { GgufTensorType } from '../../src/gguf/index.ts';
import { createGgufTokenizer, openGguf, readGgufHeader, readLlamaBase } from '../../src/gguf/index.ts';
import { loadGgml } from '../../src/train/ffi/index.ts';
import { createGgufLoraTrainer, ggufLoraTensorSpecs, readGgufLoraAdapter } from '../../src/train/gguf-lora.ts';
import { runTraining } from '../../src/train/supervisor.ts';
import { type TinyLlamaOptions, writeTinyLlama } from '../fixtures/tiny-llama.ts';
import { tempDir } from '../helpers/temp.ts';

const SENTENCES = [
  'the answer is in the knowledge base and you are on it',
  'that was for you and it is on the way to the answer',
  'you are the one that is in it for the answer',
  'it was on the way and the answer is for you',
];
const T = 24;
const BIN = resolve('bin/bertha.js');
/**
 * llama.cpp with the adapter against the trainer's own forward pass, on next-token probabilities: KL divergence
 * in nats and the largest absolute difference. Measured: KL 5e-7 (F32) to 1.1e-4 (Q4_0), abs 3e-5 to 5.7e-3;
 * llama.cpp keeps K and V in F16, the trainer in F32.
 */
const KL_TOLERANCE = 1e-3;
const PROBABILITY_TOLERANCE = 1e-2;

let llama: Llama;
beforeAll(async () => {
  llama = await getLlama({ build: 'never', gpu: false, maxThreads: 1 });
});
afterAll(async () => {
  await llama?.dispose();
});

const sha256 = async (file: string) =>
  createHash('sha256')
    .update(await readFile(file))
    .digest('hex');

interface Case {
  type: GgufTensorType;
  label?: string;
  fixture?: TinyLlamaOptions;
  /** 30 unless set: twelve random blocks take longer to bend. */
  steps?: number;
}

/** A tiny GGUF written in `type`, grouped-query attention (4 query heads on 2 K/V heads) unless the fixture says otherwise. */
async function fixture(dir: string, { type, fixture: options = {} }: Case) {
  const blockRows = type === 'Q4_K' || type === 'Q6_K';
  return writeTinyLlama(dir, {
    weightType: type,
    ...options,
    shape: { ...(blockRows ? { nEmbd: 256, nFf: 512 } : {}), ...options.shape },
  });
}

async function tokensOf(modelPath: string, texts: string[]): Promise<Int32Array> {
  const base = await readLlamaBase(modelPath);
  const tokenizer = createGgufTokenizer(base.vocabulary);
  return Int32Array.from(texts.flatMap((text) => [1, ...tokenizer.tokenize(`${text}\n`)]));
}

/** Next-token probabilities after `input`, by llama.cpp with the adapter loaded. */
async function llamaCppProbabilities(modelPath: string, adapterPath: string, input: number[]) {
  const model = await llama.loadModel({ modelPath });
  const context = await model.createContext({ contextSize: 64, lora: { adapters: [{ filePath: adapterPath }] } });
  try {
    const results = await context
      .getSequence()
      .controlledEvaluate(
        input.map((token, i) =>
          i === input.length - 1 ? [token as Token, { generateNext: { probabilities: true } }] : (token as Token),
        ),
      );
    return results[input.length - 1]?.next.probabilities ?? new Map<Token, number>();
  } finally {
    await context.dispose();
    await model.dispose();
  }
}

/** The same probabilities through the trainer's graph on the base and the trained adapter. */
async function trainerProbabilities(modelPath: string, adapterPath: string, input: number[]): Promise<Float64Array> {
  const base = await readLlamaBase(modelPath);
  const adapter = await readGgufLoraAdapter(adapterPath, base);
  const reader = await openGguf(modelPath);
  const trainer = await createGgufLoraTrainer(loadGgml(), {
    base,
    reader,
    lora: adapter,
    sequenceLength: input.length,
    batchSize: 1,
    threads: 1,
    learningRate: 1e-3,
  });
  try {
    const logits = await trainer.logits(Int32Array.from(input));
    const V = base.hparams.nVocab;
    const last = logits.subarray((input.length - 1) * V, input.length * V);
    const max = Math.max(...last);
    const exp = Float64Array.from(last, (v) => Math.exp(v - max));
    const sum = exp.reduce((a, b) => a + b, 0);
    return exp.map((v) => v / sum);
  } finally {
    trainer.free();
    await reader.close();
  }
}

describe('LoRA on a served GGUF, frozen in its stored type', () => {
  test.for<Case>([
    { type: 'F32', label: 'F32, 2 blocks, 4 query heads on 2 K/V heads' },
    { type: 'F16', label: 'F16, 2 blocks, 4 query heads on 2 K/V heads' },
    { type: 'Q8_0', label: 'Q8_0, 2 blocks, 4 query heads on 2 K/V heads' },
    { type: 'Q4_0', label: 'Q4_0, 2 blocks, 4 query heads on 2 K/V heads' },
    { type: 'Q4_K', label: 'Q4_K, 2 blocks, 4 query heads on 2 K/V heads' },
    { type: 'Q6_K', label: 'Q6_K, 2 blocks, 4 query heads on 2 K/V heads' },
    // More blocks than ggml-opt's static graph holds (8), a tied head, and no grouping.
    {
      type: 'Q8_0',
      label: 'Q8_0, 12 blocks, tied head',
      fixture: { shape: { nLayer: 12, nHeadKv: 4 }, tiedEmbeddings: true },
      steps: 80,
    },
  ])(
    '$label: loss and held-out loss fall, the base is untouched, and llama.cpp with the adapter gives the trainer’s probabilities',
    { timeout: 120_000 },
    async (c: Case) => {
      const dir = tempDir();
      const tiny = await fixture(dir, c);
      const before = await sha256(tiny.modelPath);
      const trainTokens = join(dir, 'train.tokens');
      const validTokens = join(dir, 'valid.tokens');
      await writeFile(trainTokens, Buffer.from((await tokensOf(tiny.modelPath, [...SENTENCES, ...SENTENCES])).buffer));
      await writeFile(validTokens, Buffer.from((await tokensOf(tiny.modelPath, [...SENTENCES].reverse())).buffer));
      const output = join(dir, 'adapter.gguf');
      const targets = c.fixture?.tiedEmbeddings
        ? (['attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_gate', 'ffn_up', 'ffn_down'] as const)
        : (['attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_gate', 'ffn_up', 'ffn_down', 'output'] as const);
      const steps = c.steps ?? 30;
      const progress: number[] = [];
      const result = await runTraining(
        {
          mode: 'gguf-lora',
          baseGguf: tiny.modelPath,
          lora: { rank: 4, alpha: 8, targets: [...targets] },
          trainTokens,
          validTokens,
          steps,
          batchSize: 2,
          sequenceLength: T,
          learningRate: 1e-2,
          threads: 1,
          output,
        },
        { onProgress: (p) => progress.push(p.step) },
      );
      expect(progress).toEqual(Array.from({ length: steps }, (_, i) => i + 1));
      expect(result.lossCurve).toHaveLength(steps);
      expect(result.finalLoss).toBeLessThan((result.lossCurve[0] as number) * 0.6);
      expect(result.finalValidLoss).toBeLessThan((result.initialValidLoss as number) * 0.8);
      expect(result.validCurve.map((p) => p.step)).toEqual([0, steps]);
      expect(result.lora).toEqual({ rank: 4, alpha: 8, targets: [...targets] });
      expect(await sha256(tiny.modelPath)).toBe(before);

      const base = await readLlamaBase(tiny.modelPath);
      const adapterParameters = ggufLoraTensorSpecs(base, result.lora ?? { rank: 4, alpha: 8, targets: [] }).reduce(
        (n, s) => n + (s.shape[0] as number) * (s.shape[1] as number),
        0,
      );
      expect(result.trainableParameters).toBe(adapterParameters);
      expect(result.outputBytes).toBeGreaterThan(adapterParameters * 4);
      const header = await readGgufHeader(output);
      expect(header.metadata.get('general.type')?.value).toBe('adapter');
      expect(header.tensors.every((t) => t.type === 'F32')).toBe(true);

      const input = [...(await tokensOf(tiny.modelPath, [SENTENCES[0] as string])).subarray(0, 12)];
      const expected = await trainerProbabilities(tiny.modelPath, output, input);
      const actual = await llamaCppProbabilities(tiny.modelPath, output, input);
      let worst = 0;
      let kl = 0;
      for (let token = 0; token < expected.length; token++) {
        const p = expected[token] as number;
        const q = actual.get(token as Token) ?? 0;
        worst = Math.max(worst, Math.abs(p - q));
        if (p > 0 && q > 0) kl += p * Math.log(p / q);
      }
      expect(kl).toBeLessThan(KL_TOLERANCE);
      expect(worst).toBeLessThan(PROBABILITY_TOLERANCE);
      const argmax = expected.indexOf(Math.max(...expected));
      expect([...actual.keys()][0]).toBe(argmax);
      // The adapter changed what the model predicts: a random base spreads ~1/V over every token.
      expect(expected[argmax]).toBeGreaterThan(50 / expected.length);
    },
  );

  test('training continues from an adapter: its rank, alpha and targets, and its values as the start', async () => {
    const dir = tempDir();
    const tiny = await fixture(dir, { type: 'Q8_0' });
    const tokens = join(dir, 'train.tokens');
    await writeFile(tokens, Buffer.from((await tokensOf(tiny.modelPath, SENTENCES)).buffer));
    const common = {
      mode: 'gguf-lora',
      baseGguf: tiny.modelPath,
      trainTokens: tokens,
      batchSize: 2,
      sequenceLength: T,
      learningRate: 1e-2,
      threads: 1,
    } as const;
    const first = await runTraining({
      ...common,
      lora: { rank: 4, alpha: 8, targets: ['attn_q', 'ffn_up', 'output'] },
      steps: 30,
      output: join(dir, 'first.gguf'),
    });
    const second = await runTraining({
      ...common,
      lora: { rank: 8, alpha: 16, targets: ['attn_v'] },
      initAdapter: join(dir, 'first.gguf'),
      steps: 5,
      output: join(dir, 'second.gguf'),
    });
    expect(second.lora).toEqual({ rank: 4, alpha: 8, targets: ['attn_q', 'ffn_up', 'output'] });
    // A fresh adapter starts at the base's loss; a continued one where the first left off.
    expect(first.finalLoss).toBeLessThan((first.lossCurve[0] as number) * 0.6);
    expect(second.lossCurve[0]).toBeLessThan(((first.lossCurve[0] as number) + first.finalLoss) / 2);
  }, 120_000);

  test('refusals: an output adapter on a tied head, and an adapter that does not fit the base', async () => {
    const dir = tempDir();
    const tied = await fixture(dir, { type: 'F32', fixture: { tiedEmbeddings: true, fileName: 'tied.gguf' } });
    const base = await readLlamaBase(tied.modelPath);
    expect(() => ggufLoraTensorSpecs(base, { rank: 2, alpha: 4, targets: ['output'] })).toThrow(
      /ties its output projection to token_embd.weight/,
    );
    const tokens = join(dir, 'train.tokens');
    await writeFile(tokens, Buffer.from((await tokensOf(tied.modelPath, SENTENCES)).buffer));
    await expect(
      runTraining({
        mode: 'gguf-lora',
        baseGguf: tied.modelPath,
        lora: { rank: 2, alpha: 4, targets: ['output'] },
        trainTokens: tokens,
        steps: 1,
        batchSize: 1,
        sequenceLength: 8,
        learningRate: 1e-2,
        output: join(dir, 'never.gguf'),
      }),
    ).rejects.toThrow(/ties its output projection/);
    const other = await fixture(dir, { type: 'F32', fixture: { shape: { nEmbd: 32 }, fileName: 'other.gguf' } });
    const otherTokens = join(dir, 'other.tokens');
    await writeFile(otherTokens, Buffer.from((await tokensOf(other.modelPath, SENTENCES)).buffer));
    await runTraining({
      mode: 'gguf-lora',
      baseGguf: other.modelPath,
      lora: { rank: 2, alpha: 4, targets: ['attn_q'] },
      trainTokens: otherTokens,
      steps: 1,
      batchSize: 1,
      sequenceLength: 8,
      learningRate: 1e-2,
      output: join(dir, 'other-adapter.gguf'),
    });
    await expect(readGgufLoraAdapter(join(dir, 'other-adapter.gguf'), base)).rejects.toThrow(
      /does not adapt every block/,
    );
  }, 60_000);

  test('`bertha train lora --base <gguf>` writes an adapter llama.cpp loads', async () => {
    const dir = tempDir();
    const tiny = await fixture(dir, { type: 'Q4_0' });
    const text = join(dir, 'notes.txt');
    await writeFile(text, SENTENCES.join('\n').repeat(4));
    const out = join(dir, 'out');
    const child = spawnSync(
      process.execPath,
      [
        BIN,
        'train',
        'lora',
        text,
        '--base',
        tiny.modelPath,
        '-o',
        out,
        '--steps',
        '12',
        '--data-dir',
        join(dir, 'data'),
      ],
      { encoding: 'utf8', timeout: 90_000 },
    );
    expect(child.status, child.stderr).toBe(0);
    expect(child.stdout.trim()).toBe(join(out, 'adapter.gguf'));
    expect(child.stderr).toMatch(/final loss \d+\.\d+, \d+ tokens\/s, peak memory \d+ MiB/);
    const header = await readGgufHeader(join(out, 'adapter.gguf'));
    expect(header.metadata.get('adapter.type')?.value).toBe('lora');
    const probabilities = await llamaCppProbabilities(tiny.modelPath, join(out, 'adapter.gguf'), [1, 300, 301]);
    expect(probabilities.size).toBeGreaterThan(0);
  }, 120_000);
});
