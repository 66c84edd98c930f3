import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { NotFoundError } from '../../core/errors.ts';
import type { EventBus } from '../../events/index.ts';
import { parseInput } from '../validate.ts';

const listQuery = z
  .object({
    type: z.string().optional(),
    subject: z.string().optional(),
    since: z.iso.datetime().optional(),
    before: z.string().optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  })
  .strict();

/** Every stored event, newest first, for the dashboard and for operators. */
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
