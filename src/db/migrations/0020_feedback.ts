import type { Kysely } from 'kysely';
import type { SqlDialectName } from '../dialect.ts';

/**
 * Human feedback on answers. `feedback` holds each user's current vote on a response (one
 * per response and user); `feedback_votes` is the append-only record of every vote cast,
 * from which the Prometheus counters are rebuilt at start-up so a restart is not a reset.
 */
export async function up(db: Kysely<unknown>, _dialect: SqlDialectName): Promise<void> {
  await db.schema
    .createTable('feedback')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('answer_id', 'text', (col) => col.notNull())
    .addColumn('user_id', 'text', (col) => col.notNull())
    .addColumn('model_version', 'text', (col) => col.notNull())
    .addColumn('rating', 'text', (col) => col.notNull())
    .addColumn('comment', 'text')
    .addColumn('correction', 'text')
    .addColumn('created_at', 'text', (col) => col.notNull())
    .addColumn('updated_at', 'text', (col) => col.notNull())
    .addUniqueConstraint('feedback_answer_user', ['answer_id', 'user_id'])
    .execute();
  await db.schema
    .createIndex('feedback_model_version_updated')
    .on('feedback')
    .columns(['model_version', 'updated_at'])
    .execute();
  await db.schema.createIndex('feedback_updated').on('feedback').columns(['updated_at']).execute();

  await db.schema
    .createTable('feedback_votes')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('feedback_id', 'text', (col) => col.notNull())
    .addColumn('model_version', 'text', (col) => col.notNull())
    .addColumn('rating', 'text', (col) => col.notNull())
    .addColumn('previous_rating', 'text')
    .addColumn('counted', 'integer', (col) => col.notNull())
    .addColumn('created_at', 'text', (col) => col.notNull())
    .execute();
  await db.schema
    .createIndex('feedback_votes_counted')
    .on('feedback_votes')
    .columns(['counted', 'created_at'])
    .execute();
}
