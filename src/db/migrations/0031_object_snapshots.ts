import type { Kysely } from 'kysely';
import type { SqlDialectName } from '../dialect.ts';

/** What the object watcher/poller last saw per key, so restarts announce only real changes. */
export async function up(db: Kysely<unknown>, _dialect: SqlDialectName): Promise<void> {
  await db.schema
    .createTable('object_snapshots')
    .addColumn('key', 'text', (col) => col.primaryKey())
    .addColumn('etag', 'text', (col) => col.notNull())
    .addColumn('size', 'integer', (col) => col.notNull())
    .addColumn('seen_at', 'text', (col) => col.notNull())
    .execute();
}
