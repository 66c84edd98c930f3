import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import { NotFoundError } from '../core/errors.ts';
import { pageQuery } from '../core/paging.ts';
import { parseInput } from '../core/validate.ts';
import { downRatio, type FeedbackMetrics } from './feedback-metrics.ts';
import type { FeedbackStore } from './feedback-store.ts';

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

/** A change to a recorded vote: what follows the thumbs click (a comment, a correction) or a new rating. */
const feedbackUpdateBody = z
  .object({
    rating: z.enum(['up', 'down']).optional(),
    /** `null` clears it; left out, it is kept. */
    comment: z.string().max(10_000).nullable().optional(),
    correction: z.string().max(100_000).nullable().optional(),
    user: z.string().min(1).max(200).optional(),
  })
  .strict()
  .refine((body) => body.rating !== undefined || body.comment !== undefined || body.correction !== undefined, {
    message: 'nothing to change: send rating, comment or correction',
  });

const listQuery = z
  .object({
    model_version: z.string().min(1).optional(),
    rating: z.enum(['up', 'down']).optional(),
    since: z.iso.datetime().optional(),
    until: z.iso.datetime().optional(),
    ...pageQuery({ fallback: 100, max: 1000 }),
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

function votingUser(request: FastifyRequest, bodyUser: string | undefined): string {
  const header = request.headers[USER_HEADER];
  return (typeof header === 'string' && header.trim()) || bodyUser || ANONYMOUS;
}

export function registerFeedbackRoutes(app: FastifyInstance, deps: FeedbackRouteDeps): void {
  app.post('/v1/feedback', async (request, reply) => {
    const body = parseInput(feedbackBody, request.body);
    const userId = votingUser(request, body.user);
    const result = await deps.store.record({
      responseId: body.response_id,
      userId,
      rating: body.rating,
      comment: body.comment,
      correction: body.correction,
    });
    return reply.status(result.replaced ? 200 : 201).send({ ...toJson(result.feedback), replaced: result.replaced });
  });

  // The same vote, updated: committed (group commit on SQLite) before the 200, like a vote.
  app.patch<{ Params: { id: string } }>('/v1/feedback/:id', async (request) => {
    const body = parseInput(feedbackUpdateBody, request.body);
    const result = await deps.store.update({
      id: request.params.id,
      userId: votingUser(request, body.user),
      rating: body.rating,
      comment: body.comment,
      correction: body.correction,
    });
    return toJson(result.feedback);
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
    data: (await deps.metrics.tallies()).map((tally) => ({
      model_version: tally.modelVersion,
      up: tally.upVotes,
      down: tally.downVotes,
      down_ratio: downRatio(tally),
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

/** Prometheus scrape endpoint. */
export function registerMetricsRoute(app: FastifyInstance, registry: Registry): void {
  app.get('/metrics', { logLevel: 'warn' }, async (_request, reply) => {
    const body = await registry.metrics();
    return reply.header('content-type', registry.contentType).send(body);
  });
}
