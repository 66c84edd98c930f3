import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, expect, test, vi } from 'vitest';
import { createLogger } from '../../src/core/logger.ts';
import type { GgufTensorType } from '../../src/gguf/writer.ts';
import { createLlamaCppRuntime } from '../../src/llm/llama-cpp.ts';
import { writeTinyLlama } from '../fixtures/tiny-llama.ts';

vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'bertha-f16-hint-'));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Loads a tiny model stored as `weightType` and returns the build that served it and what was logged. */
async function loadLogged(weightType: GgufTensorType): Promise<{ build: string; messages: string[] }> {
  const { modelPath } = await writeTinyLlama(dir, { weightType, fileName: `${weightType}.gguf` });
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  const runtime = createLlamaCppRuntime({
    modelPath,
    maxThreads: 1,
    gpu: 'off',
    parallel: 1,
    contextSize: 128,
    batchSize: 128,
    defaults: { temperature: 0, topP: 1, maxTokens: 4 },
    logger: createLogger('info', sink),
  });
  try {
    await runtime.load();
  } finally {
    await runtime.close();
  }
  const records = lines.map((line) => JSON.parse(line) as { msg: string; build?: string });
  const loaded = records.find((record) => record.msg === 'model loaded');
  return { build: String(loaded?.build), messages: records.map((record) => record.msg) };
}

test('F16 weights on the prebuilt CPU binary log how to get a build for this machine; quantized weights do not', async () => {
  const f16 = await loadLogged('F16');
  const hint = f16.messages.filter((message) => message.includes('npm run build:llama'));
  // A developer's tree may hold a local build, which evaluates F16 at native speed: no hint then.
  if (f16.build === 'localBuild') expect(hint).toEqual([]);
  else {
    expect(hint).toHaveLength(1);
    expect(hint[0]).toMatch(/^F16 weights on the prebuilt CPU binary/);
  }

  const q8 = await loadLogged('Q8_0');
  expect(q8.messages.some((message) => message.includes('npm run build:llama'))).toBe(false);
});
