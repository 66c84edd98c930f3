import type { Kysely } from 'kysely';

/** What the context budget left out of an answer's prompt (passages, earlier turns, max_tokens). */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('answers').addColumn('trimmed_json', 'text').execute();
}
