import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { NotFoundError } from '../../core/errors.ts';
import type { FeedbackMetrics, FeedbackStore } from '../../monitor/index.ts';
import { parseInput } from '../validate.ts';

/** Header that names the voting user (set by an authenticating proxy or the UI). */
export const USER_HEADER = 'x-bertha-user';
const ANONYMOUS = 'anonymous';

const feedbackBody = z
  .object({
    response_id: z.string().min(1).max(200),
    rating: z.enum(['up', 'down']),
    comment: z.string().max(10_000).nullish(),
    correction: z.string().max(100_000).nullish(),
    /** The voting user when no `x-bertha-user` header is sent (OpenAI's `user` field). */
    user: z.string().min(1).max(200).optional(),
  })
  .strict();

const listQuery = z
  .object({
    model_version: z.string().min(1).optional(),
    rating: z.enum(['up', 'down']).optional(),
    since: z.iso.datetime().optional(),
    until: z.iso.datetime().optional(),
    before: z.string().optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  })
  .strict();

function toJson(record: Awaited<ReturnType<FeedbackStore['get']>> & object) {
  return {
    id: record.id,
    response_id: record.responseId,
    user: record.userId,
    model_version: record.modelVersion,
    rating: record.rating,
    comment: record.comment,
    correction: record.correction,
    created_at: record.createdAt,
    updated_at: record.updatedAt,
  };
}

export interface FeedbackRouteDeps {
  store: FeedbackStore;
  metrics: FeedbackMetrics;
}

export function registerFeedbackRoutes(app: FastifyInstance, deps: FeedbackRouteDeps): void {
  app.post('/v1/feedback', async (request, reply) => {
    const body = parseInput(feedbackBody, request.body);
    const header = request.headers[USER_HEADER];
    const userId = (typeof header === 'string' && header.trim()) || body.user || ANONYMOUS;
    const result = await deps.store.record({
      responseId: body.response_id,
      userId,
      rating: body.rating,
      comment: body.comment,
      correction: body.correction,
    });
    deps.metrics.observe(result);
    return reply.status(result.replaced ? 200 : 201).send({ ...toJson(result.feedback), replaced: result.replaced });
  });

  app.get('/v1/feedback', async (request) => {
    const query = parseInput(listQuery, request.query, 'query');
    const records = await deps.store.list({
      modelVersion: query.model_version,
      rating: query.rating,
      since: query.since,
      until: query.until,
      before: query.before,
      limit: query.limit,
    });
    const last = records.at(-1);
    return { data: records.map(toJson), next_before: records.length === query.limit && last ? last.id : null };
  });

  app.get('/v1/feedback/summary', async () => ({
    data: deps.metrics.tallies().map((tally) => ({
      model_version: tally.modelVersion,
      up: tally.upVotes,
      down: tally.downVotes,
      down_ratio: tally.upVotes + tally.downVotes === 0 ? 0 : tally.downVotes / (tally.upVotes + tally.downVotes),
      up_total: tally.upTotal,
      down_total: tally.downTotal,
    })),
  }));

  app.get<{ Params: { id: string } }>('/v1/feedback/:id', async (request) => {
    const record = await deps.store.get(request.params.id);
    if (!record) throw new NotFoundError('feedback', request.params.id);
    return toJson(record);
  });
}
