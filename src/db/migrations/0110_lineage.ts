import type { Kysely } from 'kysely';
import type { SqlDialectName } from '../dialect.ts';

/**
 * Lineage the existing rows do not hold (src/lineage/): which feedback rows and document
 * versions a dataset version used, which tracking runs trained on it, which versions a gate
 * decided on and which rollout it started; and the OpenLineage run events of pipeline steps.
 */
export async function up(db: Kysely<unknown>, _dialect: SqlDialectName): Promise<void> {
  await db.schema
    .createTable('lineage_edges')
    .addColumn('from_kind', 'text', (col) => col.notNull())
    .addColumn('from_id', 'text', (col) => col.notNull())
    .addColumn('to_kind', 'text', (col) => col.notNull())
    .addColumn('to_id', 'text', (col) => col.notNull())
    .addColumn('relation', 'text', (col) => col.notNull())
    .addColumn('attributes_json', 'text', (col) => col.notNull())
    .addColumn('created_at', 'text', (col) => col.notNull())
    .addPrimaryKeyConstraint('lineage_edges_pk', ['from_kind', 'from_id', 'to_kind', 'to_id', 'relation'])
    .execute();
  await db.schema.createIndex('lineage_edges_to').on('lineage_edges').columns(['to_kind', 'to_id']).execute();
  await db.schema
    .createTable('openlineage_events')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('event_time', 'text', (col) => col.notNull())
    .addColumn('event_type', 'text', (col) => col.notNull())
    .addColumn('run_uuid', 'text', (col) => col.notNull())
    .addColumn('job_name', 'text', (col) => col.notNull())
    .addColumn('parent_run_uuid', 'text')
    .addColumn('parent_job_name', 'text')
    .addColumn('pipeline_run_id', 'text', (col) => col.notNull())
    .addColumn('step', 'text', (col) => col.notNull())
    .addColumn('attempt', 'integer', (col) => col.notNull())
    .addColumn('inputs_json', 'text', (col) => col.notNull())
    .addColumn('outputs_json', 'text', (col) => col.notNull())
    .addColumn('error', 'text')
    .execute();
  await db.schema.createIndex('openlineage_events_time').on('openlineage_events').columns(['event_time']).execute();
  await db.schema
    .createIndex('openlineage_events_run')
    .on('openlineage_events')
    .columns(['pipeline_run_id', 'event_time'])
    .execute();
}
