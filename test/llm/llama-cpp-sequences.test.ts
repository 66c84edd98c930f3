import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test, vi } from 'vitest';
import { createLogger } from '../../src/core/logger.ts';
import { createLlamaCppRuntime } from '../../src/llm/llama-cpp.ts';
import type { GenerationResult, LlmRuntime } from '../../src/llm/runtime.ts';
import { writeTinyLlama } from '../fixtures/tiny-llama.ts';

vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });

let dir: string;
let runtime: LlmRuntime;
let modelPath: string;

async function loadedRuntime(parallel: number): Promise<LlmRuntime> {
  const loaded = createLlamaCppRuntime({
    modelPath,
    maxThreads: 1,
    gpu: 'off',
    parallel,
    contextSize: 512,
    batchSize: 512,
    defaults: { temperature: 0, topP: 1, maxTokens: 16 },
    logger: createLogger('warn'),
  });
  await loaded.load();
  return loaded;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'bertha-sequences-'));
  ({ modelPath } = await writeTinyLlama(dir));
  runtime = await loadedRuntime(3);
});

afterAll(async () => {
  await runtime?.close();
  rmSync(dir, { recursive: true, force: true });
});

const ask = (content: string) => [{ role: 'user' as const, content }];

test('a request arriving while others generate joins them instead of waiting for them to finish', async () => {
  // Every sequence has served a request before, so they hold earlier answers.
  await Promise.all(
    ['first', 'second', 'third'].map((n) => runtime.generate({ messages: ask(`${n} warm-up question`), maxTokens: 8 })),
  );

  const finished: string[] = [];
  function longAnswer(name: string): { result: Promise<GenerationResult>; streaming: Promise<void> } {
    let streamingNow: () => void = () => undefined;
    const streaming = new Promise<void>((resolve) => {
      streamingNow = resolve;
    });
    const result = runtime
      .generate({ messages: ask('the model and the data'), maxTokens: 400, onText: () => streamingNow() })
      .then((generated) => {
        finished.push(name);
        return generated;
      });
    return { result, streaming };
  }
  const first = longAnswer('first');
  await first.streaming;
  const second = longAnswer('second');
  await second.streaming;

  await runtime.generate({ messages: ask('a short one'), maxTokens: 4 });
  finished.push('short');
  for (const long of [first, second]) {
    const result = await long.result;
    expect(result.finishReason).toBe('length');
    expect(result.completionTokens).toBe(400);
  }
  expect(finished[0]).toBe('short');
});

test('a prompt sharing a prefix with an earlier one reuses its cached tokens and answers as a cold sequence does', async () => {
  const system = {
    role: 'system' as const,
    content: 'You answer questions about the model and the data, briefly, from the documents given.',
  };
  const question = [system, { role: 'user' as const, content: 'what is the data' }];
  await runtime.generate({ messages: [system, { role: 'user', content: 'what is the model' }], maxTokens: 8 });
  const warm = await runtime.generate({ messages: question, maxTokens: 12 });

  const cold = await loadedRuntime(1);
  try {
    const fresh = await cold.generate({ messages: question, maxTokens: 12 });
    expect(fresh.cachedPromptTokens).toBe(0);
    // The system prompt and the chat template's framing were already in a sequence.
    expect(warm.cachedPromptTokens).toBeGreaterThan(10);
    expect(warm.cachedPromptTokens).toBeLessThan(warm.promptTokens);
    expect(warm.promptTokens).toBe(fresh.promptTokens);
    expect(warm.text).toBe(fresh.text);
    expect(warm.completionTokens).toBe(fresh.completionTokens);
  } finally {
    await cold.close();
  }
});
