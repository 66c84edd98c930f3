import type { FastifyInstance } from 'fastify';
import type { Readiness } from '../core/readiness.ts';

export function registerHealthRoutes(app: FastifyInstance, readiness: Readiness, version: string): void {
  // Liveness only: answers as soon as the process listens, whatever is still starting.
  app.get('/healthz', { logLevel: 'warn' }, async () => ({ status: 'ok', version }));

  app.get('/readyz', { logLevel: 'warn' }, async (_request, reply) => {
    const report = await readiness.evaluate();
    const waitingFor = Object.entries(report.checks)
      .filter(([, result]) => !result.ready)
      .map(([name]) => name);
    return reply
      .status(report.ready ? 200 : 503)
      .send({ status: report.ready ? 'ready' : 'waiting', waiting_for: waitingFor, checks: report.checks });
  });
}
