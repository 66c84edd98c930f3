import type { Kysely } from 'kysely';
import type { SqlDialectName } from '../dialect.ts';

export async function up(db: Kysely<unknown>, _dialect: SqlDialectName): Promise<void> {
  await db.schema
    .createTable('events')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('type', 'text', (col) => col.notNull())
    .addColumn('source', 'text', (col) => col.notNull())
    .addColumn('subject', 'text')
    .addColumn('dedupe_key', 'text', (col) => col.unique())
    .addColumn('payload_json', 'text', (col) => col.notNull())
    .addColumn('created_at', 'text', (col) => col.notNull())
    .execute();
  await db.schema.createIndex('events_type_created').on('events').columns(['type', 'created_at']).execute();
}
