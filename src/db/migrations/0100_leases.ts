import type { Kysely } from 'kysely';
import type { SqlDialectName } from '../dialect.ts';

/**
 * Work one process of a deployment does at a time (exporting the feedback series read from
 * the database, the quality watcher): the process named in `holder` does it until
 * `expires_at`, and renews before then; another takes over once it lapses.
 */
export async function up(db: Kysely<unknown>, _dialect: SqlDialectName): Promise<void> {
  await db.schema
    .createTable('leases')
    .addColumn('name', 'text', (col) => col.primaryKey())
    .addColumn('holder', 'text', (col) => col.notNull())
    .addColumn('expires_at', 'text', (col) => col.notNull())
    .execute();
}
