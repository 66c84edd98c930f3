import path from 'node:path';
import { afterAll, beforeAll, expect, onTestFinished, test } from 'vitest';
import { createBertha } from '../../src/app.ts';
import { loadConfig } from '../../src/config/index.ts';
import { createLogger } from '../../src/core/logger.ts';
import { createSqliteDb } from '../../src/db/sqlite.ts';
import { createLocalEventBus } from '../../src/events/local-bus.ts';
import { createObjectChangeFeed } from '../../src/events/object-changes.ts';
import { decodeS3Key } from '../../src/events/s3-notifications.ts';
import { createDocumentStore } from '../../src/knowledge/index.ts';
import { createS3ObjectStore } from '../../src/objects/s3.ts';
import { S3_TEST_CREDENTIALS, type S3Server, startS3Server } from '../helpers/s3.ts';
import { tempDir } from '../helpers/temp.ts';

let s3: S3Server;
beforeAll(async () => {
  s3 = await startS3Server();
});
afterAll(async () => {
  await s3?.close();
});

const TOKEN = 'notify-secret';

async function startBertha(prefix: string) {
  const dir = tempDir();
  const { config } = loadConfig(
    {
      dataDir: dir,
      port: 0,
      set: [
        'objects.driver=s3',
        `objects.s3.endpoint=${s3.endpoint}`,
        `objects.s3.bucket=${s3.bucket}`,
        `objects.s3.prefix=${prefix}`,
        `objects.s3.accessKeyId=${S3_TEST_CREDENTIALS.accessKeyId}`,
        `objects.s3.secretAccessKey=${S3_TEST_CREDENTIALS.secretAccessKey}`,
        `objects.notificationToken=${TOKEN}`,
      ],
    },
    {},
    dir,
  );
  const bertha = await createBertha(config, { logger: createLogger('silent') });
  onTestFinished(() => bertha.close());
  return { bertha, url: await bertha.listen() };
}

function notify(url: string, body: unknown, token = TOKEN) {
  return fetch(`${url}/events/s3`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
}

test('S3 keys arrive form-encoded and are decoded', () => {
  expect(decodeS3Key('documents/my+file+%281%29.pdf')).toBe('documents/my file (1).pdf');
  expect(decodeS3Key('documents/r%C3%A9sum%C3%A9+%E2%9C%93.md')).toBe('documents/résumé ✓.md');
  expect(decodeS3Key('a%2Bb.md')).toBe('a+b.md');
});

test('bucket notifications from a real S3 server become object events, once per sequencer', async () => {
  const { bertha, url } = await startBertha('n1/');
  const first = s3.events.length;
  await bertha.objects.put('documents/Q1 summary ✓.md', '# Q1\nRevenue grew.');
  await bertha.objects.delete('documents/Q1 summary ✓.md');
  await bertha.objects.put('elsewhere/artifact.bin', 'x');
  const deliveries = s3.events.slice(first);
  expect(deliveries).toHaveLength(3);

  for (const delivery of deliveries) {
    const response = await notify(url, delivery);
    expect(response.status).toBe(200);
  }
  const created = await bertha.bus.list({ type: 'object.created', subject: 'documents/Q1 summary ✓.md' });
  expect(created).toHaveLength(1);
  expect(created[0]).toMatchObject({ source: 's3', payload: { key: 'documents/Q1 summary ✓.md', size: 18 } });
  expect(await bertha.bus.list({ type: 'object.removed', subject: 'documents/Q1 summary ✓.md' })).toHaveLength(1);
  expect(await bertha.bus.list({ subject: 'elsewhere/artifact.bin' })).toHaveLength(0);

  // MinIO redelivers on timeouts: the same record again is recognised.
  const again = (await (await notify(url, deliveries[0])).json()) as { published: Array<{ duplicate: boolean }> };
  expect(again.published).toEqual([expect.objectContaining({ duplicate: true })]);
  expect(await bertha.bus.list({ type: 'object.created', subject: 'documents/Q1 summary ✓.md' })).toHaveLength(1);
});

test('MinIO-style records (s3: prefix, + for spaces) work; unsafe keys and wrong tokens are refused', async () => {
  const { bertha, url } = await startBertha('n2/');
  const record = (eventName: string, key: string, sequencer: string) => ({
    eventName,
    s3: { bucket: { name: s3.bucket }, object: { key, size: 3, eTag: 'abc', sequencer } },
  });
  const response = await notify(url, {
    EventName: 's3:ObjectCreated:Put',
    Key: 'bertha/n2/documents/a b.md',
    Records: [
      record('s3:ObjectCreated:Put', 'n2/documents/a+b.md', '01'),
      record('s3:ObjectCreated:Put', 'n2/documents/..%2F..%2Fetc%2Fpasswd', '02'),
      record('s3:ObjectAccessed:Get', 'n2/documents/a+b.md', '03'),
    ],
  });
  const body = (await response.json()) as { published: Array<{ key: string }>; skipped: Array<{ reason: string }> };
  expect(body.published.map((item) => item.key)).toEqual(['documents/a b.md']);
  expect(body.skipped.map((item) => item.reason)).toEqual([
    expect.stringMatching(/unsafe key/),
    expect.stringMatching(/not an ObjectCreated/),
  ]);
  expect(await bertha.bus.list({ subject: 'documents/a b.md' })).toHaveLength(1);

  expect((await notify(url, { Records: [] }, 'wrong')).status).toBe(401);
  const unauthenticated = await fetch(`${url}/events/s3`, {
    method: 'POST',
    body: '{}',
    headers: { 'content-type': 'application/json' },
  });
  expect(unauthenticated.status).toBe(401);
});

test('a file written to the bucket that cannot be read is recorded as failed, and its run fails with the reason', async () => {
  const { bertha, url } = await startBertha('n3/');
  const first = s3.events.length;
  // Written by another S3 client: only the notification tells Bertha about it.
  await bertha.objects.put('documents/setup.exe', 'MZ binary');
  for (const delivery of s3.events.slice(first)) expect((await notify(url, delivery)).status).toBe(200);
  const deadline = Date.now() + 30_000;
  let runs = await bertha.pipelines.store.listRuns({ pipeline: 'vector-ingestion' });
  while (!runs.some((run) => run.status === 'failed' || run.status === 'succeeded')) {
    if (Date.now() > deadline) throw new Error('timed out waiting for the vector-ingestion run');
    await new Promise((resolve) => setTimeout(resolve, 50));
    runs = await bertha.pipelines.store.listRuns({ pipeline: 'vector-ingestion' });
  }
  expect(runs).toEqual([
    expect.objectContaining({
      params: { key: 'documents/setup.exe', change: 'created' },
      status: 'failed',
      error: expect.stringMatching(/unsupported format '\.exe'/),
    }),
  ]);
  expect(await createDocumentStore(bertha.db).byKey('documents/setup.exe')).toMatchObject({
    status: 'failed',
    error: expect.stringMatching(/unsupported format '\.exe'/),
  });
}, 60_000);

test('S3 polling announces created, changed and removed objects by ETag, and remembers across restarts', async () => {
  const dir = tempDir();
  const db = createSqliteDb({ path: path.join(dir, 'bertha.sqlite') });
  await db.migrate();
  onTestFinished(() => db.close());
  const bus = createLocalEventBus({ db, logger: createLogger('silent') });
  const store = createS3ObjectStore({
    bucket: s3.bucket,
    endpoint: s3.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    prefix: 'poll/',
    ...S3_TEST_CREDENTIALS,
  });
  const feed = () =>
    createObjectChangeFeed({ store, db, bus, prefix: 'documents/', source: 's3-poll', logger: createLogger('silent') });

  await store.put('documents/a.md', 'one');
  await store.put('documents/b 2.md', 'two');
  expect(await feed().scan()).toEqual({ created: ['documents/a.md', 'documents/b 2.md'], removed: [] });
  expect(await feed().scan()).toEqual({ created: [], removed: [] });
  await store.put('documents/a.md', 'one, changed');
  await store.delete('documents/b 2.md');
  expect(await feed().scan()).toEqual({ created: ['documents/a.md'], removed: ['documents/b 2.md'] });
  const events = await bus.list({ subject: 'documents/a.md' });
  expect(events.map((event) => event.type)).toEqual(['object.created', 'object.created']);
  expect(events[0]?.payload).toMatchObject({ key: 'documents/a.md', size: 12, etag: expect.any(String) });
});
