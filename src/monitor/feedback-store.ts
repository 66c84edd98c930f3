import { NotFoundError } from '../core/errors.ts';
import { isoNow, newId } from '../core/ids.ts';
import { isUniqueViolation, type MetadataDb } from '../db/index.ts';

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

export function createFeedbackStore(db: MetadataDb): FeedbackStore {
  const kysely = db.kysely;

  async function recordOnce(input: FeedbackInput): Promise<RecordedFeedback> {
    return kysely.transaction().execute(async (trx) => {
      const answer = await trx
        .selectFrom('answers')
        .select('model_version')
        .where('id', '=', input.responseId)
        .executeTakeFirst();
      if (!answer) throw new NotFoundError('response', input.responseId);
      const existing = await trx
        .selectFrom('feedback')
        .selectAll()
        .where('answer_id', '=', input.responseId)
        .where('user_id', '=', input.userId)
        .executeTakeFirst();
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
          model_version: answer.model_version,
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
    });
  }

  return {
    async record(input) {
      try {
        return await recordOnce(input);
      } catch (error) {
        // PostgreSQL: a concurrent first vote by the same user won the insert; ours becomes the replacement.
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
