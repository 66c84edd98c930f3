import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import S3rver from 's3rver';

export interface S3Server {
  endpoint: string;
  bucket: string;
  /** Every S3 event record batch s3rver emitted (the JSON MinIO would POST). */
  events: unknown[];
  close(): Promise<void>;
}

/** An S3-protocol server in-process (s3rver) on a loopback port, with one bucket. */
export async function startS3Server(bucket = 'bertha'): Promise<S3Server> {
  const directory = mkdtempSync(path.join(tmpdir(), 'bertha-s3rver-'));
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory,
    configureBuckets: [{ name: bucket, configs: [] }],
  });
  const events: unknown[] = [];
  server.on('event', (event: unknown) => events.push(event));
  const address = (await server.run()) as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    bucket,
    events,
    async close() {
      await server.close();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}

/** s3rver accepts any credentials; the SDK still needs some to sign with. */
export const S3_TEST_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
