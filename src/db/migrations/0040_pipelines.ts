import type { Kysely } from 'kysely';
import { columnTypes, type SqlDialectName } from '../dialect.ts';

/**
 * Durable pipeline runs: one row per run, per step of a run, per attempt of a step, per
 * artifact and per log line, so a runner that restarts (or another process) can resume a run
 * from what is stored and never from memory.
 */
export async function up(db: Kysely<unknown>, dialect: SqlDialectName): Promise<void> {
  const types = columnTypes(dialect);
  await db.schema
    .createTable('pipeline_runs')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('pipeline', 'text', (col) => col.notNull())
    .addColumn('status', 'text', (col) => col.notNull())
    .addColumn('executor', 'text', (col) => col.notNull())
    .addColumn('params_json', 'text', (col) => col.notNull())
    .addColumn('source', 'text', (col) => col.notNull())
    .addColumn('trigger_id', 'text')
    .addColumn('concurrency_key', 'text')
    .addColumn('owner', 'text')
    .addColumn('lease_until', 'text')
    .addColumn('cancel_requested', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('error', 'text')
    .addColumn('created_at', 'text', (col) => col.notNull())
    .addColumn('started_at', 'text')
    .addColumn('finished_at', 'text')
    .addColumn('updated_at', 'text', (col) => col.notNull())
    .execute();
  await db.schema.createIndex('pipeline_runs_status').on('pipeline_runs').columns(['status', 'created_at']).execute();
  await db.schema
    .createIndex('pipeline_runs_pipeline')
    .on('pipeline_runs')
    .columns(['pipeline', 'created_at'])
    .execute();

  await db.schema
    .createTable('pipeline_steps')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('run_id', 'text', (col) => col.notNull())
    .addColumn('name', 'text', (col) => col.notNull())
    .addColumn('status', 'text', (col) => col.notNull())
    .addColumn('attempts', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('cache_key', 'text')
    .addColumn('cached_from', 'text')
    .addColumn('progress', types.float)
    .addColumn('progress_message', 'text')
    .addColumn('error', 'text')
    .addColumn('started_at', 'text')
    .addColumn('finished_at', 'text')
    .addColumn('updated_at', 'text', (col) => col.notNull())
    .addUniqueConstraint('pipeline_steps_run_name', ['run_id', 'name'])
    .execute();
  await db.schema.createIndex('pipeline_steps_cache').on('pipeline_steps').columns(['cache_key', 'status']).execute();

  await db.schema
    .createTable('pipeline_attempts')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('run_id', 'text', (col) => col.notNull())
    .addColumn('step', 'text', (col) => col.notNull())
    .addColumn('attempt', 'integer', (col) => col.notNull())
    .addColumn('status', 'text', (col) => col.notNull())
    .addColumn('owner', 'text', (col) => col.notNull())
    .addColumn('error', 'text')
    .addColumn('started_at', 'text', (col) => col.notNull())
    .addColumn('finished_at', 'text')
    .execute();
  await db.schema.createIndex('pipeline_attempts_run').on('pipeline_attempts').columns(['run_id', 'step']).execute();

  await db.schema
    .createTable('pipeline_artifacts')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('run_id', 'text', (col) => col.notNull())
    .addColumn('step', 'text', (col) => col.notNull())
    .addColumn('name', 'text', (col) => col.notNull())
    .addColumn('object_key', 'text', (col) => col.notNull())
    .addColumn('size', 'integer', (col) => col.notNull())
    .addColumn('etag', 'text', (col) => col.notNull())
    .addColumn('created_at', 'text', (col) => col.notNull())
    .addUniqueConstraint('pipeline_artifacts_run_step_name', ['run_id', 'step', 'name'])
    .execute();

  await db.schema
    .createTable('pipeline_logs')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('run_id', 'text', (col) => col.notNull())
    .addColumn('step', 'text', (col) => col.notNull())
    .addColumn('attempt', 'integer', (col) => col.notNull())
    .addColumn('level', 'text', (col) => col.notNull())
    .addColumn('message', 'text', (col) => col.notNull())
    .addColumn('fields_json', 'text')
    .addColumn('created_at', 'text', (col) => col.notNull())
    .execute();
  await db.schema.createIndex('pipeline_logs_run_step').on('pipeline_logs').columns(['run_id', 'step', 'id']).execute();
}
