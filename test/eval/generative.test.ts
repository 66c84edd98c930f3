import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test, vi } from 'vitest';
import { configSchema } from '../../src/config/index.ts';
import { createLogger } from '../../src/core/logger.ts';
import {
  checkFaithfulness,
  comparePaired,
  createRuntimeEvaluator,
  DEFAULT_EVAL_PROMPT,
  DEFAULT_GENERATIVE_SETTINGS,
  type GenerativeItem,
  generativeSuites,
  rougeL,
  tokenF1,
} from '../../src/eval/index.ts';
import type { GenerationRequest, LlmRuntime } from '../../src/llm/index.ts';
import { createLlamaCppRuntime } from '../../src/llm/llama-cpp.ts';
import type { ModelBundle } from '../../src/models/index.ts';
import { type TinyLlama, writeTinyLlama, writeTinyLora } from '../fixtures/tiny-llama.ts';

vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });

let dir: string;
let tiny: TinyLlama;
let adapterPath: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'bertha-generative-'));
  tiny = await writeTinyLlama(dir);
  adapterPath = (await writeTinyLora(dir, tiny.hparams)).adapterPath;
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The chat service's runtime factory, as app.ts wires it, recording what generation was asked. */
function recordingEvaluator(contextSize: number, parallel = 1) {
  const requests: GenerationRequest[] = [];
  const evaluator = createRuntimeEvaluator({
    createRuntime: (bundle): LlmRuntime => {
      const runtime = createLlamaCppRuntime({
        modelPath: (bundle.base as { path: string }).path,
        adapters: bundle.adapters,
        maxThreads: 1,
        gpu: 'off',
        parallel,
        contextSize,
        batchSize: 512,
        // Serving's sampling defaults: the evaluator must override them to answer greedily.
        defaults: { temperature: 0.7, topP: 0.95, maxTokens: 512 },
        logger: createLogger('warn'),
      });
      return {
        ...runtime,
        generate: (request) => {
          requests.push(request);
          return runtime.generate(request);
        },
      };
    },
    prompt: { systemPrompt: 'You answer questions about Bertha.', contextTemplate: 'Passages:\n{context}' },
  });
  return { evaluator, requests };
}

function bundle(version: string, adapters: ModelBundle['adapters'] = []): ModelBundle {
  return {
    version,
    base: { kind: 'gguf', path: tiny.modelPath },
    adapters,
    generation: { temperature: 1.2 },
    retrieval: { enabled: true, topK: 4 },
  };
}

const items: GenerativeItem[] = [
  {
    id: 'q1',
    question: 'what does the model train on',
    contexts: ['the model can train on the data of each document.', 'bertha will serve the model.'],
    reference: 'the data of each document',
    referencePassage: 'the model can train on the data of each document.',
    document: 'docs/train.md',
  },
  {
    id: 'q2',
    question: 'who will serve the model',
    contexts: ['bertha will serve the model.'],
    reference: 'bertha',
    document: 'docs/serve.md',
  },
  {
    id: 'q3',
    question: 'what is the answer to the question',
    contexts: ['the answer is in the document.'],
    reference: 'in the document',
    document: 'docs/train.md',
    choices: ['in the document', 'hello world'],
    correctChoice: 0,
  },
  { id: 'q4', question: 'hello world', contexts: ['hello world from the llama.'] },
];

test('generative suites answer each item once, greedily and as chat asks, and score the answer three ways, the same on every run', async () => {
  const { evaluator, requests } = recordingEvaluator(512);
  const suites = generativeSuites(items, { maxAnswerTokens: 24 });
  const first = await evaluator.evaluate(bundle('base'), suites);
  expect(requests).toHaveLength(items.length);
  for (const request of requests) {
    expect(request.temperature).toBe(0);
    expect(request.maxTokens).toBe(24);
  }
  const q1 = requests.find((request) => request.messages.at(-1)?.content === items[0]?.question);
  expect(q1?.messages).toEqual([
    {
      role: 'system',
      content:
        'You answer questions about Bertha.\n\nPassages:\n[1]\nthe model can train on the data of each document.\n\n[2]\nbertha will serve the model.',
    },
    { role: 'user', content: 'what does the model train on' },
  ]);

  const second = await evaluator.evaluate(bundle('base'), suites);
  expect(second).toEqual(first);
  expect(first.map((result) => [result.suite, result.kind])).toEqual([
    ['hallucination-eval', 'generative'],
    ['factcheck-eval', 'generative'],
    ['subject-matter-eval', 'generative'],
  ]);
  const [hallucination, factcheck, subject] = first;
  if (!hallucination || !factcheck || !subject) throw new Error('missing results');
  const answers = new Map(hallucination.items.map((item) => [item.id, String(item.details.answer)]));
  expect(answers.size).toBe(4);

  // Every score can be recomputed from the stored answer.
  for (const item of hallucination.items) {
    const source = items.find((candidate) => candidate.id === item.id) as GenerativeItem;
    const answer = String(item.details.answer);
    expect(item.score).toBe(answer.trim() ? checkFaithfulness(answer, source.contexts).score : 0);
    expect(item.details.method).toBe(answer.trim() ? 'lexical' : undefined);
  }
  expect(hallucination.metrics.faithfulness).toBeCloseTo(
    hallucination.items.reduce((sum, item) => sum + item.score, 0) / 4,
    10,
  );
  expect(hallucination.metrics.unsupported_rate).toBeGreaterThanOrEqual(0);
  expect(hallucination.metrics.inconclusive_items).toBe(0);

  // q4 has no reference: factcheck and subject-matter skip it.
  expect(factcheck.items.map((item) => item.id)).toEqual(['q1', 'q2', 'q3']);
  expect(factcheck.metrics.skipped_items).toBe(1);
  for (const item of factcheck.items) {
    const source = items.find((candidate) => candidate.id === item.id) as GenerativeItem;
    expect(item.score).toBe(tokenF1(answers.get(item.id) ?? '', source.reference ?? ''));
    expect(item.details.rouge_l).toBe(rougeL(answers.get(item.id) ?? '', source.reference ?? ''));
  }
  expect(typeof factcheck.items[0]?.details.consistent).toBe('boolean');
  expect(factcheck.items[1]?.details.consistent).toBeUndefined();
  expect(factcheck.metrics.consistency_items).toBe(1);
  expect(Object.keys(factcheck.metrics)).toEqual(
    expect.arrayContaining(['answer_f1', 'rouge_l', 'factual_consistency']),
  );

  expect(subject.items.map((item) => item.details.document)).toEqual([
    'docs/train.md',
    'docs/serve.md',
    'docs/train.md',
  ]);
  for (const item of subject.items) expect([0, 1]).toContain(item.score);
  expect(subject.items[2]?.details.chosen).toBeTypeOf('number');
  expect(subject.metrics.documents).toBe(2);
  const train = subject.items.filter((item) => item.details.document === 'docs/train.md');
  expect(subject.metrics['accuracy_doc_docs_train.md']).toBe(train.reduce((sum, item) => sum + item.score, 0) / 2);
  expect(subject.metrics['accuracy_doc_docs_serve.md']).toBe(subject.items[1]?.score);
});

test('the gate pairs generative items by id between two versions; the adapter changes the answers', async () => {
  const { evaluator } = recordingEvaluator(512);
  const suites = generativeSuites(items, { maxAnswerTokens: 24 }, ['factcheck']);
  const [champion] = await evaluator.evaluate(bundle('base'), suites);
  const [challenger] = await evaluator.evaluate(bundle('adapted', [{ path: adapterPath, scale: 4 }]), suites);
  if (!champion || !challenger) throw new Error('missing results');
  expect(challenger.items.map((item) => item.details.answer)).not.toEqual(
    champion.items.map((item) => item.details.answer),
  );
  const compared = comparePaired(champion, challenger, { confidence: 0.95, resamples: 200, seed: 1 });
  expect(compared.pairs).toBe(3);
  expect(compared.unpaired).toBe(0);
});

test('passages that do not fit the context are dropped whole; a question that cannot fit is inconclusive, never paired', async () => {
  const { evaluator, requests } = recordingEvaluator(256);
  const long = 'the model and the data '.repeat(30).trim();
  const suite = generativeSuites(
    [
      { id: 'fits', question: 'what', contexts: ['the data.', long, long], reference: 'data' },
      { id: 'huge', question: 'zqxv '.repeat(60), contexts: ['x'], reference: 'data' },
    ],
    { maxAnswerTokens: 16 },
    ['hallucination'],
  );
  const [result] = await evaluator.evaluate(bundle('base'), suite);
  if (!result) throw new Error('missing result');
  expect(result.items.map((item) => item.id)).toEqual(['fits']);
  const used = Number(result.items[0]?.details.contexts_used);
  expect(used).toBeGreaterThanOrEqual(1);
  expect(result.items[0]?.details.contexts_dropped).toBe(3 - used);
  expect(used).toBeLessThan(3);
  // The prompt holds exactly the passages kept, first ones first, each whole.
  const system = requests[0]?.messages[0]?.content ?? '';
  expect(system).toContain('[1]\nthe data.');
  expect(system.includes(`[${used}]\n${long}`) || used === 1).toBe(true);
  expect(system).not.toContain(`[${used + 1}]`);
  expect(result.inconclusive?.map((item) => [item.id, item.reason])).toEqual([['huge', 'prompt_too_long']]);
  const huge = result.inconclusive?.[0]?.details;
  expect(huge?.prompt_tokens).toBeGreaterThan(Number(huge?.context_size));
  expect(result.metrics.inconclusive_items).toBe(1);
  expect(requests).toHaveLength(1);
});

test('answers are generated on as many sequences as the runtime serves at once', async () => {
  const { evaluator, requests } = recordingEvaluator(512, 2);
  const results = await evaluator.evaluate(bundle('base'), generativeSuites(items, { maxAnswerTokens: 8 }));
  expect(requests).toHaveLength(items.length);
  expect(results.map((result) => result.items.length)).toEqual([4, 3, 3]);
  for (const item of results[0]?.items ?? []) expect(item.details.completion_tokens).toBeLessThanOrEqual(8);
});

test('without settings the evaluator asks and scores as the default config does', () => {
  const config = configSchema.parse({});
  expect(DEFAULT_EVAL_PROMPT).toEqual({
    systemPrompt: config.serving.systemPrompt,
    contextTemplate: config.serving.contextTemplate,
  });
  expect(DEFAULT_GENERATIVE_SETTINGS).toEqual({
    maxAnswerTokens: config.evaluation.maxAnswerTokens,
    supportThreshold: config.evaluation.supportThreshold,
    correctF1: config.evaluation.correctF1,
  });
  expect(config.evaluation.judge.baseUrl).toBe('');
});
