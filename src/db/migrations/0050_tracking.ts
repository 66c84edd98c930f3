import type { Kysely } from 'kysely';
import { columnTypes, type SqlDialectName } from '../dialect.ts';

/**
 * Experiment tracking in MLflow's data model (mlflow/store/tracking/dbmodels/models.py):
 * times are epoch milliseconds because MLflow's protos carry them as int64, and ids keep
 * MLflow's formats (integer experiment ids, 32-hex run ids) so MLflow clients accept them.
 */
export async function up(db: Kysely<unknown>, dialect: SqlDialectName): Promise<void> {
  const { float, bigint } = columnTypes(dialect);
  const experimentId = dialect === 'postgres' ? 'serial' : 'integer';
  await db.schema
    .createTable('tracking_experiments')
    .addColumn('experiment_id', experimentId, (col) => col.primaryKey())
    .addColumn('name', 'text', (col) => col.notNull().unique())
    .addColumn('artifact_location', 'text', (col) => col.notNull())
    .addColumn('lifecycle_stage', 'text', (col) => col.notNull())
    .addColumn('creation_time', bigint, (col) => col.notNull())
    .addColumn('last_update_time', bigint, (col) => col.notNull())
    .execute();
  await db.schema
    .createTable('tracking_experiment_tags')
    .addColumn('experiment_id', 'integer', (col) => col.notNull())
    .addColumn('key', 'text', (col) => col.notNull())
    .addColumn('value', 'text', (col) => col.notNull())
    .addPrimaryKeyConstraint('tracking_experiment_tags_pk', ['experiment_id', 'key'])
    .execute();
  await db.schema
    .createTable('tracking_runs')
    .addColumn('run_id', 'text', (col) => col.primaryKey())
    .addColumn('experiment_id', 'integer', (col) => col.notNull())
    .addColumn('name', 'text', (col) => col.notNull())
    .addColumn('user_id', 'text', (col) => col.notNull())
    .addColumn('status', 'text', (col) => col.notNull())
    .addColumn('start_time', bigint, (col) => col.notNull())
    .addColumn('end_time', bigint)
    .addColumn('lifecycle_stage', 'text', (col) => col.notNull())
    .addColumn('artifact_uri', 'text', (col) => col.notNull())
    .addColumn('deleted_time', bigint)
    .execute();
  await db.schema
    .createIndex('tracking_runs_experiment')
    .on('tracking_runs')
    .columns(['experiment_id', 'start_time'])
    .execute();
  // Every logged value, in logging order: the metric history.
  await db.schema
    .createTable('tracking_metrics')
    .addColumn('run_id', 'text', (col) => col.notNull())
    .addColumn('key', 'text', (col) => col.notNull())
    .addColumn('value', float, (col) => col.notNull())
    .addColumn('timestamp', bigint, (col) => col.notNull())
    .addColumn('step', bigint, (col) => col.notNull())
    .addColumn('is_nan', 'integer', (col) => col.notNull())
    .execute();
  await db.schema.createIndex('tracking_metrics_run_key').on('tracking_metrics').columns(['run_id', 'key']).execute();
  // The value GetRun and SearchRuns see: the highest (step, timestamp, value) per key, as MLflow's SQL store keeps it.
  await db.schema
    .createTable('tracking_latest_metrics')
    .addColumn('run_id', 'text', (col) => col.notNull())
    .addColumn('key', 'text', (col) => col.notNull())
    .addColumn('value', float, (col) => col.notNull())
    .addColumn('timestamp', bigint, (col) => col.notNull())
    .addColumn('step', bigint, (col) => col.notNull())
    .addColumn('is_nan', 'integer', (col) => col.notNull())
    .addPrimaryKeyConstraint('tracking_latest_metrics_pk', ['run_id', 'key'])
    .execute();
  await db.schema
    .createIndex('tracking_latest_metrics_key')
    .on('tracking_latest_metrics')
    .columns(['key', 'value'])
    .execute();
  await db.schema
    .createTable('tracking_params')
    .addColumn('run_id', 'text', (col) => col.notNull())
    .addColumn('key', 'text', (col) => col.notNull())
    .addColumn('value', 'text', (col) => col.notNull())
    .addPrimaryKeyConstraint('tracking_params_pk', ['run_id', 'key'])
    .execute();
  await db.schema
    .createTable('tracking_run_tags')
    .addColumn('run_id', 'text', (col) => col.notNull())
    .addColumn('key', 'text', (col) => col.notNull())
    .addColumn('value', 'text', (col) => col.notNull())
    .addPrimaryKeyConstraint('tracking_run_tags_pk', ['run_id', 'key'])
    .execute();
  // LogInputs: a dataset used by a run (mlflow/protos/service.proto DatasetInput), once per (run, name, digest).
  await db.schema
    .createTable('tracking_run_inputs')
    .addColumn('run_id', 'text', (col) => col.notNull())
    .addColumn('name', 'text', (col) => col.notNull())
    .addColumn('digest', 'text', (col) => col.notNull())
    .addColumn('source_type', 'text', (col) => col.notNull())
    .addColumn('source', 'text', (col) => col.notNull())
    .addColumn('schema', 'text')
    .addColumn('profile', 'text')
    .addColumn('tags_json', 'text', (col) => col.notNull())
    .addColumn('created_time', bigint, (col) => col.notNull())
    .addPrimaryKeyConstraint('tracking_run_inputs_pk', ['run_id', 'name', 'digest'])
    .execute();

  // MLflow always has the experiment "0" named "Default".
  const now = Date.now();
  await (db as Kysely<Record<string, Record<string, unknown>>>)
    .insertInto('tracking_experiments')
    .values({
      experiment_id: 0,
      name: 'Default',
      artifact_location: 'mlflow-artifacts:/0',
      lifecycle_stage: 'active',
      creation_time: now,
      last_update_time: now,
    })
    .execute();
}
