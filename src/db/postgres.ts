import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { MetadataDb } from './index.ts';
import { runMigrations } from './migrate.ts';
import { resilientPool } from './pg-pool.ts';
import type { Database } from './schema.ts';

export interface PostgresDbOptions {
  url: string;
  /** Schema holding Bertha's tables; created on migrate. */
  schema: string;
  poolSize: number;
}

/**
 * Session advisory lock held around Bertha's migrations. Kysely's migrator lists every table in
 * every schema before it takes its own lock, and that listing fails when another schema's table
 * is dropped under it; replicas starting together would also race to create the migration
 * tables. Anything that drops a Bertha schema takes the same lock.
 */
export const SCHEMA_CHANGE_LOCK = 7_362_418_201;

export function createPostgresDb(options: PostgresDbOptions): MetadataDb {
  // An idle connection that dies (PostgreSQL restarting) is dropped by the pool and the next
  // query opens a new one.
  const pool = resilientPool(
    {
      connectionString: options.url,
      max: options.poolSize,
      // Every pooled connection resolves unqualified table names in Bertha's schema. Parallel
      // query buys nothing for these short statements, and its workers were seen failing to
      // resolve a schema created moments before by another connection.
      options: `-c search_path=${options.schema} -c max_parallel_workers_per_gather=0`,
    },
    () => undefined,
  );
  const kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return {
    dialect: 'postgres',
    kysely,
    migrate: async () => {
      // A client of its own: with a pool of one, migrations would wait behind the lock holder.
      const lock = new pg.Client({ connectionString: options.url });
      // Ended under us, the lock's next query fails; unheard, the error would end the process.
      lock.on('error', () => undefined);
      await lock.connect();
      try {
        await lock.query('select pg_advisory_lock($1)', [SCHEMA_CHANGE_LOCK]);
        await sql`create schema if not exists ${sql.id(options.schema)}`.execute(kysely);
        return await runMigrations(kysely as Kysely<unknown>, 'postgres', options.schema);
      } finally {
        // Closing the session releases the lock.
        await lock.end();
      }
    },
    ping: async () => {
      await sql`select 1`.execute(kysely);
    },
    close: () => kysely.destroy(),
  };
}
