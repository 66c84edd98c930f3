import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { UnauthorizedError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import type { EventBus } from '../../events/index.ts';
import { parseS3Notification } from '../../events/s3-notifications.ts';

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
      const { event, duplicate } = await options.bus.publish({
        type: change.type,
        source: 's3',
        subject: change.key,
        dedupeKey: `s3:${change.bucket}:${change.key}:${change.sequencer}:${change.type}`,
        payload: {
          key: change.key,
          ...(change.etag ? { etag: change.etag } : {}),
          ...(change.size !== undefined ? { size: change.size } : {}),
        },
      });
      published.push({ eventId: event.id, type: change.type, key: change.key, duplicate });
    }
    return reply.status(200).send({ published, skipped });
  });
}
