import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import { isoNow } from '../../src/core/ids.ts';
import { createLogger } from '../../src/core/logger.ts';
import type { MetadataDb } from '../../src/db/index.ts';
import { createSensors } from '../../src/events/index.ts';
import { createLocalEventBus } from '../../src/events/local-bus.ts';
import { createFsObjectStore } from '../../src/objects/fs.ts';
import { readObject } from '../../src/objects/index.ts';
import { createLocalRunner, createRunStore, type RunRecord } from '../../src/pipelines/index.ts';
import { dbFactories } from '../helpers/databases.ts';
import { tempDir } from '../helpers/temp.ts';
import { testCatalog } from './fixtures.ts';
import { waitFor } from './wait.ts';

function calls(markers: string): string[] {
  try {
    return readFileSync(path.join(markers, 'calls.log'), 'utf8').trim().split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

for (const factory of dbFactories) {
  const available = await factory.available();
  describe.skipIf(!available)(`local pipeline runner on ${factory.name}`, () => {
    async function setup(overrides: { stepConcurrency?: number; db?: MetadataDb; pollIntervalMs?: number } = {}) {
      const db = overrides.db ?? (await factory.create());
      if (!overrides.db) onTestFinished(() => db.close());
      const dir = tempDir();
      const objects = createFsObjectStore({ root: path.join(dir, 'objects') });
      const store = createRunStore(db);
      const runner = createLocalRunner({
        store,
        objects,
        catalog: testCatalog(dir),
        logger: createLogger('silent'),
        stepConcurrency: overrides.stepConcurrency ?? 4,
        maxConcurrentRuns: 4,
        pollIntervalMs: overrides.pollIntervalMs ?? 20,
        leaseMs: 5_000,
      });
      runner.start();
      onTestFinished(() => runner.stop());
      return { db, dir, objects, store, runner };
    }

    async function finished(store: ReturnType<typeof createRunStore>, id: string): Promise<RunRecord> {
      return waitFor(`run ${id} to finish`, async () => {
        const run = await store.getRun(id);
        return run && !['queued', 'running'].includes(run.status) ? run : undefined;
      });
    }

    test('a DAG run passes artifacts between steps and stores runs, steps, attempts, artifacts and logs', async () => {
      const { store, runner, objects } = await setup();
      const queued = await runner.startRun({
        pipeline: 'word-stats',
        params: { text: 'the cat saw the other cat and the dog', minLength: '3' },
        source: 'test',
      });
      expect(queued.params).toEqual({ text: 'the cat saw the other cat and the dog', minLength: 3 });
      const run = await finished(store, queued.id);
      expect(run.status).toBe('succeeded');
      const steps = await store.listSteps(run.id);
      expect(steps.map((step) => [step.name, step.status, step.attempts])).toEqual(
        expect.arrayContaining([
          ['split', 'succeeded', 1],
          ['count', 'succeeded', 1],
          ['longest', 'succeeded', 1],
          ['report', 'succeeded', 1],
        ]),
      );
      const artifacts = await store.listArtifacts(run.id);
      const report = artifacts.find((artifact) => artifact.name === 'report');
      expect(report).toBeDefined();
      const body = JSON.parse((await readObject(objects, report?.objectKey as string)).toString('utf8'));
      expect(body).toEqual({ distinct: 6, longest: 'other', top: ['the', 3] });
      const logs = await store.listLogs(run.id, { step: 'split' });
      expect(logs.map((line) => line.message)).toContain('split into 9 words');
      expect(await store.listAttempts(run.id)).toHaveLength(4);
    });

    test('unknown parameters and missing required ones are rejected before a run exists', async () => {
      const { runner, store } = await setup();
      await expect(runner.startRun({ pipeline: 'word-stats', params: { txt: 'x' }, source: 'test' })).rejects.toThrow(
        /no parameter 'txt'/,
      );
      await expect(runner.startRun({ pipeline: 'word-stats', params: {}, source: 'test' })).rejects.toThrow(
        /needs parameter 'text'/,
      );
      await expect(runner.startRun({ pipeline: 'nope', source: 'test' })).rejects.toThrow(/pipeline 'nope'/);
      expect(await store.listRuns()).toHaveLength(0);
    });

    test('a failing step is retried with backoff and then succeeds', async () => {
      const { runner, store, dir } = await setup();
      const run = await finished(
        store,
        (await runner.startRun({ pipeline: 'flaky', params: { failures: 2 }, source: 'test' })).id,
      );
      expect(run.status).toBe('succeeded');
      const attempts = (await store.listAttempts(run.id)).filter((attempt) => attempt.step === 'sum');
      expect(attempts.map((attempt) => attempt.status)).toEqual(['failed', 'failed', 'succeeded']);
      expect(calls(dir).filter((line) => line.includes(' sum '))).toHaveLength(3);
    });

    test('a step that keeps failing fails the run with its error and log, and retry from it succeeds', async () => {
      const { runner, store, dir } = await setup();
      const queued = await runner.startRun({ pipeline: 'flaky', params: { failures: 3 }, source: 'test' });
      const run = await finished(store, queued.id);
      expect(run.status).toBe('failed');
      expect(run.error).toBe("step 'sum' failed: attempt 3 fails on purpose");
      const steps = await store.listSteps(run.id);
      expect(steps.find((step) => step.name === 'after')?.status).toBe('skipped');
      const logs = await store.listLogs(run.id, { step: 'sum' });
      expect(logs.filter((line) => line.level === 'error').map((line) => line.message)).toContain(
        'attempt 3 failed: attempt 3 fails on purpose',
      );
      // Attempt 4 is past the failures the parameter asks for, so the retried run succeeds.
      await runner.retry(run.id, 'sum');
      const retried = await finished(store, run.id);
      expect(retried.status).toBe('succeeded');
      expect(calls(dir).filter((line) => line.includes(' sum '))).toHaveLength(4);
    });

    test('a step that outlives its timeout fails the run', async () => {
      const { runner, store } = await setup();
      const run = await finished(store, (await runner.startRun({ pipeline: 'slow', source: 'test' })).id);
      expect(run.status).toBe('failed');
      expect(run.error).toMatch(/timed out after 200 ms/);
      expect((await store.listSteps(run.id)).find((step) => step.name === 'never')?.status).toBe('skipped');
    });

    test('cancel stops a running step and marks the run cancelled', async () => {
      const { runner, store } = await setup();
      const queued = await runner.startRun({ pipeline: 'cancellable', source: 'test' });
      await waitFor('the step to run', async () => (await store.getStep(queued.id, 'forever'))?.status === 'running');
      const cancelled = await runner.cancel(queued.id);
      expect(cancelled.status).toBe('cancelled');
      expect((await store.getStep(queued.id, 'forever'))?.status).toBe('cancelled');
      await expect(runner.cancel(queued.id)).rejects.toThrow(/is cancelled/);
    });

    test('a matching cache key reuses the artifacts of an earlier run', async () => {
      const { runner, store, dir } = await setup();
      const first = await finished(
        store,
        (await runner.startRun({ pipeline: 'word-stats', params: { text: 'a b a' }, source: 'test' })).id,
      );
      const second = await finished(
        store,
        (await runner.startRun({ pipeline: 'word-stats', params: { text: 'a b a' }, source: 'test' })).id,
      );
      expect([first.status, second.status]).toEqual(['succeeded', 'succeeded']);
      expect((await store.getStep(second.id, 'split'))?.cachedFrom).toBe(first.id);
      expect(calls(dir).filter((line) => line.includes(' split '))).toHaveLength(1);
    });

    test('steps run with bounded concurrency', async () => {
      const { runner, store, dir } = await setup({ stepConcurrency: 1 });
      const run = await finished(
        store,
        (await runner.startRun({ pipeline: 'word-stats', params: { text: 'x y' }, source: 'test' })).id,
      );
      expect(run.status).toBe('succeeded');
      const steps = await store.listSteps(run.id);
      const spans = steps.map((step) => ({ start: step.startedAt as string, end: step.finishedAt as string }));
      spans.sort((a, b) => (a.start < b.start ? -1 : 1));
      for (const [index, span] of spans.entries()) {
        const previous = spans[index - 1];
        if (previous) expect(span.start >= previous.end).toBe(true);
      }
      expect(calls(dir)).toHaveLength(4);
    });

    test('a trigger a sensor writes in this process starts its run at once, not at the next poll', async () => {
      const { store, db, runner } = await setup({ pollIntervalMs: 600_000 });
      // The pass start() makes has found nothing; from here on only a wake can claim the trigger.
      await runner.tick();
      const bus = createLocalEventBus({ db, logger: createLogger('silent') });
      const stop = createSensors({
        triggers: store.triggers,
        bus,
        logger: createLogger('silent'),
        rules: [
          {
            name: 'on-words',
            event: 'words.arrived',
            pipeline: 'word-stats',
            params: { text: '{{payload.text}}' },
            concurrencyKey: '',
            debounceMs: 0,
          },
        ],
        onPending: () => runner.wake(),
      }).start();
      onTestFinished(stop);
      await bus.publish({ type: 'words.arrived', source: 'test', subject: 's', payload: { text: 'one two two' } });
      // A run this small can finish, and its trigger move on to `finished`, between two looks.
      const launched = await waitFor('the trigger to launch', async () => {
        const row = await db.kysely.selectFrom('pipeline_triggers').selectAll().executeTakeFirst();
        return row?.run_id ? row : undefined;
      });
      expect((await finished(store, launched.run_id as string)).status).toBe('succeeded');
      const trigger = await db.kysely.selectFrom('pipeline_triggers').selectAll().executeTakeFirstOrThrow();
      expect(trigger.status).toBe('finished');
    });

    test('a pending trigger starts a run and is marked launched with its run id', async () => {
      const { store, db } = await setup();
      const now = isoNow();
      const trigger = {
        sensor: 'test',
        event_id: null,
        concurrency_key: null,
        status: 'pending',
        reason: null,
        run_id: null,
        created_at: now,
        updated_at: now,
      };
      await db.kysely
        .insertInto('pipeline_triggers')
        .values([
          { ...trigger, id: 'trg_a', pipeline: 'word-stats', params_json: JSON.stringify({ text: 'hello world' }) },
          { ...trigger, id: 'trg_b', pipeline: 'unknown', params_json: '{}' },
        ])
        .execute();
      const launched = await waitFor('the trigger to launch', async () => {
        const row = await db.kysely
          .selectFrom('pipeline_triggers')
          .selectAll()
          .where('id', '=', 'trg_a')
          .executeTakeFirst();
        // `launched` may already have become `finished` by the time the probe looks.
        return row?.run_id ? row : undefined;
      });
      const run = await finished(store, launched.run_id as string);
      expect(run).toMatchObject({ status: 'succeeded', source: 'trigger', triggerId: 'trg_a' });
      const released = await waitFor('the trigger to be released', async () => {
        const row = await db.kysely
          .selectFrom('pipeline_triggers')
          .selectAll()
          .where('id', '=', 'trg_a')
          .executeTakeFirst();
        return row?.status === 'finished' ? row : undefined;
      });
      expect(released).toMatchObject({ status: 'finished', reason: 'run succeeded', run_id: run.id });
      const rejected = await db.kysely
        .selectFrom('pipeline_triggers')
        .selectAll()
        .where('id', '=', 'trg_b')
        .executeTakeFirst();
      expect(rejected).toMatchObject({ status: 'failed', reason: "unknown pipeline 'unknown'" });
    });
  });
}
