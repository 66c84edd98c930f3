import type { Selectable, Transaction } from 'kysely';
import { NotFoundError } from '../core/errors.ts';
import { isoNow, newId } from '../core/ids.ts';
import { type NewestFirstPage, newestFirst } from '../core/paging.ts';
import {
  type Database,
  type FeedbackTable,
  isUniqueViolation,
  type MetadataDb,
  type SqlDialectName,
} from '../db/index.ts';

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

/**
 * A change to a recorded vote, by its id: the comment and correction that follow a thumbs
 * click, or a changed rating. A field left undefined keeps its value; `null` clears it.
 */
export interface FeedbackUpdate {
  id: string;
  /** Only the user who cast the vote may change it; anyone else gets a 404. */
  userId: string;
  rating?: Rating | undefined;
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

export interface FeedbackFilter extends NewestFirstPage {
  modelVersion?: string | undefined;
  rating?: Rating | undefined;
  /** Votes cast (or last changed) at or after this ISO time. */
  since?: string | undefined;
  /** Votes cast (or last changed) before this ISO time. */
  until?: string | undefined;
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
  /**
   * Updates a recorded vote in place. Only a changed rating is a vote (appended to
   * `feedback_votes` and counted); a comment or correction alone is not.
   */
  update(input: FeedbackUpdate): Promise<RecordedFeedback>;
  get(id: string): Promise<FeedbackRecord | undefined>;
  /** Newest first. */
  list(filter?: FeedbackFilter): Promise<FeedbackRecord[]>;
  /** Current votes per model version and rating. */
  currentCounts(): Promise<RatingCount[]>;
  /** Counted votes (what `bertha_feedback_total` counts) per model version and rating, optionally since a time. */
  countedVotes(since?: string): Promise<RatingCount[]>;
  /**
   * When the newest counted vote on a model version was cast, optionally at or before a time
   * (the loop's feedback-to-alert starts there).
   */
  newestCountedVote(modelVersion: string, atOrBefore?: string): Promise<string | undefined>;
}

type FeedbackRow = Selectable<FeedbackTable>;

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

type FeedbackWrite = (trx: Transaction<Database>) => Promise<RecordedFeedback>;

interface QueuedWrite {
  write: FeedbackWrite;
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
  await appendVote(trx, row, previousRating, counted);
  return { feedback: toRecord(row), replaced: existing !== undefined, previousRating, counted };
}

async function appendVote(
  trx: Transaction<Database>,
  row: FeedbackRow,
  previousRating: Rating | null,
  counted: boolean,
): Promise<void> {
  await trx
    .insertInto('feedback_votes')
    .values({
      id: newId('vote'),
      feedback_id: row.id,
      model_version: row.model_version,
      rating: row.rating,
      previous_rating: previousRating,
      counted: counted ? 1 : 0,
      created_at: row.updated_at,
    })
    .execute();
}

/** Updates one vote inside `trx`; a missing vote, or another user's, throws before anything is written. */
async function writeUpdate(
  trx: Transaction<Database>,
  input: FeedbackUpdate,
  dialect: SqlDialectName,
): Promise<RecordedFeedback> {
  let query = trx.selectFrom('feedback').selectAll().where('id', '=', input.id);
  // PostgreSQL: two racing rating changes must not both read the old rating and both count.
  if (dialect === 'postgres') query = query.forUpdate();
  const existing = await query.executeTakeFirst();
  if (!existing || existing.user_id !== input.userId) throw new NotFoundError('feedback', input.id);
  const row: FeedbackRow = {
    ...existing,
    rating: input.rating ?? existing.rating,
    comment: input.comment === undefined ? existing.comment : input.comment,
    correction: input.correction === undefined ? existing.correction : input.correction,
    updated_at: isoNow(),
  };
  await trx
    .updateTable('feedback')
    .set({ rating: row.rating, comment: row.comment, correction: row.correction, updated_at: row.updated_at })
    .where('id', '=', row.id)
    .execute();
  const previousRating = existing.rating as Rating;
  const counted = row.rating !== previousRating;
  if (counted) await appendVote(trx, row, previousRating, true);
  return { feedback: toRecord(row), replaced: true, previousRating, counted };
}

export function createFeedbackStore(db: MetadataDb): FeedbackStore {
  const kysely = db.kysely;
  const queue: QueuedWrite[] = [];
  let flushing = false;

  /**
   * SQLite: group commit. Votes and updates that arrive in the same turn of the event loop
   * (every request Node read from its sockets in one poll) are written in one transaction, so a
   * burst of votes shares one commit (and one write of each touched page) instead of paying for
   * its own; each caller still hears back only after its write is committed. A missing answer
   * or vote fails only its own write.
   */
  async function flush(): Promise<void> {
    while (queue.length > 0) {
      const batch = queue.splice(0, MAX_BATCH);
      const outcomes: ({ ok: true; value: RecordedFeedback } | { ok: false; error: unknown })[] = [];
      try {
        await kysely.transaction().execute(async (trx) => {
          for (const queued of batch) {
            try {
              outcomes.push({ ok: true, value: await queued.write(trx) });
            } catch (error) {
              if (!(error instanceof NotFoundError)) throw error;
              outcomes.push({ ok: false, error });
            }
          }
        });
        batch.forEach((queued, index) => {
          const outcome = outcomes[index];
          if (outcome?.ok) queued.resolve(outcome.value);
          else queued.reject(outcome?.error);
        });
      } catch (error) {
        for (const queued of batch) queued.reject(error);
      }
    }
    flushing = false;
  }

  function batched(write: FeedbackWrite): Promise<RecordedFeedback> {
    return new Promise((resolve, reject) => {
      queue.push({ write, resolve, reject });
      if (flushing) return;
      flushing = true;
      // Each request is handled in its own I/O callback, and a transaction started right away
      // would commit in microtasks before the next socket is even read: batches of one.
      // setImmediate runs after the poll phase has handled every socket that was ready.
      setImmediate(() => void flush());
    });
  }

  /** Commits `write` before resolving: batched with others on SQLite, a transaction of its own on PostgreSQL. */
  function commit(write: FeedbackWrite): Promise<RecordedFeedback> {
    if (db.dialect === 'sqlite') return batched(write);
    return kysely.transaction().execute(write);
  }

  return {
    async record(input) {
      const write: FeedbackWrite = (trx) => writeVote(trx, input);
      if (db.dialect === 'sqlite') return commit(write);
      try {
        return await commit(write);
      } catch (error) {
        // A concurrent first vote by the same user won the insert; ours becomes the replacement.
        if (isUniqueViolation(error)) return commit(write);
        throw error;
      }
    },

    update(input) {
      return commit((trx) => writeUpdate(trx, input, db.dialect));
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
      const rows = await newestFirst(query, filter, 100).execute();
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

    async newestCountedVote(modelVersion, atOrBefore) {
      let query = kysely
        .selectFrom('feedback_votes')
        .select(({ fn }) => fn.max('created_at').as('newest'))
        .where('counted', '=', 1)
        .where('model_version', '=', modelVersion);
      if (atOrBefore) query = query.where('created_at', '<=', atOrBefore);
      const row = await query.executeTakeFirst();
      return row?.newest ?? undefined;
    },
  };
}
