import { existsSync, mkdtempSync, readFileSync, utimesSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { getLlama } from 'node-llama-cpp';
import { afterAll, beforeAll, expect, test, vi } from 'vitest';
import { servingSchema } from '../../src/config/schema.ts';
import { createLogger } from '../../src/core/logger.ts';
import { createLlamaCppRuntime, type LlamaCppRuntimeOptions } from '../../src/llm/llama-cpp.ts';
import { threadCandidates } from '../../src/llm/thread-choice.ts';
import { writeTinyLlama } from '../fixtures/tiny-llama.ts';

vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

let dir: string;
let modelPath: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'bertha-thread-choice-'));
  ({ modelPath } = await writeTinyLlama(dir));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface LogRecord {
  msg: string;
  source?: string;
  threads?: number;
  tokensPerSecond?: Record<string, number>;
}

/** Loads the tiny model once with `maxThreads`, returning what it logged and showed as its status. */
async function loadOnce(
  maxThreads: LlamaCppRuntimeOptions['maxThreads'],
  threadChoiceFile: string,
): Promise<{ records: LogRecord[]; detail: string }> {
  const records: LogRecord[] = [];
  const runtime = createLlamaCppRuntime({
    modelPath,
    maxThreads,
    threadChoiceFile,
    gpu: 'off',
    parallel: 1,
    contextSize: 256,
    batchSize: 256,
    defaults: { temperature: 0, topP: 1, maxTokens: 4 },
    logger: createLogger('info', { write: (line: string) => records.push(JSON.parse(line) as LogRecord) }),
  });
  try {
    await runtime.load();
    return { records, detail: runtime.status().detail };
  } finally {
    await runtime.close();
  }
}

const threadRecords = (records: LogRecord[]) => records.filter((record) => record.msg.startsWith('decode threads'));

test('candidates are 1, 2, half and all the cores, never above the core count', () => {
  expect(threadCandidates(1)).toEqual([1]);
  expect(threadCandidates(2)).toEqual([1, 2]);
  expect(threadCandidates(3)).toEqual([1, 2, 3]);
  expect(threadCandidates(6)).toEqual([1, 2, 3, 6]);
  expect(threadCandidates(16)).toEqual([1, 2, 8, 16]);
});

test('threads default to auto, and explicit counts still parse', () => {
  expect(servingSchema.parse({}).llamaCpp.maxThreads).toBe('auto');
  expect(servingSchema.parse({ llamaCpp: { maxThreads: 3 } }).llamaCpp.maxThreads).toBe(3);
  expect(servingSchema.safeParse({ llamaCpp: { maxThreads: 'fast' } }).success).toBe(false);
});

test('auto measures at the first load, stores the fastest candidate, and later loads of the same file reuse it without measuring', async () => {
  const choiceFile = path.join(dir, 'auto', 'llama-threads.json');
  const candidates = threadCandidates(availableParallelism());

  const first = await loadOnce('auto', choiceFile);
  const [measured] = threadRecords(first.records);
  expect(measured?.source).toBe('measured');
  const stored = JSON.parse(readFileSync(choiceFile, 'utf8')) as {
    choices: Record<string, { threads: number; tokensPerSecond: Record<string, number>; measuredAt: string }>;
  };
  const entries = Object.entries(stored.choices);
  expect(entries).toHaveLength(1);
  const [key, choice] = entries[0] as [string, (typeof entries)[number][1]];
  expect(key).toContain(path.resolve(modelPath));
  // A choice measured on node-llama-cpp's prebuilt binary is not reused for a local build, or back.
  const llama = await getLlama({ build: 'never', gpu: false });
  const binary = llama.buildType === 'localBuild' ? 'local build' : 'prebuilt binary';
  expect(key.endsWith(`|${binary}`)).toBe(true);
  expect(first.detail).toContain(`(cpu ${binary}, `);
  expect(candidates).toContain(choice.threads);
  expect(measured?.threads).toBe(choice.threads);
  if (candidates.length > 1) {
    expect(Object.keys(choice.tokensPerSecond).map(Number)).toEqual(candidates);
    // The stored choice is the fastest of those measured.
    expect(Math.max(...Object.values(choice.tokensPerSecond))).toBe(choice.tokensPerSecond[choice.threads]);
  }
  expect(first.detail).toContain(`${choice.threads} threads (auto, measured fastest)`);

  const fileBefore = readFileSync(choiceFile, 'utf8');
  const second = await loadOnce('auto', choiceFile);
  const [reused] = threadRecords(second.records);
  expect(reused?.source).toBe('cached');
  expect(reused?.threads).toBe(choice.threads);
  expect(readFileSync(choiceFile, 'utf8')).toBe(fileBefore);
  expect(second.detail).toContain(`${choice.threads} threads (auto, stored fastest)`);

  // A rewritten model file is another model as far as the choice goes.
  const later = new Date(Date.now() + 60_000);
  utimesSync(modelPath, later, later);
  const third = await loadOnce('auto', choiceFile);
  expect(threadRecords(third.records)[0]?.source).toBe('measured');
  expect(Object.keys(JSON.parse(readFileSync(choiceFile, 'utf8')).choices)).toHaveLength(2);
});

test('an explicit thread count is used as given, without measuring', async () => {
  const choiceFile = path.join(dir, 'explicit', 'llama-threads.json');
  const loaded = await loadOnce(1, choiceFile);
  expect(threadRecords(loaded.records)).toEqual([]);
  expect(existsSync(choiceFile)).toBe(false);
  expect(loaded.detail).toMatch(/\(cpu (local build|prebuilt binary), 1 threads,/);
});
