import { Readable } from 'node:stream';
import type {
  GetObjectCommandOutput,
  HeadObjectCommandOutput,
  ListObjectsV2CommandOutput,
  S3Client,
} from '@aws-sdk/client-s3';
import { ObjectNotFoundError } from './errors.ts';
import { readAll } from './index.ts';
import { assertSafeObjectKey } from './keys.ts';
import type { ObjectBody, ObjectInfo, ObjectStore } from './store.ts';

export interface S3ObjectStoreOptions {
  bucket: string;
  /** e.g. `http://127.0.0.1:9000` for MinIO; empty for AWS. */
  endpoint?: string | undefined;
  region: string;
  /** MinIO and most self-hosted servers need path-style URLs (`<endpoint>/<bucket>/<key>`). */
  forcePathStyle: boolean;
  /** Empty: the AWS SDK's default provider chain (environment, profile, instance role). */
  accessKeyId?: string | undefined;
  secretAccessKey?: string | undefined;
  /** Objects live under this key prefix inside the bucket (e.g. `bertha/`). */
  prefix?: string | undefined;
}

/** S3's ETag is a quoted string; the port's etag is the bare value. */
function bareEtag(etag: string | undefined): string {
  return (etag ?? '').replace(/^W\//, '').replace(/^"|"$/g, '');
}

function isNotFound(error: unknown): boolean {
  const err = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return err?.name === 'NoSuchKey' || err?.name === 'NotFound' || err?.$metadata?.httpStatusCode === 404;
}

// The AWS SDK takes seconds to import on a busy machine; load it on first use, not at start-up.
let sdkModule: Promise<typeof import('@aws-sdk/client-s3')> | undefined;
function sdk() {
  sdkModule ??= import('@aws-sdk/client-s3');
  return sdkModule;
}

export async function createS3Client(options: S3ObjectStoreOptions): Promise<S3Client> {
  const { S3Client } = await sdk();
  return new S3Client({
    region: options.region,
    forcePathStyle: options.forcePathStyle,
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    ...(options.accessKeyId && options.secretAccessKey
      ? { credentials: { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey } }
      : {}),
  });
}

/** An S3 bucket (AWS S3, MinIO, any S3-protocol server) as an object store. */
export function createS3ObjectStore(options: S3ObjectStoreOptions): ObjectStore {
  let client: Promise<S3Client> | undefined;
  async function send<Output>(build: (commands: typeof import('@aws-sdk/client-s3')) => unknown): Promise<Output> {
    client ??= createS3Client(options);
    const [s3, commands] = await Promise.all([client, sdk()]);
    return (await s3.send(build(commands) as never)) as Output;
  }
  const base = options.prefix ?? '';
  const bucket = options.bucket;

  const fullKey = (key: string) => `${base}${assertSafeObjectKey(key)}`;

  return {
    kind: 's3',

    async put(key: string, body: ObjectBody) {
      const target = fullKey(key);
      // PutObject needs a known length; documents are bounded by the upload limit, so buffer streams.
      const bytes =
        body instanceof Readable
          ? await readAll(body)
          : typeof body === 'string'
            ? Buffer.from(body)
            : Buffer.from(body);
      await send(
        (c) => new c.PutObjectCommand({ Bucket: bucket, Key: target, Body: bytes, ContentLength: bytes.length }),
      );
      const info = await this.head(key);
      if (!info) throw new ObjectNotFoundError(key);
      return info;
    },

    async get(key: string) {
      const target = fullKey(key);
      try {
        const response = await send<GetObjectCommandOutput>(
          (c) => new c.GetObjectCommand({ Bucket: bucket, Key: target }),
        );
        return response.Body as Readable;
      } catch (error) {
        if (isNotFound(error)) throw new ObjectNotFoundError(key);
        throw error;
      }
    },

    async head(key: string) {
      const target = fullKey(key);
      try {
        const response = await send<HeadObjectCommandOutput>(
          (c) => new c.HeadObjectCommand({ Bucket: bucket, Key: target }),
        );
        return {
          key,
          size: response.ContentLength ?? 0,
          etag: bareEtag(response.ETag),
          lastModified: (response.LastModified ?? new Date()).toISOString(),
        };
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
    },

    async *list(prefix = '') {
      let token: string | undefined;
      do {
        const page = await send<ListObjectsV2CommandOutput>(
          (c) => new c.ListObjectsV2Command({ Bucket: bucket, Prefix: `${base}${prefix}`, ContinuationToken: token }),
        );
        for (const item of page.Contents ?? []) {
          if (!item.Key) continue;
          const info: ObjectInfo = {
            key: item.Key.slice(base.length),
            size: item.Size ?? 0,
            etag: bareEtag(item.ETag),
            lastModified: (item.LastModified ?? new Date()).toISOString(),
          };
          yield info;
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
    },

    async delete(key: string) {
      const target = fullKey(key);
      await send((c) => new c.DeleteObjectCommand({ Bucket: bucket, Key: target }));
    },
  };
}
