import { appendFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { definePipeline } from '../../src/pipelines/definition.ts';
import type { StepContext } from '../../src/pipelines/handlers.ts';
import { createPipelineCatalog, createStepHandlerRegistry, type PipelineCatalog } from '../../src/pipelines/index.ts';

/**
 * Pipelines that do real work for the engine's tests: split a text into words, count them,
 * find the longest, write a report. `markers` (a folder) records every handler call as a line
 * in `calls.log`, so a test can tell which steps ran how often, across processes too.
 */
export const wordStats = definePipeline({
  name: 'word-stats',
  description: 'counts the words of a text',
  params: {
    text: { type: 'string', description: 'the text to analyse' },
    minLength: { type: 'number', description: 'shortest word counted', default: 1 },
  },
  steps: [
    {
      name: 'split',
      handler: 'split-words',
      params: ['text', 'minLength'],
      outputs: ['words'],
      cacheKey: '{{params.text}}',
    },
    {
      name: 'count',
      handler: 'count-words',
      inputs: { words: { from: 'split', artifact: 'words' } },
      outputs: ['counts'],
    },
    {
      name: 'longest',
      handler: 'longest-word',
      inputs: { words: { from: 'split', artifact: 'words' } },
      outputs: ['longest'],
    },
    {
      name: 'report',
      handler: 'write-report',
      inputs: { counts: { from: 'count', artifact: 'counts' }, longest: { from: 'longest', artifact: 'longest' } },
      outputs: ['report'],
    },
  ],
  argoEvents: [{ source: 'uploads', parameters: { text: 'notification.0.s3.object.key' } }],
});

/** Step `wait` blocks until `<markers>/release` exists, so a test can kill the process inside it. */
export const gated = definePipeline({
  name: 'gated',
  description: 'a first step, a step that waits for a release file, a last step',
  params: { text: { type: 'string', description: 'carried through' } },
  steps: [
    { name: 'first', handler: 'split-words', params: ['text'], outputs: ['words'] },
    {
      name: 'wait',
      handler: 'wait-for-release',
      inputs: { words: { from: 'first', artifact: 'words' } },
      outputs: ['words'],
    },
    {
      name: 'last',
      handler: 'count-words',
      inputs: { words: { from: 'wait', artifact: 'words' } },
      outputs: ['counts'],
    },
  ],
});

/** Fails its first `failures` attempts (counted in calls.log), then sums the numbers. */
export const flaky = definePipeline({
  name: 'flaky',
  description: 'retries with backoff',
  params: { failures: { type: 'number', description: 'attempts that fail before one succeeds' } },
  steps: [
    {
      name: 'sum',
      handler: 'flaky-sum',
      params: ['failures'],
      outputs: ['sum'],
      retry: { limit: 2, backoffMs: 10, factor: 2 },
    },
    { name: 'after', handler: 'count-words', inputs: { words: { from: 'sum', artifact: 'sum' } }, outputs: ['counts'] },
  ],
});

export const slow = definePipeline({
  name: 'slow',
  description: 'a step that outlives its timeout unless cancelled first',
  params: { timeoutMs: { type: 'number', description: 'unused by the engine; documents the test', default: 0 } },
  steps: [
    { name: 'forever', handler: 'wait-for-abort', timeoutMs: 200 },
    { name: 'never', handler: 'wait-for-abort', dependsOn: ['forever'] },
  ],
});

export const cancellable = definePipeline({
  name: 'cancellable',
  description: 'a step that runs until cancelled',
  steps: [{ name: 'forever', handler: 'wait-for-abort' }],
});

export const empty = definePipeline({
  name: 'empty',
  description: 'one step that does nothing: the runner overhead alone',
  steps: [{ name: 'nothing', handler: 'nothing' }],
});

export function recordCall(markers: string, context: StepContext): void {
  appendFileSync(path.join(markers, 'calls.log'), `${context.runId} ${context.step} ${context.attempt}\n`);
}

async function waitForAbort(signal: AbortSignal): Promise<void> {
  await new Promise<void>((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}

export function testCatalog(markers: string): PipelineCatalog {
  const handlers = createStepHandlerRegistry({
    'split-words': async (context) => {
      recordCall(markers, context);
      const minLength = Number(context.params.minLength ?? 1);
      const words = String(context.params.text)
        .toLowerCase()
        .split(/[^a-z0-9]+/)
        .filter((word) => word.length >= minLength);
      context.log.info(`split into ${words.length} words`);
      await context.artifacts.writeJson('words', words);
    },
    'count-words': async (context) => {
      recordCall(markers, context);
      const words = await context.inputs.json<string[]>('words');
      const counts: Record<string, number> = {};
      for (const [index, word] of words.entries()) {
        counts[word] = (counts[word] ?? 0) + 1;
        if (index % 100 === 0) await context.progress(index / words.length, `${index} words`);
      }
      await context.artifacts.writeJson('counts', counts);
    },
    'longest-word': async (context) => {
      recordCall(markers, context);
      const words = await context.inputs.json<string[]>('words');
      await context.artifacts.write(
        'longest',
        words.reduce((a, b) => (b.length > a.length ? b : a), ''),
      );
    },
    'write-report': async (context) => {
      recordCall(markers, context);
      const counts = await context.inputs.json<Record<string, number>>('counts');
      const longest = (await context.inputs.read('longest')).toString('utf8');
      const top = Object.entries(counts).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0];
      await context.artifacts.writeJson('report', { distinct: Object.keys(counts).length, longest, top });
    },
    'wait-for-release': async (context) => {
      recordCall(markers, context);
      context.log.info('waiting for the release file');
      while (!existsSync(path.join(markers, 'release'))) await sleep(20, undefined, { signal: context.signal });
      await context.artifacts.write('words', await context.inputs.read('words'));
    },
    'flaky-sum': async (context) => {
      recordCall(markers, context);
      if (context.attempt <= Number(context.params.failures))
        throw new Error(`attempt ${context.attempt} fails on purpose`);
      await context.artifacts.writeJson('sum', [String([1, 2, 3].reduce((a, b) => a + b, 0))]);
    },
    'wait-for-abort': async (context) => {
      recordCall(markers, context);
      await waitForAbort(context.signal);
    },
    nothing: async () => {},
  });
  return createPipelineCatalog([wordStats, gated, flaky, slow, cancellable, empty], handlers);
}
