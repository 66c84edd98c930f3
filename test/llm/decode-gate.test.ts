import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { getLlama, LlamaChat, type LlamaContext, LlamaLogLevel, type LlamaModel } from 'node-llama-cpp';
import { afterAll, beforeAll, expect, test, vi } from 'vitest';
import { createDecodeGate, type DecodeGate } from '../../src/llm/decode-gate.ts';
import { toChatHistory } from '../../src/llm/llama-cpp.ts';
import { writeTinyLlama } from '../fixtures/tiny-llama.ts';

vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

let dir: string;
let model: LlamaModel;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'bertha-decode-gate-'));
  const { modelPath } = await writeTinyLlama(dir, { endless: true });
  const llama = await getLlama({ build: 'never', gpu: false, maxThreads: 1, logLevel: LlamaLogLevel.error });
  model = await llama.loadModel({ modelPath });
});

afterAll(async () => {
  await model?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

/** A context whose every llama_decode is recorded as the number of sequences in its batch. */
async function recordedContext(gate: DecodeGate, sequences: number) {
  const context = await model.createContext({ sequences, contextSize: 512, threads: 1, batching: gate.batching });
  gate.attach(context);
  const batches: number[] = [];
  const internal = context as unknown as { _ctx: Record<string | symbol, unknown> };
  let queued = new Set<number>();
  internal._ctx = new Proxy(internal._ctx, {
    get(target, property) {
      const value = target[property];
      if (typeof value !== 'function') return value;
      if (property === 'addToBatch')
        return (sequenceId: number, ...rest: unknown[]) => {
          queued.add(sequenceId);
          return value.call(target, sequenceId, ...rest);
        };
      if (property === 'decodeBatch')
        return () => {
          batches.push(queued.size);
          queued = new Set();
          return value.call(target);
        };
      return value.bind(target);
    },
  });
  return { context, batches };
}

function answer(gate: DecodeGate, context: LlamaContext, question: string, maxTokens: number) {
  const chat = new LlamaChat({ contextSequence: context.getSequence() });
  return gate.generating(chat.sequence, () =>
    chat.generateResponse(toChatHistory([{ role: 'user', content: question }]), { maxTokens, temperature: 0 }),
  );
}

test('sequences generating together are decoded in one batch per step', async () => {
  // A hold far longer than any sequence's turn: every batch waits for every generating sequence.
  const gate = createDecodeGate({ holdMs: 30_000 });
  const { context, batches } = await recordedContext(gate, 3);
  const answers = await Promise.all(
    ['the model', 'the data and the model', 'what is the answer'].map((question) =>
      answer(gate, context, question, 12),
    ),
  );
  expect(answers.map((generated) => generated.metadata.stopReason)).toEqual(['maxTokens', 'maxTokens', 'maxTokens']);
  // The three prompts together, then one decode of three tokens per generated token.
  expect(batches.length).toBeGreaterThanOrEqual(11);
  expect(new Set(batches)).toEqual(new Set([3]));
  await context.dispose();
});

test('a batch does not wait for ever on a generating sequence that queues nothing', async () => {
  const gate = createDecodeGate({ holdMs: 20 });
  const { context, batches } = await recordedContext(gate, 2);
  const idle = context.getSequence();
  let finishIdle: () => void = () => undefined;
  const idling = gate.generating(idle, () => new Promise<void>((resolve) => (finishIdle = resolve)));
  const generated = await answer(gate, context, 'the model', 6);
  finishIdle();
  await idling;
  expect(generated.metadata.stopReason).toBe('maxTokens');
  expect(new Set(batches)).toEqual(new Set([1]));
  await context.dispose();
});
