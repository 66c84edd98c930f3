import type { Transaction } from 'kysely';
import { NotFoundError } from '../core/errors.ts';
import { isoNow, newId } from '../core/ids.ts';
import { type Database, isUniqueViolation, type MetadataDb } from '../db/index.ts';

export type Rating = 'up' | 'down';

export interface FeedbackRecord {
  id: string;
  /** The answer (response id) voted on. */
  responseId: string;
  userId: string;
  modelVersion: string;
  rating: Rating;
  comment: string | null;
  correction: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface FeedbackInput {
  responseId: string;
  userId: string;
  rating: Rating;
  comment?: string | null | undefined;
  correction?: string | null | undefined;
}

export interface RecordedFeedback {
  feedback: FeedbackRecord;
  /** The user had voted on this response before; this vote replaced it. */
  replaced: boolean;
  previousRating: Rating | null;
  /** The vote was new or changed the rating, so it counts in `bertha_feedback_total`. */
  counted: boolean;
}

export interface FeedbackFilter {
  modelVersion?: string | undefined;
  rating?: Rating | undefined;
  /** Votes cast (or last changed) at or after this ISO time. */
  since?: string | undefined;
  /** Votes cast (or last changed) before this ISO time. */
  until?: string | undefined;
  /** Paging backwards: only feedback with an id lower than this one. */
  before?: string | undefined;
  limit?: number | undefined;
}

export interface RatingCount {
  modelVersion: string;
  rating: Rating;
  count: number;
}

/** Feedback on answers, stored durably before the caller hears back. */
export interface FeedbackStore {
  /** Records a vote; a second vote by the same user on the same response replaces the first. */
  record(input: FeedbackInput): Promise<RecordedFeedback>;
  get(id: string): Promise<FeedbackRecord | undefined>;
  /** Newest first. */
  list(filter?: FeedbackFilter): Promise<FeedbackRecord[]>;
  /** Current votes per model version and rating. */
  currentCounts(): Promise<RatingCount[]>;
  /** Counted votes (what `bertha_feedback_total` counts) per model version and rating, optionally since a time. */
  countedVotes(since?: string): Promise<RatingCount[]>;
}

interface FeedbackRow {
  id: string;
  answer_id: string;
  user_id: string;
  model_version: string;
  rating: string;
  comment: string | null;
  correction: string | null;
  created_at: string;
  updated_at: string;
}

function toRecord(row: FeedbackRow): FeedbackRecord {
  return {
    id: row.id,
    responseId: row.answer_id,
    userId: row.user_id,
    modelVersion: row.model_version,
    rating: row.rating as Rating,
    comment: row.comment,
    correction: row.correction,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function toCounts(rows: { model_version: string; rating: string; count: number | string | bigint }[]): RatingCount[] {
  return rows.map((row) => ({
    modelVersion: row.model_version,
    rating: row.rating as Rating,
    count: Number(row.count),
  }));
}

/** Most votes one SQLite transaction commits together. */
const MAX_BATCH = 256;

interface QueuedVote {
  input: FeedbackInput;
  resolve(result: RecordedFeedback): void;
  reject(error: unknown): void;
}

/**
 * Writes one vote inside `trx`: the answer and the user's earlier vote are read first, so a
 * missing answer throws before anything is written.
 */
async function writeVote(trx: Transaction<Database>, input: FeedbackInput): Promise<RecordedFeedback> {
  // One round trip: the answer (404 when missing) and this user's earlier vote on it, if any.
  const found = await trx
    .selectFrom('answers')
    .leftJoin('feedback', (join) =>
      join.onRef('feedback.answer_id', '=', 'answers.id').on('feedback.user_id', '=', input.userId),
    )
    .select([
      'answers.model_version as answer_model_version',
      'feedback.id',
      'feedback.answer_id',
      'feedback.user_id',
      'feedback.model_version',
      'feedback.rating',
      'feedback.comment',
      'feedback.correction',
      'feedback.created_at',
      'feedback.updated_at',
    ])
    .where('answers.id', '=', input.responseId)
    .executeTakeFirst();
  if (!found) throw new NotFoundError('response', input.responseId);
  const { answer_model_version: answerModelVersion, ...earlier } = found;
  const existing = earlier.id === null ? undefined : (earlier as FeedbackRow);
  const now = isoNow();
  const comment = input.comment ?? null;
  const correction = input.correction ?? null;
  let row: FeedbackRow;
  if (existing) {
    row = { ...existing, rating: input.rating, comment, correction, updated_at: now };
    await trx
      .updateTable('feedback')
      .set({ rating: row.rating, comment, correction, updated_at: now })
      .where('id', '=', existing.id)
      .execute();
  } else {
    row = {
      id: newId('fb'),
      answer_id: input.responseId,
      user_id: input.userId,
      model_version: answerModelVersion,
      rating: input.rating,
      comment,
      correction,
      created_at: now,
      updated_at: now,
    };
    await trx.insertInto('feedback').values(row).execute();
  }
  const previousRating = (existing?.rating as Rating | undefined) ?? null;
  const counted = previousRating !== input.rating;
  await trx
    .insertInto('feedback_votes')
    .values({
      id: newId('vote'),
      feedback_id: row.id,
      model_version: row.model_version,
      rating: input.rating,
      previous_rating: previousRating,
      counted: counted ? 1 : 0,
      created_at: now,
    })
    .execute();
  return { feedback: toRecord(row), replaced: existing !== undefined, previousRating, counted };
}

export function createFeedbackStore(db: MetadataDb): FeedbackStore {
  const kysely = db.kysely;
  const queue: QueuedVote[] = [];
  let flushing = false;

  /**
   * SQLite: group commit. Votes that arrive in the same turn of the event loop (every request
   * Node read from its sockets in one poll) are written in one transaction, so a burst of votes
   * shares one commit (and one write of each touched page) instead of paying for its own; each
   * caller still hears back only after its vote is committed. A missing answer fails only its
   * own vote.
   */
  async function flush(): Promise<void> {
    while (queue.length > 0) {
      const batch = queue.splice(0, MAX_BATCH);
      const outcomes: ({ ok: true; value: RecordedFeedback } | { ok: false; error: unknown })[] = [];
      try {
        await kysely.transaction().execute(async (trx) => {
          for (const vote of batch) {
            try {
              outcomes.push({ ok: true, value: await writeVote(trx, vote.input) });
            } catch (error) {
              if (!(error instanceof NotFoundError)) throw error;
              outcomes.push({ ok: false, error });
            }
          }
        });
        batch.forEach((vote, index) => {
          const outcome = outcomes[index];
          if (outcome?.ok) vote.resolve(outcome.value);
          else vote.reject(outcome?.error);
        });
      } catch (error) {
        for (const vote of batch) vote.reject(error);
      }
    }
    flushing = false;
  }

  function recordBatched(input: FeedbackInput): Promise<RecordedFeedback> {
    return new Promise((resolve, reject) => {
      queue.push({ input, resolve, reject });
      if (flushing) return;
      flushing = true;
      // Each request is handled in its own I/O callback, and a transaction started right away
      // would commit in microtasks before the next socket is even read: batches of one.
      // setImmediate runs after the poll phase has handled every socket that was ready.
      setImmediate(() => void flush());
    });
  }

  async function recordOnce(input: FeedbackInput): Promise<RecordedFeedback> {
    return kysely.transaction().execute((trx) => writeVote(trx, input));
  }

  return {
    async record(input) {
      if (db.dialect === 'sqlite') return recordBatched(input);
      try {
        return await recordOnce(input);
      } catch (error) {
        // A concurrent first vote by the same user won the insert; ours becomes the replacement.
        if (isUniqueViolation(error)) return recordOnce(input);
        throw error;
      }
    },

    async get(id) {
      const row = await kysely.selectFrom('feedback').selectAll().where('id', '=', id).executeTakeFirst();
      return row ? toRecord(row) : undefined;
    },

    async list(filter = {}) {
      let query = kysely.selectFrom('feedback').selectAll();
      if (filter.modelVersion) query = query.where('model_version', '=', filter.modelVersion);
      if (filter.rating) query = query.where('rating', '=', filter.rating);
      if (filter.since) query = query.where('updated_at', '>=', filter.since);
      if (filter.until) query = query.where('updated_at', '<', filter.until);
      if (filter.before) query = query.where('id', '<', filter.before);
      const rows = await query
        .orderBy('id', 'desc')
        .limit(filter.limit ?? 100)
        .execute();
      return rows.map(toRecord);
    },

    async currentCounts() {
      const rows = await kysely
        .selectFrom('feedback')
        .select(({ fn }) => ['model_version', 'rating', fn.countAll<number>().as('count')])
        .groupBy(['model_version', 'rating'])
        .execute();
      return toCounts(rows);
    },

    async countedVotes(since) {
      let query = kysely
        .selectFrom('feedback_votes')
        .select(({ fn }) => ['model_version', 'rating', fn.countAll<number>().as('count')])
        .where('counted', '=', 1);
      if (since) query = query.where('created_at', '>=', since);
      const rows = await query.groupBy(['model_version', 'rating']).execute();
      return toCounts(rows);
    },
  };
}
