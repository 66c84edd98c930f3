import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { getLlama } from 'node-llama-cpp';
import { afterAll, beforeAll, expect, test, vi } from 'vitest';
import { createLogger } from '../../src/core/logger.ts';
import { createLlamaCppRuntime } from '../../src/llm/llama-cpp.ts';
import type { LlmRuntime } from '../../src/llm/runtime.ts';
import { writeTinyLlama } from '../fixtures/tiny-llama.ts';

vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });

let dir: string;
let modelPath: string;

function runtimeOn(contextSize: number): LlmRuntime {
  return createLlamaCppRuntime({
    modelPath,
    maxThreads: 1,
    gpu: 'off',
    parallel: 1,
    contextSize,
    batchSize: 512,
    defaults: { temperature: 0, topP: 1, maxTokens: 12 },
    logger: createLogger('warn'),
  });
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'bertha-loglik-'));
  ({ modelPath } = await writeTinyLlama(dir));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The same sum computed the plain way: a fresh sequence, softmax of every position's logits. */
async function referenceLogprob(context: string, continuation: string): Promise<number> {
  const llama = await getLlama({ build: 'never', gpu: false, maxThreads: 1 });
  const model = await llama.loadModel({ modelPath });
  const context_ = await model.createContext({ contextSize: 256, sequences: 1 });
  try {
    const bos = model.tokens.bos === null ? [] : [model.tokens.bos];
    const head = [...bos, ...model.tokenize(context)];
    const whole = [...bos, ...model.tokenize(context + continuation)];
    const sequence = context_.getSequence();
    const raw = { temperature: 1, topK: 0, topP: 1, minP: 0 };
    const output = await sequence.controlledEvaluate(
      whole.map((token) => [token, { generateNext: { probabilities: true, options: raw } }] as const) as never,
    );
    let sum = 0;
    for (let i = head.length - 1; i < whole.length - 1; i++) {
      sum += Math.log(output[i]?.next?.probabilities?.get(whole[i + 1] as never) as number);
    }
    return sum;
  } finally {
    await context_.dispose();
    await model.dispose();
  }
}

test('log-likelihoods are the model own probabilities, the same scored together or apart, and chat answers the same afterwards', async () => {
  const runtime = runtimeOn(256);
  await runtime.load();
  const fresh = runtimeOn(256);
  await fresh.load();
  try {
    const question = 'Question: what does the llama answer?\nAnswer:';
    const choices = [' questions', ' the knowledge base', ' nothing at all'];
    const together = await runtime.logLikelihood(choices.map((continuation) => ({ context: question, continuation })));
    const apart = [];
    for (const continuation of choices)
      apart.push(...(await runtime.logLikelihood([{ context: question, continuation }])));
    for (const [i, continuation] of choices.entries()) {
      const expected = await referenceLogprob(question, continuation);
      expect(together[i]?.logprob).toBeCloseTo(expected, 3);
      expect(apart[i]?.logprob).toBeCloseTo(expected, 3);
      expect(together[i]?.logprob).toBeLessThan(0);
      expect(together[i]?.tokens).toBeGreaterThan(0);
      expect(together[i]?.truncated).toBe(0);
    }

    const messages = [{ role: 'user' as const, content: 'the llama and the model' }];
    const afterScoring = await runtime.generate({ messages, temperature: 0, maxTokens: 12 });
    const untouched = await fresh.generate({ messages, temperature: 0, maxTokens: 12 });
    expect(afterScoring.text).toBe(untouched.text);
  } finally {
    await runtime.close();
    await fresh.close();
  }
});

test('a context longer than the window is cut from the left and says how much', async () => {
  const runtime = runtimeOn(64);
  await runtime.load();
  try {
    const [result] = await runtime.logLikelihood([
      { context: 'the llama model '.repeat(200), continuation: ' answers' },
    ]);
    expect(result?.truncated).toBeGreaterThan(0);
    expect(Number.isFinite(result?.logprob)).toBe(true);
  } finally {
    await runtime.close();
  }
});
