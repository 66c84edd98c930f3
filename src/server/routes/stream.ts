import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { BerthaEvent, EventBus } from '../../events/index.ts';
import { parseInput } from '../validate.ts';

const streamQuery = z
  .object({
    /** Comma-separated event types, or prefixes ending in `.` (`pipeline.` matches `pipeline.step.finished`). */
    types: z.string().optional(),
  })
  .strict();

/** A comment line often enough that proxies and browsers keep an idle stream open. */
const HEARTBEAT_MS = 15_000;
/** How many stored events a reconnecting client may catch up on (`Last-Event-ID`). */
const REPLAY_LIMIT = 500;

function matcher(types: string | undefined): (event: BerthaEvent) => boolean {
  const wanted = (types ?? '')
    .split(',')
    .map((type) => type.trim())
    .filter(Boolean);
  if (wanted.length === 0) return () => true;
  return (event) => wanted.some((type) => (type.endsWith('.') ? event.type.startsWith(type) : event.type === type));
}

/** https://html.spec.whatwg.org/multipage/server-sent-events.html: one event per block, the id for resuming. */
function frame(event: BerthaEvent): string {
  return `id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
}

/**
 * `GET /v1/stream`: every event published on the bus, as Server-Sent Events, for the
 * dashboard's live updates. A client that reconnects with `Last-Event-ID` first receives the
 * stored events it missed (ids sort by creation time).
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
    let lastSent = typeof lastEventId === 'string' ? lastEventId : '';
    const send = (event: BerthaEvent) => {
      if (event.id <= lastSent || !wanted(event)) return;
      lastSent = event.id;
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
      if (lastSent) {
        const missed = await bus.list({ limit: REPLAY_LIMIT });
        for (const event of missed.filter((item) => item.id > lastSent).reverse()) send(event);
      }
    } catch (error) {
      request.log.error({ err: error }, 'event stream replay failed');
    }
    for (const event of queue) send(event);
    queue = undefined;
  });
}
