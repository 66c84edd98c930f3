import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { NotFoundError } from '../core/errors.ts';
import { pageQuery } from '../core/paging.ts';
import { parseInput } from '../core/validate.ts';
import type { BerthaEvent, EventBus } from './bus.ts';

const listQuery = z
  .object({
    type: z.string().optional(),
    subject: z.string().optional(),
    since: z.iso.datetime().optional(),
    /** Paging forwards: events after this id, oldest first. */
    after: z.string().optional(),
    ...pageQuery({ fallback: 100, max: 1000 }),
  })
  .strict();

/** Every stored event, newest first (oldest first with `after`), for the dashboard and for operators. */
export function registerEventRoutes(app: FastifyInstance, bus: EventBus): void {
  app.get('/v1/events', async (request) => {
    const filter = parseInput(listQuery, request.query, 'query');
    return { data: await bus.list(filter) };
  });

  app.get<{ Params: { id: string } }>('/v1/events/:id', async (request) => {
    const event = await bus.get(request.params.id);
    if (!event) throw new NotFoundError('event', request.params.id);
    return event;
  });
}

const streamQuery = z
  .object({
    /** Comma-separated event types, or prefixes ending in `.` (`pipeline.` matches `pipeline.step.finished`). */
    types: z.string().optional(),
  })
  .strict();

/** A comment line often enough that proxies and browsers keep an idle stream open. */
const HEARTBEAT_MS = 15_000;
/** Stored events read per query while a reconnecting client catches up (`Last-Event-ID`). */
const REPLAY_PAGE = 500;

function matcher(types: string | undefined): (event: BerthaEvent) => boolean {
  const wanted = (types ?? '')
    .split(',')
    .map((type) => type.trim())
    .filter(Boolean);
  if (wanted.length === 0) return () => true;
  return (event) => wanted.some((type) => (type.endsWith('.') ? event.type.startsWith(type) : event.type === type));
}

/** Ids a stream remembers having sent: far more than one replay page plus what arrives meanwhile. */
const RECENT_IDS = 4 * REPLAY_PAGE;

/** A set of the last `capacity` ids added, oldest forgotten first. */
class RecentIds {
  private readonly ids = new Set<string>();
  constructor(private readonly capacity: number) {}

  /** False when the id is already remembered. */
  add(id: string): boolean {
    if (this.ids.has(id)) return false;
    this.ids.add(id);
    if (this.ids.size > this.capacity) {
      const oldest = this.ids.values().next().value as string;
      this.ids.delete(oldest);
    }
    return true;
  }
}

/** https://html.spec.whatwg.org/multipage/server-sent-events.html: one event per block, the id for resuming. */
function frame(event: BerthaEvent): string {
  return `id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
}

/** Resolves once a full response buffer has been written out, or the client went away. */
function drained(res: ServerResponse): Promise<void> {
  if (!res.writableNeedDrain) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/**
 * `GET /v1/stream`: every event published on the bus, as Server-Sent Events, for the
 * dashboard's live updates. A client that reconnects with `Last-Event-ID` first receives the
 * stored events after that id, oldest first. Ids only rise within one publishing process:
 * with several processes on one bus an older id can arrive after a newer one, so repeats
 * (the replay overlapping live delivery, a redelivery) are recognised by the ids recently
 * sent, not by order.
 */
export function registerStreamRoute(app: FastifyInstance, bus: EventBus): void {
  const open = new Set<() => void>();
  app.addHook('preClose', async () => {
    for (const end of [...open]) end();
  });

  app.get('/v1/stream', async (request, reply) => {
    const query = parseInput(streamQuery, request.query, 'query');
    const wanted = matcher(query.types);
    const lastEventId = request.headers['last-event-id'];
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
      'x-request-id': request.id,
    });

    // Events published while the replay is read are queued, then sent after it, in order.
    let queue: BerthaEvent[] | undefined = [];
    const resumeAfter = typeof lastEventId === 'string' ? lastEventId : '';
    const sent = new RecentIds(RECENT_IDS);
    const send = (event: BerthaEvent) => {
      if (!wanted(event) || !sent.add(event.id)) return;
      res.write(frame(event));
    };
    const unsubscribe = bus.subscribe('*', (event) => {
      if (queue) queue.push(event);
      else send(event);
    });
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
    const end = () => {
      clearInterval(heartbeat);
      unsubscribe();
      open.delete(end);
      if (!res.writableEnded) res.end();
    };
    open.add(end);
    request.raw.on('close', end);
    res.write(`retry: 2000\n: connected\n\n`);

    try {
      // Pages forwards from the client's id, so a long gap is replayed whole, without a skip.
      let after = resumeAfter;
      while (after && !res.writableEnded) {
        const page = await bus.list({ after, limit: REPLAY_PAGE });
        for (const event of page) send(event);
        const last = page.at(-1);
        if (!last || page.length < REPLAY_PAGE) break;
        after = last.id;
        await drained(res);
      }
    } catch (error) {
      request.log.error({ err: error }, 'event stream replay failed');
    }
    for (const event of queue) send(event);
    queue = undefined;
  });
}
