import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readObject } from '../../src/objects/index.ts';
import { createS3ObjectStore } from '../../src/objects/s3.ts';
import { objectStoreContract } from '../contract/object-store.ts';
import { S3_TEST_CREDENTIALS, type S3Server, startS3Server } from '../helpers/s3.ts';

let server: S3Server;
beforeAll(async () => {
  server = await startS3Server();
});
afterAll(async () => {
  await server?.close();
});

function store(prefix: string) {
  return createS3ObjectStore({
    bucket: server.bucket,
    endpoint: server.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    prefix,
    ...S3_TEST_CREDENTIALS,
  });
}

describe('ObjectStore contract on s3 (s3rver)', () => {
  // Each test gets an empty store: its own prefix in the shared bucket.
  objectStoreContract(async () => store(`t-${randomBytes(4).toString('hex')}/`));
});

test('an s3 store with a prefix never lists objects outside it', async () => {
  const a = store('tenant-a/');
  const b = store('tenant-b/');
  await a.put('x.txt', 'a');
  await b.put('x.txt', 'b');
  const keys: string[] = [];
  for await (const info of a.list()) keys.push(info.key);
  expect(keys).toEqual(['x.txt']);
  expect((await readObject(b, 'x.txt')).toString()).toBe('b');
});
