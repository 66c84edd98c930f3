import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { UnauthorizedError, ValidationError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { alertEvents, alertmanagerWebhookSchema, type EventBus } from '../../events/index.ts';
import { parseInput } from '../validate.ts';

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/**
 * The event gateway for Alertmanager's webhook receiver (Argo Events' webhook EventSource
 * in BigBertha): every alert in a notification becomes a stored event, `model.degraded` /
 * `model.recovered` when it names a `model_version`.
 */
export function registerAlertmanagerGateway(
  app: FastifyInstance,
  deps: { bus: EventBus; token: string; logger: Logger },
): void {
  const expected = digest(deps.token);
  app.post('/events/alertmanager', async (request) => {
    const header = request.headers.authorization ?? '';
    const presented = header.startsWith('Bearer ') ? header.slice('Bearer '.length).trim() : '';
    if (!presented || !timingSafeEqual(digest(presented), expected)) {
      deps.logger.warn({ reqId: request.id, ip: request.ip }, 'alertmanager webhook with a missing or wrong token');
      throw new UnauthorizedError('missing or invalid bearer token');
    }
    let webhook: ReturnType<typeof alertmanagerWebhookSchema.parse>;
    try {
      webhook = parseInput(alertmanagerWebhookSchema, request.body, 'alertmanager webhook');
    } catch (error) {
      if (error instanceof ValidationError) {
        deps.logger.warn({ reqId: request.id, err: error }, 'malformed alertmanager webhook rejected');
      }
      throw error;
    }
    const results = [];
    for (const input of alertEvents(webhook)) results.push(await deps.bus.publish(input));
    const published = results.filter((result) => !result.duplicate).length;
    deps.logger.info(
      { groupKey: webhook.groupKey, status: webhook.status, alerts: results.length, published },
      'alertmanager notification received',
    );
    return {
      received: results.length,
      published,
      duplicates: results.length - published,
      events: results.map((result) => ({ id: result.event.id, type: result.event.type, duplicate: result.duplicate })),
    };
  });
}
