import { sql } from 'kysely';
import pg from 'pg';
import { describe, expect, onTestFinished, test } from 'vitest';
import { describeError } from '../../src/core/error-body.ts';
import { createPostgresDb } from '../../src/db/postgres.ts';
import { dropSchema, freshSchemaName, POSTGRES_TEST_URL, postgresAvailable } from '../helpers/postgres.ts';

describe.skipIf(!(await postgresAvailable()))('metadata DB on PostgreSQL', () => {
  test('an idle connection the server ends (a restart) neither kills the process nor fails the next query', async () => {
    const schema = freshSchemaName();
    const db = createPostgresDb({ url: POSTGRES_TEST_URL, schema, poolSize: 1 });
    onTestFinished(async () => {
      await db.close();
      await dropSchema(schema);
    });
    await db.migrate();
    const pid = (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(db.kysely)).rows[0]?.pid;
    const admin = new pg.Client({ connectionString: POSTGRES_TEST_URL });
    await admin.connect();
    onTestFinished(() => admin.end());
    const ended = await admin.query('select pg_terminate_backend($1) as ok', [pid]);
    expect(ended.rows[0]?.ok).toBe(true);
    // The pool hears of it on the idle connection; an unhandled 'error' there would end the test run.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const after = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(db.kysely);
    expect(after.rows[0]?.pid).not.toBe(pid);
  });

  test('a connection ended while checked out between two queries fails its request with a 503, not the process', async () => {
    const schema = freshSchemaName();
    const db = createPostgresDb({ url: POSTGRES_TEST_URL, schema, poolSize: 1 });
    onTestFinished(async () => {
      await db.close();
      await dropSchema(schema);
    });
    await db.migrate();
    const admin = new pg.Client({ connectionString: POSTGRES_TEST_URL });
    await admin.connect();
    onTestFinished(() => admin.end());
    const failure = await db.kysely
      .transaction()
      .execute(async (trx) => {
        const pid = (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx)).rows[0]?.pid;
        await admin.query('select pg_terminate_backend($1)', [pid]);
        // The connection's 'error' arrives while no query runs on it: pg-pool does not listen then.
        await new Promise((resolve) => setTimeout(resolve, 200));
        await sql`select 1`.execute(trx);
      })
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    expect(describeError(failure)).toMatchObject({ status: 503, code: 'database_unavailable' });
    // The broken connection was not put back: the pool of one answers on a new one.
    const after = await sql<{ one: number }>`select 1 as one`.execute(db.kysely);
    expect(after.rows[0]?.one).toBe(1);
  });
});
