import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import { createPostgresDb } from '../../src/db/postgres.ts';
import { createSqliteDb } from '../../src/db/sqlite.ts';
import { createRunStore } from '../../src/pipelines/index.ts';
import { dropSchema, freshSchemaName, POSTGRES_TEST_URL, postgresAvailable } from '../helpers/postgres.ts';
import { tempDir } from '../helpers/temp.ts';
import { startRunnerProcess } from './child.ts';
import { waitFor } from './wait.ts';

const databases = [
  { name: 'sqlite', available: async () => true },
  { name: 'postgres', available: postgresAvailable },
] as const;

for (const database of databases) {
  const available = await database.available();
  describe.skipIf(!available)(`kill -9 mid-run on ${database.name}`, () => {
    test('a restarted runner resumes the run from the last completed step without redoing it', async () => {
      const dir = tempDir();
      const schema = freshSchemaName();
      const connection =
        database.name === 'sqlite'
          ? { driver: 'sqlite', url: path.join(dir, 'bertha.sqlite') }
          : { driver: 'postgres', url: POSTGRES_TEST_URL, schema };
      if (database.name === 'postgres') onTestFinished(() => dropSchema(schema));
      const common = { ...connection, objects: path.join(dir, 'objects'), markers: dir, leaseMs: 1_000 };

      const first = startRunnerProcess({ ...common, start: { pipeline: 'gated', params: { text: 'one two three' } } });
      const runId = await waitFor('the run id', async () => /run (\S+)/.exec(first.output())?.[1], 90_000);
      const db =
        database.name === 'sqlite'
          ? createSqliteDb({ path: connection.url })
          : createPostgresDb({ url: POSTGRES_TEST_URL, schema, poolSize: 2 });
      onTestFinished(() => db.close());
      const store = createRunStore(db);
      const callsLog = path.join(dir, 'calls.log');
      await waitFor(
        'the wait step to start',
        async () => existsSync(callsLog) && readFileSync(callsLog, 'utf8').includes(`${runId} wait 1`),
      );
      first.child.kill('SIGKILL');
      await new Promise((resolve) => first.child.once('exit', resolve));

      expect((await store.getRun(runId))?.status).toBe('running');
      writeFileSync(path.join(dir, 'release'), '');
      startRunnerProcess(common);
      const run = await waitFor(
        'the resumed run to finish',
        async () => {
          const current = await store.getRun(runId);
          return current && current.status !== 'running' ? current : undefined;
        },
        90_000,
      );
      expect(run.status).toBe('succeeded');

      const calls = readFileSync(callsLog, 'utf8').trim().split('\n');
      expect(calls).toEqual([`${runId} first 1`, `${runId} wait 1`, `${runId} wait 2`, `${runId} last 1`]);
      const attempts = await store.listAttempts(runId);
      expect(attempts.map((attempt) => [attempt.step, attempt.attempt, attempt.status])).toEqual([
        ['first', 1, 'succeeded'],
        ['wait', 1, 'interrupted'],
        ['wait', 2, 'succeeded'],
        ['last', 1, 'succeeded'],
      ]);
      const owners = new Set(attempts.map((attempt) => attempt.owner));
      expect(owners.size).toBe(2);
    }, 240_000);
  });
}
