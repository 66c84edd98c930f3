import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { MetadataDb } from '../../db/index.ts';
import { parseInput } from '../validate.ts';

const listQuery = z
  .object({
    pipeline: z.string().min(1).optional(),
    status: z.string().min(1).optional(),
    sensor: z.string().min(1).optional(),
    before: z.string().optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  })
  .strict();

/** The sensors' decisions (pending, skipped and why, launched with their run), newest first. */
export function registerTriggerRoutes(app: FastifyInstance, db: MetadataDb): void {
  app.get('/v1/sensors/triggers', async (request) => {
    const query = parseInput(listQuery, request.query, 'query');
    let select = db.kysely.selectFrom('pipeline_triggers').selectAll();
    if (query.pipeline) select = select.where('pipeline', '=', query.pipeline);
    if (query.status) select = select.where('status', '=', query.status);
    if (query.sensor) select = select.where('sensor', '=', query.sensor);
    if (query.before) select = select.where('id', '<', query.before);
    const rows = await select.orderBy('id', 'desc').limit(query.limit).execute();
    return {
      data: rows.map(({ params_json, ...row }) => ({
        ...row,
        params: JSON.parse(params_json) as Record<string, string>,
      })),
    };
  });
}
