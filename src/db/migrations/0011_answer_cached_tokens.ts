import type { Kysely } from 'kysely';

/** Prompt tokens the runtime reused from its cache, reported as OpenAI's `cached_tokens`. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('answers')
    .addColumn('cached_prompt_tokens', 'integer', (col) => col.notNull().defaultTo(0))
    .execute();
}
