import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect, onTestFinished, test } from 'vitest';
import { createLogger } from '../../src/core/logger.ts';
import { createSqliteDb } from '../../src/db/sqlite.ts';
import { createFsObjectStore } from '../../src/objects/fs.ts';
import { readObject } from '../../src/objects/index.ts';
import { createLocalRunner, createRunStore, runOneStep } from '../../src/pipelines/index.ts';
import { tempDir } from '../helpers/temp.ts';
import { testCatalog } from './fixtures.ts';
import { waitFor } from './wait.ts';

async function setup() {
  const dir = tempDir();
  const db = createSqliteDb({ path: path.join(dir, 'bertha.sqlite') });
  await db.migrate();
  onTestFinished(() => db.close());
  return {
    dir,
    catalog: testCatalog(dir),
    store: createRunStore(db),
    objects: createFsObjectStore({ root: path.join(dir, 'objects') }),
    logger: createLogger('silent'),
  };
}

test('running each step on its own the way Argo pods do gives the same result as the local runner', async () => {
  const { dir, catalog, store, objects, logger } = await setup();
  const text = 'to be or not to be';
  // As the WorkflowTemplate does: every pod gets the run parameters, and the object keys of its
  // inputs from the output files of the tasks before it.
  const outputs = new Map<string, string>();
  for (const step of catalog.get('word-stats').steps) {
    const outputsDir = path.join(dir, 'pods', step.name);
    const inputKeys = Object.fromEntries(
      Object.entries(step.inputs).map(([name, ref]) => [name, outputs.get(`${ref.from}.${ref.artifact}`) as string]),
    );
    const outcome = await runOneStep({
      catalog,
      store,
      objects,
      logger,
      pipeline: 'word-stats',
      step: step.name,
      runId: 'word-stats-abc12',
      params: { text, minLength: '1' },
      inputKeys,
      outputsDir,
      singleAttempt: true,
      owner: `argo:${step.name}`,
      signal: new AbortController().signal,
    });
    expect(outcome.status).toBe('succeeded');
    for (const name of step.outputs) {
      outputs.set(`${step.name}.${name}`, readFileSync(path.join(outputsDir, name), 'utf8'));
    }
  }
  const argoRun = await store.getRun('word-stats-abc12');
  expect(argoRun).toMatchObject({ executor: 'argo', status: 'succeeded', source: 'argo' });
  const argoReport = await readObject(objects, outputs.get('report.report') as string);

  const runner = createLocalRunner({
    store,
    objects,
    catalog,
    logger,
    stepConcurrency: 2,
    maxConcurrentRuns: 1,
    pollIntervalMs: 20,
    leaseMs: 5_000,
  });
  runner.start();
  onTestFinished(() => runner.stop());
  // A different minLength keeps the cache key of `split` apart from the Argo run's.
  const local = await runner.startRun({ pipeline: 'word-stats', params: { text, minLength: 2 }, source: 'test' });
  await waitFor('the local run', async () => (await store.getRun(local.id))?.status === 'succeeded');
  const localReport = (await store.listArtifacts(local.id)).find((artifact) => artifact.name === 'report');
  expect(JSON.parse((await readObject(objects, localReport?.objectKey as string)).toString())).toEqual(
    JSON.parse(argoReport.toString()),
  );
  expect(argoRun?.status).toBe('succeeded');
});

test('a failing single attempt marks the Argo run failed, and a later successful pod puts it back', async () => {
  const { catalog, store, objects, logger } = await setup();
  const base = {
    catalog,
    store,
    objects,
    logger,
    pipeline: 'flaky',
    step: 'sum',
    runId: 'flaky-x1',
    params: { failures: '1' },
    inputKeys: {},
    singleAttempt: true,
    owner: 'argo:pod',
    signal: new AbortController().signal,
  };
  expect(await runOneStep(base)).toEqual({ status: 'failed', error: 'attempt 1 fails on purpose' });
  expect((await store.getRun('flaky-x1'))?.status).toBe('failed');
  expect((await runOneStep(base)).status).toBe('succeeded');
  expect((await store.getRun('flaky-x1'))?.status).toBe('running');
  expect((await store.getStep('flaky-x1', 'sum'))?.attempts).toBe(2);
});

test('a cron schedule from config writes one trigger per firing and the runner launches it', async () => {
  const { catalog, store, objects, logger } = await setup();
  const runners = [0, 1].map((index) =>
    createLocalRunner({
      store,
      objects,
      catalog,
      logger,
      stepConcurrency: 2,
      maxConcurrentRuns: 2,
      pollIntervalMs: 20,
      leaseMs: 5_000,
      owner: `scheduler-${index}`,
      schedules: [{ name: 'every-second', pipeline: 'word-stats', cron: '* * * * * *', params: { text: 'tick tock' } }],
    }),
  );
  for (const runner of runners) {
    runner.start();
    onTestFinished(() => runner.stop());
  }
  const run = await waitFor('a scheduled run to succeed', async () =>
    (await store.listRuns()).find((candidate) => candidate.status === 'succeeded'),
  );
  expect(run).toMatchObject({ source: 'trigger', params: { text: 'tick tock', minLength: 1 } });
  for (const runner of runners) await runner.stop();
  const triggers = await store.db.kysely.selectFrom('pipeline_triggers').selectAll().execute();
  // Both runners fire on every tick; the trigger id is the schedule and the firing time, so one row each.
  const firings = triggers.map((trigger) => trigger.id);
  expect(new Set(firings).size).toBe(firings.length);
  expect(triggers.every((trigger) => trigger.sensor === 'schedule:every-second')).toBe(true);
});
