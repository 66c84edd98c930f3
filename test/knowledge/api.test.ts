import { writeFileSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import path from 'node:path';
import { expect, onTestFinished, test } from 'vitest';
import { createBertha } from '../../src/app.ts';
import { loadConfig } from '../../src/config/index.ts';
import { createLogger } from '../../src/core/logger.ts';
import type { BerthaEvent } from '../../src/events/index.ts';
import { ingestObject } from '../../src/knowledge/index.ts';
import { tempDir } from '../helpers/temp.ts';

async function startBertha(set: string[] = []) {
  const dir = tempDir();
  const { config } = loadConfig({ dataDir: dir, port: 0, set }, {}, dir);
  const bertha = await createBertha(config, { logger: createLogger('silent') });
  onTestFinished(() => bertha.close());
  const url = await bertha.listen();
  return { bertha, url, dir };
}

function upload(url: string, files: Array<{ name: string; body: string | Buffer; key?: string }>) {
  const form = new FormData();
  for (const file of files) {
    if (file.key !== undefined) form.append('key', file.key);
    form.append('file', new Blob([file.body]), file.name);
  }
  return fetch(`${url}/v1/documents`, { method: 'POST', body: form });
}

async function until<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test('an upload is stored, announced as object.created, listed, searchable once ingested, and deletable', async () => {
  const { bertha, url } = await startBertha(['objects.watch=false']);
  const response = await upload(url, [{ name: 'faq.md', body: '# Opening hours\nWe open at nine. We close at five.' }]);
  expect(response.status).toBe(201);
  const { data } = (await response.json()) as { data: Array<{ key: string; documentId: string; eventId: string }> };
  expect(data[0]).toMatchObject({ key: 'documents/faq.md', status: 'pending' });
  const event = await bertha.bus.get(data[0]?.eventId as string);
  expect(event).toMatchObject({ type: 'object.created', source: 'upload', subject: 'documents/faq.md' });
  expect(event?.payload).toMatchObject({ key: 'documents/faq.md', size: 50 });

  expect(await ingestObject(bertha.knowledge, 'documents/faq.md')).toMatchObject({ status: 'ingested' });
  const listed = (await (await fetch(`${url}/v1/documents?status=ingested`)).json()) as { data: unknown[] };
  expect(listed.data).toEqual([
    expect.objectContaining({ key: 'documents/faq.md', chunkCount: 1, version: expect.any(String) }),
  ]);

  const search = await fetch(`${url}/v1/knowledge/search`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: 'when do you close', topK: 3, mode: 'hybrid' }),
  });
  const found = (await search.json()) as { data: Array<{ documentKey: string; metadata: Record<string, unknown> }> };
  expect(found.data[0]).toMatchObject({ documentKey: 'documents/faq.md', metadata: { heading: 'Opening hours' } });
  expect((await bertha.retriever.retrieve('close at five', { topK: 1 }))[0]?.documentKey).toBe('documents/faq.md');

  const removed = await fetch(`${url}/v1/documents/${data[0]?.documentId}`, { method: 'DELETE' });
  expect(await removed.json()).toMatchObject({ deleted: true, chunksRemoved: 1 });
  expect(await bertha.objects.head('documents/faq.md')).toBeUndefined();
  expect(await bertha.knowledge.vectors.count()).toBe(0);
  expect(await bertha.bus.list({ type: 'object.removed', subject: 'documents/faq.md' })).toHaveLength(1);
  expect((await fetch(`${url}/v1/documents/${data[0]?.documentId}`)).status).toBe(404);
});

test('uploads past the size limit get 413 and store nothing', async () => {
  const { bertha, url } = await startBertha(['objects.maxUploadBytes=1000', 'objects.watch=false']);
  const response = await upload(url, [{ name: 'big.txt', body: 'x'.repeat(5000) }]);
  expect(response.status).toBe(413);
  expect(((await response.json()) as { error: { code: string } }).error.code).toBe('payload_too_large');
  expect(await bertha.objects.head('documents/big.txt')).toBeUndefined();
});

test('file names with spaces, unicode and ../ become safe keys; an unsafe explicit key is refused', async () => {
  const { bertha, url } = await startBertha(['objects.watch=false']);
  const response = await upload(url, [
    { name: '../../etc/résumé 2026 ✓.md', body: 'hello' },
    { name: 'x.md', key: 'team/notes.md', body: 'notes' },
  ]);
  expect(response.status).toBe(201);
  const { data } = (await response.json()) as { data: Array<{ key: string }> };
  expect(data.map((item) => item.key)).toEqual(['documents/résumé 2026 ✓.md', 'documents/team/notes.md']);
  expect(await bertha.objects.head('documents/résumé 2026 ✓.md')).toMatchObject({ size: 5 });

  const refused = await upload(url, [{ name: 'y.md', key: '../escape.md', body: 'nope' }]);
  expect(refused.status).toBe(400);
  expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('invalid_request');
});

test('the folder watcher announces files added and removed behind Bertha’s back', async () => {
  const { bertha, dir } = await startBertha(['objects.pollIntervalMs=0']);
  const folder = path.join(dir, 'objects', 'documents');
  const seen: BerthaEvent[] = [];
  bertha.bus.subscribe('*', (event) => {
    seen.push(event);
  });
  await until(
    async () => (await bertha.objects.list('documents/')[Symbol.asyncIterator]().next()).done || undefined,
    'folder',
  );
  writeFileSync(path.join(folder, 'dropped in.md'), '# Dropped\nby hand');
  const created = await until(
    async () => seen.find((event) => event.type === 'object.created' && event.subject === 'documents/dropped in.md'),
    'object.created from the watcher',
  );
  expect(created).toMatchObject({ source: 'fs-watch', payload: { key: 'documents/dropped in.md', size: 17 } });
  await unlink(path.join(folder, 'dropped in.md'));
  await until(
    async () => seen.find((event) => event.type === 'object.removed' && event.subject === 'documents/dropped in.md'),
    'object.removed from the watcher',
  );
});
