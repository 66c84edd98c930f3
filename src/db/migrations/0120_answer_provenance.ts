import type { Kysely } from 'kysely';

/** What produced an answer: file digests, template, effective settings, knowledge-base snapshot. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('answers').addColumn('provenance_json', 'text').execute();
}
