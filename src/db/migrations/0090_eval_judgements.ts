import type { Kysely } from 'kysely';
import type { SqlDialectName } from '../dialect.ts';

/**
 * Verdicts of the evaluation judge (src/eval/judge.ts), so the same answer on the same item
 * and passages is judged once per prompt version and judge model.
 */
export async function up(db: Kysely<unknown>, _dialect: SqlDialectName): Promise<void> {
  await db.schema
    .createTable('eval_judgements')
    .addColumn('prompt_version', 'text', (col) => col.notNull())
    .addColumn('judge_model', 'text', (col) => col.notNull())
    .addColumn('item_id', 'text', (col) => col.notNull())
    // SHA-256 of the answer and the passages it was judged against.
    .addColumn('digest', 'text', (col) => col.notNull())
    .addColumn('verdict_json', 'text', (col) => col.notNull())
    .addColumn('created_at', 'text', (col) => col.notNull())
    .addPrimaryKeyConstraint('eval_judgements_pk', ['prompt_version', 'judge_model', 'item_id', 'digest'])
    .execute();
}
