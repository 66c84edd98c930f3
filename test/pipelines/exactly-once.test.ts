import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import { createLogger } from '../../src/core/logger.ts';
import type { MetadataDb } from '../../src/db/index.ts';
import { createPostgresDb } from '../../src/db/postgres.ts';
import { createSqliteDb } from '../../src/db/sqlite.ts';
import { createFsObjectStore } from '../../src/objects/fs.ts';
import { createLocalRunner, createRunStore } from '../../src/pipelines/index.ts';
import { dropSchema, freshSchemaName, POSTGRES_TEST_URL, postgresAvailable } from '../helpers/postgres.ts';
import { tempDir } from '../helpers/temp.ts';
import { testCatalog } from './fixtures.ts';
import { waitFor } from './wait.ts';

const databases = [
  { name: 'sqlite', available: async () => true },
  { name: 'postgres', available: postgresAvailable },
] as const;

for (const database of databases) {
  const available = await database.available();
  describe.skipIf(!available)(`two runners on one ${database.name} database`, () => {
    test('each run is claimed and each step executed by exactly one runner', async () => {
      const dir = tempDir();
      const schema = freshSchemaName();
      if (database.name === 'postgres') onTestFinished(() => dropSchema(schema));
      // Two connection pools, as two Bertha processes would have.
      const open = (): MetadataDb =>
        database.name === 'sqlite'
          ? createSqliteDb({ path: path.join(dir, 'bertha.sqlite') })
          : createPostgresDb({ url: POSTGRES_TEST_URL, schema, poolSize: 4 });
      const dbs = [open(), open()];
      await (dbs[0] as MetadataDb).migrate();
      onTestFinished(async () => {
        for (const db of dbs) await db.close();
      });
      const objects = createFsObjectStore({ root: path.join(dir, 'objects') });
      const runners = dbs.map((db, index) =>
        createLocalRunner({
          store: createRunStore(db),
          objects,
          catalog: testCatalog(dir),
          logger: createLogger('silent'),
          stepConcurrency: 2,
          maxConcurrentRuns: 3,
          pollIntervalMs: 5,
          leaseMs: 10_000,
          owner: `runner-${index}`,
        }),
      );
      const store = createRunStore(dbs[0] as MetadataDb);
      const ids: string[] = [];
      // Queued before either runner starts, so both race for every row from the first pass.
      for (let i = 0; i < 16; i++) {
        ids.push(
          (await runners[0]?.startRun({ pipeline: 'word-stats', params: { text: `text number ${i}` }, source: 'test' }))
            ?.id as string,
        );
      }
      for (const runner of runners) {
        runner.start();
        onTestFinished(() => runner.stop());
      }
      await Promise.all([runners[0]?.tick(), runners[1]?.tick(), runners[0]?.tick(), runners[1]?.tick()]);
      await waitFor(
        'every run to finish',
        async () => (await store.listRuns({ limit: 100 })).every((run) => run.status === 'succeeded'),
        60_000,
      );

      const calls = readFileSync(path.join(dir, 'calls.log'), 'utf8').trim().split('\n');
      expect(calls).toHaveLength(16 * 4);
      expect(new Set(calls).size).toBe(calls.length);
      const owners = new Map<string, Set<string>>();
      for (const id of ids) {
        const attempts = await store.listAttempts(id);
        expect(attempts).toHaveLength(4);
        owners.set(id, new Set(attempts.map((attempt) => attempt.owner)));
      }
      for (const set of owners.values()) expect(set.size).toBe(1);
      const used = new Set([...owners.values()].flatMap((set) => [...set]));
      // Each runner holds at most 3 runs at a time, so 16 runs need both.
      expect(used.size).toBe(2);
    });
  });
}
