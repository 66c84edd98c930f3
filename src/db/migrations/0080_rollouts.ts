import type { Kysely } from 'kysely';
import { columnTypes, type SqlDialectName } from '../dialect.ts';

/**
 * Canary rollouts: one row per rollout of a challenger against the champion, and every
 * decision the controller took about it (start, wait, step, promote, rollback) with the
 * evidence it saw.
 */
export async function up(db: Kysely<unknown>, dialect: SqlDialectName): Promise<void> {
  const { float } = columnTypes(dialect);
  await db.schema
    .createTable('rollouts')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('model', 'text', (col) => col.notNull())
    .addColumn('champion_version', 'text', (col) => col.notNull())
    .addColumn('challenger_version', 'text', (col) => col.notNull())
    .addColumn('status', 'text', (col) => col.notNull())
    .addColumn('step', 'integer', (col) => col.notNull())
    .addColumn('share', float, (col) => col.notNull())
    .addColumn('step_started_at', 'text', (col) => col.notNull())
    .addColumn('reason', 'text')
    .addColumn('created_at', 'text', (col) => col.notNull())
    .addColumn('updated_at', 'text', (col) => col.notNull())
    .addColumn('finished_at', 'text')
    .execute();
  await db.schema.createIndex('rollouts_status').on('rollouts').columns(['status', 'created_at']).execute();
  await db.schema
    .createTable('rollout_decisions')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('rollout_id', 'text', (col) => col.notNull())
    .addColumn('kind', 'text', (col) => col.notNull())
    .addColumn('step', 'integer', (col) => col.notNull())
    .addColumn('share_before', float, (col) => col.notNull())
    .addColumn('share_after', float, (col) => col.notNull())
    .addColumn('reason', 'text', (col) => col.notNull())
    .addColumn('evidence_json', 'text', (col) => col.notNull())
    .addColumn('created_at', 'text', (col) => col.notNull())
    .execute();
  await db.schema
    .createIndex('rollout_decisions_rollout')
    .on('rollout_decisions')
    .columns(['rollout_id', 'created_at'])
    .execute();
}
