import type { Selectable } from 'kysely';
import { isoNow, newId } from '../core/ids.ts';
import { type EventsTable, isUniqueViolation, type MetadataDb } from '../db/index.ts';
import type { BerthaEvent, EventFilter, PublishInput, PublishResult } from './bus.ts';

/** Where an adapter hands a newly stored event on: its in-process handlers, or a broker. */
export type Deliver = (event: BerthaEvent) => void | Promise<void>;

/**
 * The `events` table as every EventBus adapter keeps it: the stored record `list` and `get`
 * read, and the dedupe by key that makes a redelivered publish a no-op.
 */
export interface EventRows {
  /**
   * Stores the event and hands it to `deliver`, or returns the stored one when its dedupe
   * key is known (`duplicate`; delivered again only when `resend` says so, for an adapter
   * whose delivery can fail after the row is stored). Rejects with `deliver`'s error after
   * the row is stored.
   */
  store<Payload>(
    input: PublishInput<Payload>,
    deliver: Deliver,
    resend?: (stored: BerthaEvent) => boolean,
  ): Promise<PublishResult<Payload>>;
  list(filter?: EventFilter): Promise<BerthaEvent[]>;
  get(id: string): Promise<BerthaEvent | undefined>;
  /** Outbox: the broker accepted the event. */
  markSent(id: string): Promise<void>;
  /** Outbox: stored events the broker has not accepted, created at or before `before`, oldest first. */
  unsent(before: string, limit: number): Promise<BerthaEvent[]>;
}

export interface EventRowsOptions {
  /** Store events as not sent until `markSent` (an adapter whose delivery is a broker publish). */
  outbox?: boolean;
}

function toEvent(row: Selectable<EventsTable>): BerthaEvent {
  return {
    id: row.id,
    type: row.type,
    source: row.source,
    subject: row.subject,
    dedupeKey: row.dedupe_key,
    payload: JSON.parse(row.payload_json) as unknown,
    createdAt: row.created_at,
  };
}

export function createEventRows(db: MetadataDb, options: EventRowsOptions = {}): EventRows {
  async function findByDedupeKey(key: string): Promise<BerthaEvent | undefined> {
    const row = await db.kysely.selectFrom('events').selectAll().where('dedupe_key', '=', key).executeTakeFirst();
    return row ? toEvent(row) : undefined;
  }

  /**
   * Ids are assigned, stored and delivered one event at a time. With concurrent inserts
   * (PostgreSQL's pool) an event with a later id could commit and reach subscribers first;
   * the event stream then dropped the earlier one as already sent, and a client resuming
   * after the later id never got it.
   */
  let publishing: Promise<unknown> = Promise.resolve();
  function inPublishOrder<T>(work: () => Promise<T>): Promise<T> {
    const run = publishing.then(work);
    publishing = run.catch(() => undefined);
    return run;
  }

  async function insert<Payload>(
    input: PublishInput<Payload>,
    dedupeKey: string | null,
    deliver: Deliver,
  ): Promise<PublishResult<Payload>> {
    const event: BerthaEvent<Payload> = {
      id: newId('evt'),
      type: input.type,
      source: input.source,
      subject: input.subject ?? null,
      dedupeKey,
      payload: input.payload,
      createdAt: isoNow(),
    };
    try {
      await db.kysely
        .insertInto('events')
        .values({
          id: event.id,
          type: event.type,
          source: event.source,
          subject: event.subject,
          dedupe_key: dedupeKey,
          payload_json: JSON.stringify(event.payload ?? null),
          created_at: event.createdAt,
          sent: options.outbox ? 0 : 1,
        })
        .execute();
    } catch (error) {
      // Two deliveries of the same event raced past the lookup: the first insert wins.
      const winner = dedupeKey && isUniqueViolation(error) ? await findByDedupeKey(dedupeKey) : undefined;
      if (winner) return { event: winner as BerthaEvent<Payload>, duplicate: true };
      throw error;
    }
    await deliver(event);
    return { event, duplicate: false };
  }

  return {
    async store<Payload>(input: PublishInput<Payload>, deliver: Deliver, resend?: (stored: BerthaEvent) => boolean) {
      const dedupeKey = input.dedupeKey ?? null;
      const existing = dedupeKey ? await findByDedupeKey(dedupeKey) : undefined;
      const result = existing
        ? { event: existing as BerthaEvent<Payload>, duplicate: true }
        : await inPublishOrder(() => insert(input, dedupeKey, deliver));
      if (result.duplicate && resend?.(result.event)) await inPublishOrder(async () => deliver(result.event));
      return result;
    },

    async list(filter: EventFilter = {}) {
      let query = db.kysely.selectFrom('events').selectAll();
      if (filter.type) query = query.where('type', '=', filter.type);
      if (filter.subject) query = query.where('subject', '=', filter.subject);
      if (filter.since) query = query.where('created_at', '>=', filter.since);
      if (filter.before) query = query.where('id', '<', filter.before);
      if (filter.after) query = query.where('id', '>', filter.after);
      const rows = await query
        .orderBy('id', filter.after ? 'asc' : 'desc')
        .limit(filter.limit ?? 100)
        .execute();
      return rows.map(toEvent);
    },

    async get(id) {
      const row = await db.kysely.selectFrom('events').selectAll().where('id', '=', id).executeTakeFirst();
      return row ? toEvent(row) : undefined;
    },

    async markSent(id) {
      await db.kysely.updateTable('events').set({ sent: 1 }).where('id', '=', id).where('sent', '=', 0).execute();
    },

    async unsent(before, limit) {
      const rows = await db.kysely
        .selectFrom('events')
        .selectAll()
        .where('sent', '=', 0)
        .where('created_at', '<=', before)
        .orderBy('id', 'asc')
        .limit(limit)
        .execute();
      return rows.map(toEvent);
    },
  };
}
