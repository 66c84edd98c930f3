import { isoNow, newId } from '../core/ids.ts';
import type { Logger } from '../core/logger.ts';
import { isUniqueViolation, type MetadataDb } from '../db/index.ts';
import type { BerthaEvent, EventBus, EventFilter, EventHandler, PublishInput } from './bus.ts';

interface EventRow {
  id: string;
  type: string;
  source: string;
  subject: string | null;
  dedupe_key: string | null;
  payload_json: string;
  created_at: string;
}

function toEvent(row: EventRow): BerthaEvent {
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

/** In-process bus persisted in the metadata DB: the embedded default. */
export function createLocalEventBus(options: { db: MetadataDb; logger: Logger }): EventBus {
  const { db, logger } = options;
  const handlers = new Map<string, Set<EventHandler>>();
  const inFlight = new Set<Promise<void>>();

  function dispatch(event: BerthaEvent): void {
    const targets = [...(handlers.get(event.type) ?? []), ...(handlers.get('*') ?? [])];
    for (const handler of targets) {
      const run = (async () => {
        try {
          await handler(event);
        } catch (error) {
          logger.error({ err: error, eventId: event.id, eventType: event.type }, 'event handler failed');
        }
      })();
      inFlight.add(run);
      void run.finally(() => inFlight.delete(run));
    }
  }

  async function findByDedupeKey(key: string): Promise<BerthaEvent | undefined> {
    const row = await db.kysely.selectFrom('events').selectAll().where('dedupe_key', '=', key).executeTakeFirst();
    return row ? toEvent(row) : undefined;
  }

  return {
    async publish<Payload>(input: PublishInput<Payload>) {
      const dedupeKey = input.dedupeKey ?? null;
      if (dedupeKey) {
        const existing = await findByDedupeKey(dedupeKey);
        if (existing) return { event: existing as BerthaEvent<Payload>, duplicate: true };
      }
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
          })
          .execute();
      } catch (error) {
        // Two deliveries of the same event raced past the lookup: the first insert wins.
        const winner = dedupeKey && isUniqueViolation(error) ? await findByDedupeKey(dedupeKey) : undefined;
        if (winner) return { event: winner as BerthaEvent<Payload>, duplicate: true };
        throw error;
      }
      dispatch(event);
      return { event, duplicate: false };
    },

    subscribe(type, handler) {
      const set = handlers.get(type) ?? new Set<EventHandler>();
      set.add(handler);
      handlers.set(type, set);
      return () => set.delete(handler);
    },

    async list(filter: EventFilter = {}) {
      let query = db.kysely.selectFrom('events').selectAll();
      if (filter.type) query = query.where('type', '=', filter.type);
      if (filter.subject) query = query.where('subject', '=', filter.subject);
      if (filter.since) query = query.where('created_at', '>=', filter.since);
      if (filter.before) query = query.where('id', '<', filter.before);
      const rows = await query
        .orderBy('id', 'desc')
        .limit(filter.limit ?? 100)
        .execute();
      return rows.map(toEvent);
    },

    async get(id) {
      const row = await db.kysely.selectFrom('events').selectAll().where('id', '=', id).executeTakeFirst();
      return row ? toEvent(row) : undefined;
    },

    async drain() {
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
  };
}
