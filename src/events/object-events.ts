import type { EventBus, PublishResult } from './bus.ts';

/** Payload of `object.created` / `object.removed` (the cross-capability contract). */
export interface ObjectEventPayload {
  key: string;
  etag?: string;
  size?: number;
}

export type ObjectEventType = 'object.created' | 'object.removed';

export interface ObjectEventInput {
  type: ObjectEventType;
  /** Who saw the change: `upload`, `api`, `cli`, `s3`, `fs-watch`, `s3-poll`. */
  source: string;
  key: string;
  etag?: string | undefined;
  size?: number | undefined;
  /** Identifies a redelivery of the same notification (S3's sequencer). */
  dedupeKey?: string | undefined;
}

/**
 * Announces that an object was stored or deleted: every place that learns of one (an upload,
 * the ingest command, the change feed, S3 notifications) publishes through here, so the
 * sensors that start ingestion see one shape whatever the source.
 */
export function publishObjectEvent(bus: EventBus, input: ObjectEventInput): Promise<PublishResult<ObjectEventPayload>> {
  return bus.publish<ObjectEventPayload>({
    type: input.type,
    source: input.source,
    subject: input.key,
    ...(input.dedupeKey ? { dedupeKey: input.dedupeKey } : {}),
    payload: {
      key: input.key,
      ...(input.etag !== undefined ? { etag: input.etag } : {}),
      ...(input.size !== undefined ? { size: input.size } : {}),
    },
  });
}
