import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import type { MetadataDb } from '../../src/db/index.ts';
import { createPostgresDb } from '../../src/db/postgres.ts';
import { createSqliteDb } from '../../src/db/sqlite.ts';
import { createRunStore } from '../../src/pipelines/index.ts';
import { dropSchema, freshSchemaName, POSTGRES_TEST_URL, postgresAvailable } from '../helpers/postgres.ts';
import { tempDir } from '../helpers/temp.ts';
import { startRunnerProcess } from './child.ts';
import { testCatalog } from './fixtures.ts';
import { waitFor } from './wait.ts';

const databases = [
  { name: 'sqlite', available: async () => true },
  { name: 'postgres', available: postgresAvailable },
] as const;

for (const database of databases) {
  const available = await database.available();
  describe.skipIf(!available)(`two Bertha processes on one ${database.name} database`, () => {
    test('each run is claimed and each step executed by exactly one runner', async () => {
      const dir = tempDir();
      const schema = freshSchemaName();
      if (database.name === 'postgres') onTestFinished(() => dropSchema(schema));
      const connection =
        database.name === 'sqlite'
          ? { driver: 'sqlite', url: path.join(dir, 'bertha.sqlite') }
          : { driver: 'postgres', url: POSTGRES_TEST_URL, schema };
      const db: MetadataDb =
        database.name === 'sqlite'
          ? createSqliteDb({ path: connection.url })
          : createPostgresDb({ url: POSTGRES_TEST_URL, schema, poolSize: 2 });
      await db.migrate();
      onTestFinished(() => db.close());
      const store = createRunStore(db);
      const definition = testCatalog(dir).get('word-stats');
      // Queued before either process starts, so both race for every row from their first pass.
      const ids: string[] = [];
      for (let i = 0; i < 16; i++) {
        const run = await store.createRun({
          definition,
          params: { text: `text number ${i}`, minLength: 1 },
          source: 'test',
        });
        ids.push(run.id);
      }
      const common = { ...connection, objects: path.join(dir, 'objects'), markers: dir, leaseMs: 10_000 };
      const processes = [startRunnerProcess(common), startRunnerProcess(common)];
      await waitFor(
        'every run to finish',
        async () => (await store.listRuns({ limit: 100 })).every((run) => run.status === 'succeeded'),
        90_000,
      );
      for (const { child } of processes) child.kill('SIGKILL');

      const calls = readFileSync(path.join(dir, 'calls.log'), 'utf8').trim().split('\n');
      expect(calls).toHaveLength(16 * 4);
      expect(new Set(calls).size).toBe(calls.length);
      const owners = new Set<string>();
      for (const id of ids) {
        const attempts = await store.listAttempts(id);
        expect(attempts).toHaveLength(4);
        const runOwners = new Set(attempts.map((attempt) => attempt.owner));
        expect(runOwners.size).toBe(1);
        for (const owner of runOwners) owners.add(owner);
      }
      expect(owners.size).toBeGreaterThanOrEqual(1);
    }, 120_000);
  });
}
