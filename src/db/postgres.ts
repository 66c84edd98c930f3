import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { MetadataDb } from './index.ts';
import { runMigrations } from './migrate.ts';
import type { Database } from './schema.ts';

export interface PostgresDbOptions {
  url: string;
  /** Schema holding Bertha's tables; created on migrate. */
  schema: string;
  poolSize: number;
}

export function createPostgresDb(options: PostgresDbOptions): MetadataDb {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolSize,
    // Every pooled connection resolves unqualified table names in Bertha's schema. Parallel
    // query buys nothing for these short statements, and its workers were seen failing to
    // resolve a schema created moments before by another connection.
    options: `-c search_path=${options.schema} -c max_parallel_workers_per_gather=0`,
  });
  const kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return {
    dialect: 'postgres',
    kysely,
    migrate: async () => {
      await sql`create schema if not exists ${sql.id(options.schema)}`.execute(kysely);
      return runMigrations(kysely as Kysely<unknown>, 'postgres', options.schema);
    },
    ping: async () => {
      await sql`select 1`.execute(kysely);
    },
    close: () => kysely.destroy(),
  };
}
