import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';

/** Prometheus scrape endpoint. */
export function registerMetricsRoute(app: FastifyInstance, registry: Registry): void {
  app.get('/metrics', { logLevel: 'warn' }, async (_request, reply) => {
    const body = await registry.metrics();
    return reply.header('content-type', registry.contentType).send(body);
  });
}
