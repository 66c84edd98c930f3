import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { UnauthorizedError, ValidationError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { parseInput } from '../core/validate.ts';
import { alertEvents, alertmanagerWebhookSchema } from './alertmanager.ts';
import type { BerthaEvent, EventBus } from './bus.ts';
import { publishObjectEvent } from './object-events.ts';
import { parseS3Notification } from './s3-notifications.ts';

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
  deps: {
    bus: EventBus;
    token: string;
    logger: Logger;
    /** Told of each alert event stored for the first time (a redelivery is not); its failure is only logged. */
    afterStored?: (event: BerthaEvent) => Promise<void>;
  },
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
    for (const input of alertEvents(webhook)) {
      const result = await deps.bus.publish(input);
      results.push(result);
      if (!result.duplicate && deps.afterStored) {
        await deps.afterStored(result.event).catch((error: unknown) => {
          deps.logger.warn({ err: error, eventId: result.event.id }, 'after-store hook of an alert event failed');
        });
      }
    }
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

export interface S3EventRouteOptions {
  bus: EventBus;
  token: string;
  bucket: string | undefined;
  storePrefix: string;
  documentsPrefix: string;
  logger: Logger;
}

function tokenMatches(header: string | undefined, token: string): boolean {
  // MinIO's webhook target sends `auth_token` as `Bearer <token>` (or verbatim when it has a scheme).
  const presented = (header ?? '').replace(/^Bearer\s+/i, '');
  const a = Buffer.from(presented);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * `POST /events/s3`: MinIO / S3 bucket notifications (webhook target) become `object.created` /
 * `object.removed` events. A redelivery (same bucket, key and sequencer) is stored once.
 */
export function registerS3EventRoutes(app: FastifyInstance, options: S3EventRouteOptions): void {
  app.post('/events/s3', async (request, reply) => {
    if (!tokenMatches(request.headers.authorization, options.token)) throw new UnauthorizedError();
    const { changes, skipped } = parseS3Notification(request.body, {
      bucket: options.bucket,
      storePrefix: options.storePrefix,
      prefix: options.documentsPrefix,
    });
    if (skipped.length > 0) options.logger.info({ skipped }, 's3 notification records skipped');
    const published = [];
    for (const change of changes) {
      const { event, duplicate } = await publishObjectEvent(options.bus, {
        type: change.type,
        source: 's3',
        key: change.key,
        etag: change.etag,
        size: change.size,
        dedupeKey: `s3:${change.bucket}:${change.key}:${change.sequencer}:${change.type}`,
      });
      published.push({ eventId: event.id, type: change.type, key: change.key, duplicate });
    }
    return reply.status(200).send({ published, skipped });
  });
}
