import { expect, test, vi } from 'vitest';
import { createLogger } from '../../src/core/logger.ts';
import { createRuntimeEvaluator, type EvalSuite, loadGoldSuite } from '../../src/eval/index.ts';
import { createLlamaCppRuntime } from '../../src/llm/llama-cpp.ts';
import type { ModelBundle } from '../../src/models/index.ts';
import { tinyModelWithLoraPerFile } from '../fixtures/tiny-llama.ts';

vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });

const files = tinyModelWithLoraPerFile('bertha-eval-');

// The chat service's own adapter factory, as app.ts wires it.
const evaluator = createRuntimeEvaluator({
  createRuntime: (bundle) =>
    createLlamaCppRuntime({
      modelPath: (bundle.base as { path: string }).path,
      adapters: bundle.adapters,
      maxThreads: 1,
      gpu: 'off',
      parallel: 1,
      contextSize: 256,
      batchSize: 512,
      defaults: { temperature: 0, topP: 1, maxTokens: 16 },
      logger: createLogger('warn'),
    }),
});

function bundle(version: string, adapters: ModelBundle['adapters'] = []): ModelBundle {
  return {
    version,
    base: { kind: 'gguf', path: files.tiny.modelPath },
    adapters,
    generation: {},
    retrieval: { enabled: true, topK: 4 },
  };
}

test('the gold suite scores every item by log-likelihood, the same on every run', async () => {
  const gold = await loadGoldSuite();
  expect(gold.items.length).toBeGreaterThanOrEqual(40);
  expect(new Set(gold.items.map((item) => item.answer)).size).toBeGreaterThan(1);
  const [first] = await evaluator.evaluate(bundle('base'), [gold]);
  const [second] = await evaluator.evaluate(bundle('base'), [gold]);
  if (!first || !second) throw new Error('no result');
  expect(first.suite).toBe('benchmark-gold');
  expect(gold.version).toBe('1');
  expect(first.modelVersion).toBe('base');
  expect(first.items).toHaveLength(gold.items.length);
  expect(second.items).toEqual(first.items);
  expect(first.metrics.acc).toBeGreaterThanOrEqual(0);
  expect(first.metrics.acc).toBeLessThanOrEqual(1);
  expect(first.metrics.acc).toBe(first.items.filter((item) => item.details.correct).length / gold.items.length);
  for (const item of first.items) {
    expect(Number.isFinite(item.details.answer_logprob)).toBe(true);
    // The item's score is the right choice's probability among the choices, so a hit is the choice the model rates highest.
    expect(item.score).toBeGreaterThan(0);
    expect(item.score).toBeLessThanOrEqual(1);
    if (item.details.correct) expect(item.score).toBeGreaterThanOrEqual(1 / 4);
  }
  expect(first.metrics.prob).toBeCloseTo(
    first.items.reduce((sum, item) => sum + item.score, 0) / gold.items.length,
    10,
  );
});

test('a bundle is scored with its LoRA adapter, as chat serves it; perplexity comes from the same logits', async () => {
  const suite: EvalSuite = {
    name: 'heldout',
    kind: 'perplexity',
    items: [
      { id: 'a', text: 'the llama answers questions about the knowledge base and the model' },
      { id: 'b', text: `${'users vote on answers and the model learns from them '.repeat(30)}` },
    ],
  };
  const [base] = await evaluator.evaluate(bundle('base'), [suite]);
  const [adapted] = await evaluator.evaluate(bundle('adapted', [{ path: files.adapterPath, scale: 1 }]), [suite]);
  if (!base || !adapted) throw new Error('no result');
  expect(base.metrics.token_perplexity).toBeGreaterThan(1);
  expect(base.metrics.bits_per_byte).toBeGreaterThan(0);
  expect(adapted.metrics.token_perplexity).not.toBeCloseTo(base.metrics.token_perplexity as number, 6);
  // The long item is scored in several pieces, all of it.
  expect(base.items[1]?.details.bytes).toBe(Buffer.byteLength(suite.items[1]?.text.trim() ?? ''));
});

test('held-out text with nothing in it gives no perplexity figure, not a perfect 1', async () => {
  const [result] = await evaluator.evaluate(bundle('base'), [{ name: 'heldout', kind: 'perplexity', items: [] }]);
  expect(result?.metrics).toEqual({ tokens: 0, items: 0 });
});
