import type { Kysely } from 'kysely';
import { columnTypes, type SqlDialectName } from '../dialect.ts';

/**
 * The model registry in MLflow's data model (mlflow/store/model_registry/dbmodels/models.py),
 * plus `bundle_json`: the Bertha model bundle a version serves.
 */
export async function up(db: Kysely<unknown>, dialect: SqlDialectName): Promise<void> {
  const { bigint } = columnTypes(dialect);
  await db.schema
    .createTable('registered_models')
    .addColumn('name', 'text', (col) => col.primaryKey())
    .addColumn('description', 'text')
    .addColumn('creation_timestamp', bigint, (col) => col.notNull())
    .addColumn('last_updated_timestamp', bigint, (col) => col.notNull())
    .execute();
  await db.schema
    .createTable('registered_model_tags')
    .addColumn('name', 'text', (col) => col.notNull())
    .addColumn('key', 'text', (col) => col.notNull())
    .addColumn('value', 'text', (col) => col.notNull())
    .addPrimaryKeyConstraint('registered_model_tags_pk', ['name', 'key'])
    .execute();
  await db.schema
    .createTable('model_versions')
    .addColumn('name', 'text', (col) => col.notNull())
    .addColumn('version', 'integer', (col) => col.notNull())
    .addColumn('description', 'text')
    .addColumn('user_id', 'text')
    .addColumn('current_stage', 'text', (col) => col.notNull())
    .addColumn('source', 'text', (col) => col.notNull())
    .addColumn('run_id', 'text')
    .addColumn('run_link', 'text')
    .addColumn('status', 'text', (col) => col.notNull())
    .addColumn('status_message', 'text')
    .addColumn('bundle_json', 'text')
    .addColumn('creation_timestamp', bigint, (col) => col.notNull())
    .addColumn('last_updated_timestamp', bigint, (col) => col.notNull())
    .addPrimaryKeyConstraint('model_versions_pk', ['name', 'version'])
    .execute();
  await db.schema.createIndex('model_versions_run').on('model_versions').column('run_id').execute();
  await db.schema
    .createTable('model_version_tags')
    .addColumn('name', 'text', (col) => col.notNull())
    .addColumn('version', 'integer', (col) => col.notNull())
    .addColumn('key', 'text', (col) => col.notNull())
    .addColumn('value', 'text', (col) => col.notNull())
    .addPrimaryKeyConstraint('model_version_tags_pk', ['name', 'version', 'key'])
    .execute();
  await db.schema
    .createTable('registered_model_aliases')
    .addColumn('name', 'text', (col) => col.notNull())
    .addColumn('alias', 'text', (col) => col.notNull())
    .addColumn('version', 'integer', (col) => col.notNull())
    .addColumn('updated_at', 'text', (col) => col.notNull())
    .addPrimaryKeyConstraint('registered_model_aliases_pk', ['name', 'alias'])
    .execute();
}
