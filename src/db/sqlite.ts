import { mkdirSync } from 'node:fs';
import path from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, SqliteDialect, type SqliteDatabase as SqliteDialectDatabase, sql } from 'kysely';
import type { MetadataDb } from './index.ts';
import { runMigrations } from './migrate.ts';
import type { Database } from './schema.ts';
import { startCheckpointer } from './sqlite-checkpointer.ts';

export interface SqliteDbOptions {
  /** File path, or `:memory:`. */
  path: string;
}

/** Distinct SQL texts whose prepared statements are kept; Bertha issues a few hundred. */
const STATEMENT_CACHE_SIZE = 1_000;

/**
 * Kysely prepares every statement it runs, and on the feedback write path preparing cost
 * as much as executing. Queries built by Kysely have stable SQL text with bound values, so
 * a statement prepared once is reused. Sharing is safe because Kysely's SQLite driver runs
 * one query at a time on its single connection, a stream holding it until iteration ends.
 */
function cachingStatements(connection: SqliteDatabase.Database): SqliteDialectDatabase {
  const cache = new Map<string, SqliteDatabase.Statement>();
  return {
    close: () => connection.close(),
    prepare(sqlText: string) {
      let statement = cache.get(sqlText);
      if (!statement) {
        if (cache.size >= STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value as string);
        statement = connection.prepare(sqlText);
        cache.set(sqlText, statement);
      }
      return statement;
    },
  };
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
  const checkpointer = options.path === ':memory:' ? undefined : startCheckpointer(options.path);
  if (checkpointer) connection.pragma('wal_autocheckpoint = 0');
  const kysely = new Kysely<Database>({ dialect: new SqliteDialect({ database: cachingStatements(connection) }) });
  return {
    dialect: 'sqlite',
    kysely,
    migrate: () => runMigrations(kysely as Kysely<unknown>, 'sqlite'),
    ping: async () => {
      await sql`select 1`.execute(kysely);
    },
    close: async () => {
      await checkpointer?.close();
      await kysely.destroy();
    },
  };
}
