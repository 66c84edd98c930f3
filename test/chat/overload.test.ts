import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test, vi } from 'vitest';
import { writeTinyLlama } from '../fixtures/tiny-llama.ts';
import { eventually, type Serving, sample, startServing } from './serving.ts';

// Each test loads a model in this process; on a busy 2-core machine that takes a while.
vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });

let modelDir: string;
let modelPath: string;

beforeAll(async () => {
  modelDir = mkdtempSync(path.join(tmpdir(), 'bertha-model-'));
  // Endless: the first test's busy stream must outlast a queued request's wait, however fast decoding is.
  modelPath = (await writeTinyLlama(modelDir, { endless: true })).modelPath;
});

afterAll(() => rmSync(modelDir, { recursive: true, force: true }));

function post(url: string, body: Record<string, unknown>, signal?: AbortSignal): Promise<Response> {
  return fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'bertha', messages: [{ role: 'user', content: 'hello' }], ...body }),
    ...(signal ? { signal } : {}),
  });
}

test('with every slot busy a bounded line waits, a full line gets 429 and a long wait 503, both with Retry-After', async () => {
  const serving: Serving = await startServing({
    model: modelPath,
    llamaCpp: { gpu: 'off', contextSize: 4096, parallel: 1 },
    queue: { maxWaiting: 1, maxWaitMs: 500 },
  });
  try {
    const busy = new AbortController();
    const first = await post(serving.url, { stream: true, max_tokens: 4000, temperature: 1 }, busy.signal);
    const reader = first.body?.getReader();
    await reader?.read();

    const queued = post(serving.url, { max_tokens: 2 });
    await eventually(async () => {
      const metrics = await (await fetch(`${serving.url}/metrics`)).text();
      return sample(metrics, 'bertha_requests_waiting{model_version="local"}') === 1 ? true : undefined;
    });

    const rejected = await post(serving.url, { max_tokens: 2 });
    expect(rejected.status).toBe(429);
    expect(Number(rejected.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await rejected.json()).toMatchObject({ error: { type: 'rate_limit_error', code: 'rate_limit_exceeded' } });

    const timedOut = await queued;
    expect(timedOut.status).toBe(503);
    expect(Number(timedOut.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await timedOut.json()).toMatchObject({ error: { type: 'server_error' } });

    busy.abort();
    const metrics = await (await fetch(`${serving.url}/metrics`)).text();
    expect(sample(metrics, 'bertha_requests_total{model_version="local",status="rejected"}')).toBe(2);
    // The slot is free again once the stream that held it is cancelled.
    const after = await eventually(async () => {
      const response = await post(serving.url, { max_tokens: 2 });
      return response.status === 200 ? response : undefined;
    });
    expect(after.status).toBe(200);
  } finally {
    await serving.close();
  }
});

test('/healthz answers while the model cannot load; /readyz and chat report why with 503', async () => {
  const serving = await startServing(
    { model: path.join(modelDir, 'missing.gguf'), llamaCpp: { gpu: 'off' } },
    { waitForModel: false },
  );
  try {
    expect((await fetch(`${serving.url}/healthz`)).status).toBe(200);
    const ready = await eventually(async () => {
      const response = await fetch(`${serving.url}/readyz`);
      const body = (await response.json()) as { checks: Record<string, { ready: boolean; detail: string }> };
      return body.checks.model?.detail.includes('failed') ? { response, body } : undefined;
    });
    expect(ready.response.status).toBe(503);
    expect(ready.body.checks.model?.ready).toBe(false);
    expect(ready.body.checks.model?.detail).toContain('missing.gguf');
    const chat = await post(serving.url, {});
    expect(chat.status).toBe(503);
    expect(chat.headers.get('retry-after')).toBeTruthy();
    expect(await chat.json()).toMatchObject({ error: { type: 'server_error', code: 'unavailable' } });
  } finally {
    await serving.close();
  }
});

test('/readyz reports the model as loading before it is ready', async () => {
  const serving = await startServing({ model: modelPath, llamaCpp: { gpu: 'off' } }, { waitForModel: false });
  try {
    const first = (await (await fetch(`${serving.url}/readyz`)).json()) as {
      checks: Record<string, { ready: boolean; detail: string }>;
    };
    // Either still loading or already done: never "no model".
    expect(first.checks.model?.detail).toMatch(/local: (loading|ready|idle)/);
    await eventually(async () => ((await fetch(`${serving.url}/readyz`)).status === 200 ? true : undefined), 60_000);
  } finally {
    await serving.close();
  }
});
