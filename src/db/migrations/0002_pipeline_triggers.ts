import type { Kysely } from 'kysely';
import type { SqlDialectName } from '../dialect.ts';

/**
 * A sensor's decision to start a pipeline, recorded before any run exists, so a trigger
 * outlives a crash and a runner that starts later still picks it up.
 */
export async function up(db: Kysely<unknown>, _dialect: SqlDialectName): Promise<void> {
  await db.schema
    .createTable('pipeline_triggers')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('sensor', 'text', (col) => col.notNull())
    .addColumn('event_id', 'text')
    .addColumn('pipeline', 'text', (col) => col.notNull())
    .addColumn('params_json', 'text', (col) => col.notNull())
    .addColumn('concurrency_key', 'text')
    .addColumn('status', 'text', (col) => col.notNull())
    .addColumn('reason', 'text')
    .addColumn('run_id', 'text')
    .addColumn('created_at', 'text', (col) => col.notNull())
    .addColumn('updated_at', 'text', (col) => col.notNull())
    .execute();
  await db.schema
    .createIndex('pipeline_triggers_status')
    .on('pipeline_triggers')
    .columns(['status', 'created_at'])
    .execute();
}
