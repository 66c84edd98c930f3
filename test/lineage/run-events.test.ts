import path from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import { createLogger } from '../../src/core/logger.ts';
import { createRunEventStore, toOpenLineage } from '../../src/lineage/index.ts';
import { createFsObjectStore } from '../../src/objects/fs.ts';
import { createLocalRunner, createRunStore, type RunRecord } from '../../src/pipelines/index.ts';
import { dbFactories } from '../helpers/databases.ts';
import { tempDir } from '../helpers/temp.ts';
import { testCatalog } from '../pipelines/fixtures.ts';
import { waitFor } from '../pipelines/wait.ts';
import { startLineageServer } from './server.ts';

for (const factory of dbFactories) {
  const available = await factory.available();
  describe.skipIf(!available)(`OpenLineage run events on ${factory.name}`, () => {
    test('every attempt of every step is a run: START, then FAIL with its error or COMPLETE with its artifacts', async () => {
      const db = await factory.create();
      onTestFinished(() => db.close());
      const dir = tempDir();
      const store = createRunStore(db);
      const runner = createLocalRunner({
        store,
        objects: createFsObjectStore({ root: path.join(dir, 'objects') }),
        catalog: testCatalog(dir),
        logger: createLogger('silent'),
        stepConcurrency: 2,
        maxConcurrentRuns: 2,
        pollIntervalMs: 20,
        leaseMs: 10_000,
      });
      runner.start();
      onTestFinished(() => runner.stop());
      const queued = await runner.startRun({ pipeline: 'flaky', params: { failures: 1 }, source: 'test' });
      await waitFor('the run to end', async () => {
        const run = await store.getRun(queued.id);
        return run?.status === 'succeeded' ? (run as RunRecord) : undefined;
      });

      const events = await createRunEventStore(db).list({ pipelineRunId: queued.id, limit: 100 });
      const sequence = events.map((event) => `${event.step}#${event.attempt} ${event.eventType}`);
      expect(sequence).toEqual([
        'sum#1 START',
        'sum#1 FAIL',
        'sum#2 START',
        'sum#2 COMPLETE',
        'after#1 START',
        'after#1 COMPLETE',
      ]);
      const [start, fail, retry] = events.map((event) => toOpenLineage(event, 'bertha://test/data'));
      expect(start?.run.runId).toBe(fail?.run.runId);
      expect(retry?.run.runId).not.toBe(start?.run.runId);
      expect(fail?.run.facets.errorMessage).toMatchObject({ message: 'attempt 1 fails on purpose' });
      const completed = toOpenLineage(events[5] as (typeof events)[number], 'bertha://test/data');
      expect(completed.inputs).toEqual([
        { namespace: 'bertha://test/data', name: `pipelines/flaky/${queued.id}/sum/sum` },
      ]);
      expect(completed.outputs).toEqual([
        { namespace: 'bertha://test/data', name: `pipelines/flaky/${queued.id}/after/counts` },
      ]);

      // The export: every event as one JSON line, or only those since a time.
      const server = await startLineageServer(db, dir);
      const lines = async (query: string) =>
        (await server.get<undefined>(`/v1/lineage/openlineage?${query}`)).text.split('\n').filter(Boolean);
      expect(await lines(`run=${queued.id}`)).toHaveLength(6);
      const since = events[4]?.eventTime as string;
      expect(await lines(`since=${encodeURIComponent(since)}`)).toHaveLength(
        events.filter((event) => event.eventTime >= since).length,
      );
      expect(await lines(`since=${new Date(Date.now() + 60_000).toISOString()}`)).toEqual([]);
      expect((await server.get<{ error: { code: string } }>('/v1/lineage/openlineage?since=yesterday')).status).toBe(
        400,
      );
    });
  });
}
