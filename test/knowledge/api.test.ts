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

test('end to end: an upload runs the vector-ingestion pipeline and the document becomes retrievable', async () => {
  const { bertha, url } = await startBertha(['objects.watch=false', 'pipelines.pollIntervalMs=50']);
  const response = await upload(url, [
    { name: 'warranty.md', body: '# Warranty\nThe battery is covered for two years.' },
  ]);
  expect(response.status).toBe(201);
  const document = await until(
    async () => {
      const listed = (await (await fetch(`${url}/v1/documents?status=ingested`)).json()) as {
        data: Array<{ key: string; version: string }>;
      };
      return listed.data.find((item) => item.key === 'documents/warranty.md');
    },
    'the pipeline to ingest the upload',
    60_000,
  );
  const [best] = await bertha.retriever.retrieve('how long is the battery covered', { topK: 1 });
  expect(best).toMatchObject({ documentKey: 'documents/warranty.md', documentVersion: document.version });
});

interface RunView {
  id: string;
  status: string;
  error: string | null;
  params: { key?: string };
}

/** The vector-ingestion runs for a key, once every one of them has finished. */
async function finishedRunsFor(url: string, key: string, timeoutMs = 30_000): Promise<RunView[]> {
  return until(
    async () => {
      const { data } = (await (await fetch(`${url}/v1/pipelines/vector-ingestion/runs`)).json()) as {
        data: RunView[];
      };
      const runs = data.filter((run) => run.params.key === key);
      const done = runs.length > 0 && runs.every((run) => ['succeeded', 'failed', 'cancelled'].includes(run.status));
      return done ? runs : undefined;
    },
    `the vector-ingestion run for ${key}`,
    timeoutMs,
  );
}

async function documentByKey(url: string, key: string) {
  const { data } = (await (await fetch(`${url}/v1/documents`)).json()) as {
    data: Array<{ key: string; status: string; error: string | null }>;
  };
  return data.find((document) => document.key === key);
}

test('an upload of a format no loader reads is refused with 415 naming the accepted formats; nothing is stored', async () => {
  const { bertha, url } = await startBertha(['objects.watch=false']);
  const response = await upload(url, [{ name: 'setup.exe', body: Buffer.from('MZ\x90\x00\x03binary') }]);
  expect(response.status).toBe(415);
  const { error } = (await response.json()) as {
    error: { code: string; message: string; details: { extension: string; accepted: string[] } };
  };
  expect(error.code).toBe('unsupported_document_type');
  expect(error.message).toMatch(/setup\.exe.*unsupported format '\.exe'/);
  expect(error.message).toContain('PDF (.pdf)');
  expect(error.message).toContain('Markdown (.md');
  expect(error.details.extension).toBe('.exe');
  expect(error.details.accepted).toEqual(expect.arrayContaining(['.pdf', '.docx', '.md', '.html', '.txt']));
  expect(await bertha.objects.head('documents/setup.exe')).toBeUndefined();
  expect(await documentByKey(url, 'documents/setup.exe')).toBeUndefined();
  expect(await bertha.bus.list({ subject: 'documents/setup.exe' })).toEqual([]);
});

test('an empty upload is refused with 422; files stored earlier in the same request are named', async () => {
  const { bertha, url } = await startBertha(['objects.watch=false']);
  const alone = await upload(url, [{ name: 'empty.md', body: '' }]);
  expect(alone.status).toBe(422);
  const { error } = (await alone.json()) as { error: { code: string; message: string } };
  expect(error).toMatchObject({ code: 'document_empty', message: "cannot ingest 'empty.md': the file is empty" });
  expect(await bertha.objects.head('documents/empty.md')).toBeUndefined();

  const mixed = await upload(url, [
    { name: 'notes.md', body: '# Notes\nSome text.' },
    { name: 'blank.txt', body: '' },
  ]);
  expect(mixed.status).toBe(422);
  const body = (await mixed.json()) as { error: { code: string; details: { key: string; stored: string[] } } };
  expect(body.error).toMatchObject({
    code: 'document_empty',
    details: { key: 'documents/blank.txt', stored: ['documents/notes.md'] },
  });
  expect(await bertha.objects.head('documents/blank.txt')).toBeUndefined();
});

test('a corrupt PDF is accepted, then its document and its ingestion run both fail with the reason', async () => {
  const { url } = await startBertha(['objects.watch=false', 'pipelines.pollIntervalMs=50']);
  const response = await upload(url, [{ name: 'broken.pdf', body: '%PDF-1.4\nthis is not a pdf' }]);
  expect(response.status).toBe(201);
  const runs = await finishedRunsFor(url, 'documents/broken.pdf');
  expect(runs).toEqual([expect.objectContaining({ status: 'failed', error: expect.stringMatching(/corrupt PDF/) })]);
  expect(await documentByKey(url, 'documents/broken.pdf')).toMatchObject({
    status: 'failed',
    error: expect.stringMatching(/corrupt PDF/),
  });
  const detail = (await (await fetch(`${url}/v1/pipeline-runs/${runs[0]?.id}`)).json()) as {
    steps: Array<{ name: string; status: string; error: string | null }>;
  };
  expect(detail.steps.map((step) => [step.name, step.status])).toEqual([
    ['load-document', 'failed'],
    ['create-vectors', 'skipped'],
    ['ingest-vectors', 'skipped'],
  ]);
}, 60_000);

test('unreadable files dropped in the watched folder are recorded as failed, and so are their runs', async () => {
  const { bertha, url, dir } = await startBertha(['pipelines.pollIntervalMs=50']);
  const folder = path.join(dir, 'objects', 'documents');
  await until(
    async () => (await bertha.objects.list('documents/')[Symbol.asyncIterator]().next()).done || undefined,
    'folder',
  );
  writeFileSync(path.join(folder, 'setup.exe'), Buffer.from('MZ\x90\x00\x03binary'));
  writeFileSync(path.join(folder, 'empty.md'), '');
  writeFileSync(path.join(folder, 'fine.md'), '# Fine\nThis one reads.');
  const cases: Array<[string, RegExp | undefined]> = [
    ['documents/setup.exe', /unsupported format '\.exe'/],
    ['documents/empty.md', /empty/],
    ['documents/fine.md', undefined],
  ];
  for (const [key, reason] of cases) {
    const runs = await finishedRunsFor(url, key);
    const document = await documentByKey(url, key);
    if (reason) {
      expect(runs).toEqual([expect.objectContaining({ status: 'failed', error: expect.stringMatching(reason) })]);
      expect(document).toMatchObject({ status: 'failed', error: expect.stringMatching(reason) });
    } else {
      expect(runs).toEqual([expect.objectContaining({ status: 'succeeded' })]);
      expect(document).toMatchObject({ status: 'ingested', error: null });
    }
  }
}, 60_000);
