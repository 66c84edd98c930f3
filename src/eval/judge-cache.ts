import { isoNow } from '../core/ids.ts';
import type { MetadataDb } from '../db/index.ts';
import { type FaithfulnessJudge, type JudgeInput, type JudgeVerdict, judgementDigest } from './judge.ts';

/** Which verdict: the same prompt version, judge model, item and answer-with-passages get the same one. */
export interface JudgementKey {
  promptVersion: string;
  judgeModel: string;
  itemId: string;
  /** judgementDigest(answer, contexts). */
  digest: string;
}

/** Verdicts kept across evaluations, so a champion scored again costs no judge calls. */
export interface JudgementCache {
  get(key: JudgementKey): Promise<JudgeVerdict | undefined>;
  /** Keeps the first verdict for a key; a second put of the same key changes nothing. */
  put(key: JudgementKey, verdict: JudgeVerdict): Promise<void>;
}

/** The row the `0090_eval_judgements` migration creates; this module is its only reader and writer. */
interface EvalJudgementsTable {
  prompt_version: string;
  judge_model: string;
  item_id: string;
  digest: string;
  verdict_json: string;
  created_at: string;
}

/** Verdicts in the metadata database (SQLite or PostgreSQL), table `eval_judgements`. */
export function createDbJudgementCache(db: MetadataDb): JudgementCache {
  const kysely = db.kysely.withTables<{ eval_judgements: EvalJudgementsTable }>();
  return {
    async get(key) {
      const row = await kysely
        .selectFrom('eval_judgements')
        .select('verdict_json')
        .where('prompt_version', '=', key.promptVersion)
        .where('judge_model', '=', key.judgeModel)
        .where('item_id', '=', key.itemId)
        .where('digest', '=', key.digest)
        .executeTakeFirst();
      return row ? (JSON.parse(row.verdict_json) as JudgeVerdict) : undefined;
    },
    async put(key, verdict) {
      await kysely
        .insertInto('eval_judgements')
        .values({
          prompt_version: key.promptVersion,
          judge_model: key.judgeModel,
          item_id: key.itemId,
          digest: key.digest,
          verdict_json: JSON.stringify(verdict),
          created_at: isoNow(),
        })
        .onConflict((oc) => oc.columns(['prompt_version', 'judge_model', 'item_id', 'digest']).doNothing())
        .execute();
    },
  };
}

export function judgementKey(judge: FaithfulnessJudge, input: JudgeInput): JudgementKey {
  return {
    promptVersion: judge.promptVersion,
    judgeModel: judge.model,
    itemId: input.itemId,
    digest: judgementDigest(input.answer, input.contexts),
  };
}

/** A cached verdict when there is one; otherwise asks the judge and keeps its verdict. Judge errors are not cached. */
export async function judgeWithCache(
  judge: FaithfulnessJudge,
  cache: JudgementCache | undefined,
  input: JudgeInput,
  signal?: AbortSignal,
): Promise<{ verdict: JudgeVerdict; cached: boolean }> {
  const key = judgementKey(judge, input);
  const cached = await cache?.get(key);
  if (cached) return { verdict: cached, cached: true };
  const verdict = await judge.judge(input, signal);
  await cache?.put(key, verdict);
  return { verdict, cached: false };
}
