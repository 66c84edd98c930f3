import type { Kysely } from 'kysely';
import { columnTypes, type SqlDialectName } from '../dialect.ts';

/** One row per chat completion the serving layer answered (or failed to answer). */
export async function up(db: Kysely<unknown>, dialect: SqlDialectName): Promise<void> {
  const { float } = columnTypes(dialect);
  await db.schema
    .createTable('answers')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('conversation_id', 'text')
    .addColumn('model', 'text', (col) => col.notNull())
    .addColumn('model_version', 'text', (col) => col.notNull())
    .addColumn('messages_json', 'text', (col) => col.notNull())
    .addColumn('prompt', 'text', (col) => col.notNull())
    .addColumn('answer', 'text', (col) => col.notNull())
    .addColumn('params_json', 'text', (col) => col.notNull())
    .addColumn('sources_json', 'text', (col) => col.notNull())
    .addColumn('status', 'text', (col) => col.notNull())
    .addColumn('error', 'text')
    .addColumn('prompt_tokens', 'integer', (col) => col.notNull())
    .addColumn('completion_tokens', 'integer', (col) => col.notNull())
    .addColumn('ttft_ms', float)
    .addColumn('latency_ms', float, (col) => col.notNull())
    .addColumn('compute_ms', float, (col) => col.notNull())
    .addColumn('cost', float, (col) => col.notNull())
    .addColumn('created_at', 'text', (col) => col.notNull())
    .addColumn('finished_at', 'text')
    .execute();
  await db.schema
    .createIndex('answers_conversation')
    .on('answers')
    .columns(['conversation_id', 'created_at'])
    .execute();
  await db.schema.createIndex('answers_model_version').on('answers').columns(['model_version', 'created_at']).execute();
}
