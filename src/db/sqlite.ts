import { mkdirSync } from 'node:fs';
import path from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import type { MetadataDb } from './index.ts';
import { runMigrations } from './migrate.ts';
import type { Database } from './schema.ts';

export interface SqliteDbOptions {
  /** File path, or `:memory:`. */
  path: string;
}

export function createSqliteDb(options: SqliteDbOptions): MetadataDb {
  if (options.path !== ':memory:') mkdirSync(path.dirname(options.path), { recursive: true });
  const connection = new SqliteDatabase(options.path);
  connection.pragma('journal_mode = WAL');
  // NORMAL in WAL mode keeps every committed transaction across a process crash (kill -9);
  // only an OS crash or power loss can drop the last commits.
  connection.pragma('synchronous = NORMAL');
  // Several Bertha processes (server, CLI, a step) may share the file.
  connection.pragma('busy_timeout = 5000');
  connection.pragma('foreign_keys = ON');
  const kysely = new Kysely<Database>({ dialect: new SqliteDialect({ database: connection }) });
  return {
    dialect: 'sqlite',
    kysely,
    migrate: () => runMigrations(kysely as Kysely<unknown>, 'sqlite'),
    ping: async () => {
      await sql`select 1`.execute(kysely);
    },
    close: () => kysely.destroy(),
  };
}
