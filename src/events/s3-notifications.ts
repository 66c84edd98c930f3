import { unsafeKeyReason } from '../objects/index.ts';
import type { ObjectEventType } from './object-events.ts';

/**
 * One record of an S3 event notification, as AWS S3 and MinIO send them
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html).
 * Only the fields Bertha reads are typed.
 */
export interface S3EventRecord {
  eventName?: string;
  eventTime?: string;
  s3?: {
    bucket?: { name?: string };
    object?: { key?: string; size?: number; eTag?: string; sequencer?: string; versionId?: string };
  };
}

export interface ObjectChange {
  type: ObjectEventType;
  bucket: string;
  /** The decoded key, relative to the store's prefix. */
  key: string;
  etag?: string;
  size?: number;
  /** S3's per-key ordering token; with bucket and key it identifies a delivery. */
  sequencer: string;
  eventName: string;
}

export interface SkippedRecord {
  eventName: string;
  key: string | undefined;
  reason: string;
}

/**
 * Object keys arrive URL-encoded in the form style (`+` for spaces, `%2B` for `+`), so
 * `my file.pdf` is `my+file.pdf` and `résumé.md` is `r%C3%A9sum%C3%A9.md`.
 */
export function decodeS3Key(raw: string): string {
  return decodeURIComponent(raw.replace(/\+/g, ' '));
}

/**
 * Turns a notification body into object changes. Records for other buckets, keys outside
 * `prefix`, unsafe keys and event types other than ObjectCreated/ObjectRemoved are skipped
 * with a reason (the delivery as a whole still succeeds, so MinIO does not retry it forever).
 */
export function parseS3Notification(
  body: unknown,
  options: {
    bucket?: string | undefined;
    /** The store's own key prefix in the bucket; stripped from keys. */
    storePrefix: string;
    /** Only keys under this (store-relative) prefix are announced. */
    prefix: string;
  },
): { changes: ObjectChange[]; skipped: SkippedRecord[] } {
  const records = (body as { Records?: unknown } | null)?.Records;
  const changes: ObjectChange[] = [];
  const skipped: SkippedRecord[] = [];
  if (!Array.isArray(records)) return { changes, skipped };
  for (const record of records as S3EventRecord[]) {
    // MinIO prefixes event names with `s3:`; AWS does not.
    const eventName = (record?.eventName ?? '').replace(/^s3:/, '');
    const rawKey = record?.s3?.object?.key;
    const skip = (reason: string) => skipped.push({ eventName, key: rawKey, reason });
    const type = eventName.startsWith('ObjectCreated:')
      ? 'object.created'
      : eventName.startsWith('ObjectRemoved:')
        ? 'object.removed'
        : undefined;
    if (!type) {
      skip('not an ObjectCreated/ObjectRemoved event');
      continue;
    }
    const bucket = record.s3?.bucket?.name ?? '';
    if (options.bucket && bucket !== options.bucket) {
      skip(`bucket '${bucket}' is not the configured bucket`);
      continue;
    }
    if (typeof rawKey !== 'string') {
      skip('no object key');
      continue;
    }
    let fullKey: string;
    try {
      fullKey = decodeS3Key(rawKey);
    } catch {
      skip('object key is not valid URL encoding');
      continue;
    }
    const watched = options.storePrefix + options.prefix;
    if (!fullKey.startsWith(watched)) {
      skip(`key is outside '${watched}'`);
      continue;
    }
    const key = fullKey.slice(options.storePrefix.length);
    const unsafe = unsafeKeyReason(key);
    if (unsafe) {
      skip(`unsafe key: ${unsafe}`);
      continue;
    }
    const object = record.s3?.object ?? {};
    changes.push({
      type,
      bucket,
      key,
      ...(object.eTag ? { etag: object.eTag.replace(/^"|"$/g, '') } : {}),
      ...(typeof object.size === 'number' ? { size: object.size } : {}),
      sequencer: object.sequencer ?? `${record.eventTime ?? ''}`,
      eventName,
    });
  }
  return { changes, skipped };
}
