import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { getLlama, type Llama, type LlamaModel, type Token } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportLoraGguf, exportModelGguf, tokenizerMetadata } from '../../src/train/export.ts';
import { loadGgml } from '../../src/train/ffi/index.ts';
import { readAdapterCheckpoint, readModelCheckpoint } from '../../src/train/job.ts';
import { forwardLogits } from '../../src/train/session.ts';
import { runTraining } from '../../src/train/supervisor.ts';
import { type BpeTokenizer, trainBpe } from '../../src/train/tokenizer.ts';

const CORPUS = new URL('../../src/train/starter/corpus.txt', import.meta.url);
const ADAPTER_TEXT =
  'The retraining pipeline reads thumbs up, thumbs down and corrections, builds a dataset, trains an adapter and registers it.\n';

const VARIED_TEXTS = [
  'How does Bertha answer a question?',
  "It's 2026; don't stop , ok ? Yes . 'quoted' — “curly” …",
  'naïve café, Größe, 中文字符, 日本語のテキスト, 한국어, Ελληνικά, русский, עברית, العربية, हिन्दी',
  'emoji 🙂👍🏽 and ZWJ 👩‍💻, flags 🇫🇷 and symbols ∑∫≠ ∞ €£¥',
  'numbers 0 12 345 6789 3.14159 1e-5 0x1F, mixed abc123def',
  '  leading spaces,\ttabs\t\tand\r\nwindows lines\n\n\nand trailing   ',
  'code: const x = a?.b ?? [1, 2]; // comment\n\tif (x) { return `t${x}`; }',
];

let dir: string;
let llama: Llama;
let model: LlamaModel;
let tokenizer: BpeTokenizer;
let modelGguf: string;
let adapterGguf: string;
let baseCheckpoint: string;
let adapterCheckpoint: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'bertha-train-export-'));
  const corpus = await readFile(CORPUS, 'utf8');
  tokenizer = trainBpe(corpus, 384);
  const tokensFile = async (name: string, text: string) => {
    const file = path.join(dir, name);
    await writeFile(file, Buffer.from(Int32Array.from(tokenizer.encode(text)).buffer));
    return file;
  };
  const common = { batchSize: 2, sequenceLength: 32, learningRate: 1e-2, threads: 1 } as const;
  baseCheckpoint = path.join(dir, 'base.safetensors');
  await runTraining({
    mode: 'full',
    model: {
      vocabSize: tokenizer.tokens.length,
      contextLength: 64,
      embeddingLength: 32,
      blockCount: 2,
      headCount: 2,
      feedForwardLength: 64,
    },
    trainTokens: await tokensFile('corpus.bin', corpus),
    steps: 30,
    output: baseCheckpoint,
    metadata: tokenizerMetadata(tokenizer),
    ...common,
  });
  adapterCheckpoint = path.join(dir, 'adapter.safetensors');
  await runTraining({
    mode: 'lora',
    base: baseCheckpoint,
    lora: { rank: 4, alpha: 8, targets: ['attn_q', 'attn_v', 'ffn_up', 'ffn_down', 'output'] },
    trainTokens: await tokensFile('adapter.bin', ADAPTER_TEXT.repeat(8)),
    steps: 60,
    output: adapterCheckpoint,
    ...common,
  });
  modelGguf = path.join(dir, 'model.gguf');
  adapterGguf = path.join(dir, 'adapter.gguf');
  await exportModelGguf(baseCheckpoint, modelGguf);
  await exportLoraGguf(adapterCheckpoint, adapterGguf);
  llama = await getLlama({ build: 'never', gpu: false, maxThreads: 2 });
  model = await llama.loadModel({ modelPath: modelGguf });
}, 180_000);

afterAll(async () => {
  await model?.dispose();
  await llama?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** log p(next token) for every position, from llama.cpp through node-llama-cpp. */
async function llamaCppLogProbs(sequence: number[], adapter?: string): Promise<Map<Token, number>[]> {
  const context = await model.createContext({
    contextSize: 64,
    // llama.cpp keeps K and V in an F16 cache by default; F32 compares like with like.
    experimentalKvCacheKeyType: 'F32',
    experimentalKvCacheValueType: 'F32',
    ...(adapter ? { lora: { adapters: [{ filePath: adapter }] } } : {}),
  });
  try {
    const out = await context
      .getSequence()
      .controlledEvaluate(sequence.map((t) => [t as Token, { generateNext: { probabilities: true } }]));
    return out.map((o) => new Map([...(o?.next.probabilities ?? new Map())].map(([t, p]) => [t, Math.log(p)])));
  } finally {
    await context.dispose();
  }
}

function logSoftmax(logits: Float32Array): Float64Array {
  let max = Number.NEGATIVE_INFINITY;
  for (const v of logits) max = Math.max(max, v);
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(logits, (v) => v - lse);
}

/**
 * Largest |log p| difference over every token and position. node-llama-cpp hands back
 * probabilities normalised in float32; where one token takes ~all the mass that shifts every
 * other log-probability by up to a few 1e-3, hence the 1e-2 tolerance below.
 */
function maxLogProbDifference(ours: Float32Array[], theirs: Map<Token, number>[]): number {
  let worst = 0;
  ours.forEach((logits, i) => {
    const mine = logSoftmax(logits);
    const reference = theirs[i] as Map<Token, number>;
    expect(reference.size).toBe(logits.length);
    for (const [token, logProb] of reference) worst = Math.max(worst, Math.abs(logProb - (mine[token] as number)));
    const ourBest = mine.indexOf(Math.max(...mine));
    expect(reference.keys().next().value, `most likely token at ${i}`).toBe(ourBest);
  });
  return worst;
}

function perplexity(sequence: number[], logProbs: Map<Token, number>[]): number {
  let total = 0;
  for (let i = 0; i + 1 < sequence.length; i++)
    total += (logProbs[i] as Map<Token, number>).get(sequence[i + 1] as Token) ?? -Infinity;
  return Math.exp(-total / (sequence.length - 1));
}

describe('export to GGUF and agreement with llama.cpp', () => {
  it("tokenizes exactly as llama.cpp's tokenizer and round-trips varied text", () => {
    for (const text of VARIED_TEXTS) {
      const ours = tokenizer.encode(text);
      expect(Array.from(model.tokenize(text)), text).toEqual(ours);
      expect(model.detokenize(ours as Token[]), text).toBe(text);
      expect(tokenizer.decode(ours)).toBe(text);
    }
  });

  it("gives the same next-token distribution as llama.cpp's inference for the base model", async () => {
    const sequence = tokenizer.encode('How does Bertha answer a question? It looks for passages').slice(0, 24);
    const { config, values } = await readModelCheckpoint(baseCheckpoint);
    const ours = await forwardLogits(loadGgml(), { config, base: values, threads: 1 }, Int32Array.from(sequence));
    expect(maxLogProbDifference(ours, await llamaCppLogProbs(sequence))).toBeLessThan(1e-2);
  });

  it('gives the same next-token distribution as llama.cpp for base + LoRA, and the LoRA lowers perplexity on its text', async () => {
    const sequence = tokenizer.encode(ADAPTER_TEXT).slice(0, 40);
    const { config, values } = await readModelCheckpoint(baseCheckpoint);
    const adapter = await readAdapterCheckpoint(adapterCheckpoint);
    const ours = await forwardLogits(
      loadGgml(),
      { config, base: values, lora: { config: adapter.lora, values: adapter.values }, threads: 1 },
      Int32Array.from(sequence),
    );
    const withLora = await llamaCppLogProbs(sequence, adapterGguf);
    expect(maxLogProbDifference(ours, withLora)).toBeLessThan(1e-2);
    const baseOnly = await llamaCppLogProbs(sequence);
    expect(perplexity(sequence, withLora)).toBeLessThan(0.8 * perplexity(sequence, baseOnly));
  });
});
