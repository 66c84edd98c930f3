import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import { createLogger } from '../../src/core/logger.ts';
import { createSqliteDb } from '../../src/db/sqlite.ts';
import { createFsObjectStore } from '../../src/objects/fs.ts';
import { createLocalRunner, createRunStore } from '../../src/pipelines/index.ts';
import { registerPipelineRoutes } from '../../src/pipelines/routes.ts';
import { createHttpServer } from '../../src/server/http.ts';
import { tempDir } from '../helpers/temp.ts';
import { testCatalog } from './fixtures.ts';
import { waitFor } from './wait.ts';

async function serve() {
  const dir = tempDir();
  const db = createSqliteDb({ path: path.join(dir, 'bertha.sqlite') });
  await db.migrate();
  const logger = createLogger('silent');
  const store = createRunStore(db);
  const catalog = testCatalog(dir);
  const runner = createLocalRunner({
    store,
    objects: createFsObjectStore({ root: path.join(dir, 'objects') }),
    catalog,
    logger,
    stepConcurrency: 2,
    maxConcurrentRuns: 2,
    pollIntervalMs: 20,
    leaseMs: 5_000,
  });
  const app = createHttpServer({ logger, bodyLimitBytes: 1_000_000 });
  registerPipelineRoutes(app, { catalog, store, runner });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  runner.start();
  onTestFinished(async () => {
    await app.close();
    await runner.stop();
    await db.close();
  });
  const json = async (method: string, route: string, body?: unknown) => {
    const response = await fetch(`${url}${route}`, {
      method,
      ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    });
    // biome-ignore lint/suspicious/noExplicitAny: response bodies of several shapes, checked by the assertions
    return { status: response.status, body: (await response.json()) as Record<string, any> };
  };
  return { url, dir, json };
}

describe('pipelines API', () => {
  test('lists pipelines, starts a run, and shows the DAG state of every step', async () => {
    const { json } = await serve();
    const list = await json('GET', '/v1/pipelines');
    expect(list.body.data.map((pipeline: { name: string }) => pipeline.name)).toContain('word-stats');
    const started = await json('POST', '/v1/pipelines/word-stats/runs', { params: { text: 'a b c a' } });
    expect(started.status).toBe(201);
    expect(started.body).toMatchObject({ pipeline: 'word-stats', status: 'queued', source: 'api' });
    const detail = await waitFor('the run to succeed', async () => {
      const response = await json('GET', `/v1/pipeline-runs/${started.body.id}`);
      return response.body.run.status === 'succeeded' ? response.body : undefined;
    });
    expect(detail.progress).toBe(1);
    expect(detail.steps.map((step: { name: string; dependsOn: string[] }) => [step.name, step.dependsOn])).toEqual([
      ['split', []],
      ['count', ['split']],
      ['longest', ['split']],
      ['report', ['count', 'longest']],
    ]);
    expect(detail.steps[3].artifacts[0]).toMatchObject({ name: 'report' });
    const runs = await json('GET', '/v1/pipelines/word-stats/runs');
    expect(runs.body.data).toHaveLength(1);
    const logs = await json('GET', `/v1/pipeline-runs/${started.body.id}/logs?step=split`);
    expect(logs.body.data.map((line: { message: string }) => line.message)).toEqual(['split into 4 words']);
  });

  test('bad input gets 400 and unknown names 404, with the error body', async () => {
    const { json } = await serve();
    const unknownParam = await json('POST', '/v1/pipelines/word-stats/runs', { params: { nope: 1 } });
    expect(unknownParam.status).toBe(400);
    expect(unknownParam.body.error.code).toBe('invalid_request');
    const missing = await json('POST', '/v1/pipelines/ghost/runs', {});
    expect(missing.status).toBe(404);
    expect((await json('GET', '/v1/pipeline-runs/run_nope')).status).toBe(404);
  });

  test('step logs stream as server-sent events while the run is active, and end with it', async () => {
    const { url, dir, json } = await serve();
    const started = await json('POST', '/v1/pipelines/gated/runs', { params: { text: 'x y' } });
    const response = await fetch(`${url}/v1/pipeline-runs/${started.body.id}/logs`, {
      headers: { accept: 'text/event-stream' },
    });
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = '';
    while (!text.includes('waiting for the release file')) {
      const chunk = await reader.read();
      if (chunk.done) throw new Error(`stream ended early:\n${text}`);
      text += decoder.decode(chunk.value);
    }
    writeFileSync(path.join(dir, 'release'), '');
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) break;
      text += decoder.decode(chunk.value);
    }
    expect(text).toMatch(/event: log\nid: |id: \S+\nevent: log/);
    const end = /event: end\ndata: (.*)\n/.exec(text);
    expect(JSON.parse(end?.[1] as string)).toMatchObject({ status: 'succeeded' });
  });

  test('cancel and retry from a step over HTTP', async () => {
    const { json } = await serve();
    const started = await json('POST', '/v1/pipelines/cancellable/runs', {});
    await waitFor('the step to run', async () => {
      const detail = await json('GET', `/v1/pipeline-runs/${started.body.id}`);
      return detail.body.steps[0].status === 'running';
    });
    const cancelled = await json('POST', `/v1/pipeline-runs/${started.body.id}/cancel`);
    expect(cancelled.body.status).toBe('cancelled');
    const again = await json('POST', `/v1/pipeline-runs/${started.body.id}/cancel`);
    expect(again.status).toBe(409);
    const retried = await json('POST', `/v1/pipeline-runs/${started.body.id}/retry`, { fromStep: 'forever' });
    expect(retried.body.status).toBe('queued');
    await waitFor('the retried step to run', async () => {
      const detail = await json('GET', `/v1/pipeline-runs/${started.body.id}`);
      return detail.body.steps[0].status === 'running' && detail.body.steps[0].attempts === 2;
    });
    expect((await json('POST', `/v1/pipeline-runs/${started.body.id}/cancel`)).body.status).toBe('cancelled');
  });
});
