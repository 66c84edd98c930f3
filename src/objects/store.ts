import type { Readable } from 'node:stream';

export interface ObjectInfo {
  key: string;
  size: number;
  /** Changes whenever the content changes; opaque (S3's ETag, or size+mtime for folders). */
  etag: string;
  lastModified: string;
}

export type ObjectBody = Buffer | Uint8Array | string | Readable;

/**
 * The object storage port (MinIO / S3, or a local folder). Keys are validated by
 * `assertSafeObjectKey` in every adapter. A `put` that resolved is durable.
 */
export interface ObjectStore {
  readonly kind: string;
  put(key: string, body: ObjectBody): Promise<ObjectInfo>;
  /** Throws `ObjectNotFoundError` when the key does not exist. */
  get(key: string): Promise<Readable>;
  head(key: string): Promise<ObjectInfo | undefined>;
  list(prefix?: string): AsyncIterable<ObjectInfo>;
  /** Deleting a missing key is not an error. */
  delete(key: string): Promise<void>;
}
