import path from 'node:path';
import { expect, test } from 'vitest';
import { createBertha } from '../../src/app.ts';
import { loadConfig } from '../../src/config/index.ts';
import { createLogger } from '../../src/core/logger.ts';
import { tempDir } from '../helpers/temp.ts';

test('close() finishes a request that is in flight, then refuses new connections', async () => {
  const dir = tempDir();
  const { config } = loadConfig({ dataDir: path.join(dir, 'data'), port: 0 }, {}, dir);
  const bertha = await createBertha(config, { logger: createLogger('silent') });
  let release: () => void = () => undefined;
  const started = new Promise<void>((resolveStarted) => {
    bertha.http.get('/slow', async () => {
      resolveStarted();
      await new Promise<void>((resolve) => {
        release = resolve;
      });
      return { finished: true };
    });
  });
  const url = await bertha.listen();
  const inFlight = fetch(`${url}/slow`).then(async (response) => ({
    status: response.status,
    body: await response.json(),
  }));
  await started;
  const closed = bertha.close();
  release();
  expect(await inFlight).toEqual({ status: 200, body: { finished: true } });
  await closed;
  await expect(fetch(`${url}/healthz`)).rejects.toThrow();
});

test('errors use one JSON shape with a stable code', async () => {
  const dir = tempDir();
  const { config } = loadConfig({ dataDir: dir, port: 0 }, {}, dir);
  const bertha = await createBertha(config, { logger: createLogger('silent') });
  try {
    const missing = await bertha.http.inject({ method: 'GET', url: '/v1/events/evt_nope' });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toEqual({
      error: {
        code: 'not_found',
        message: "event 'evt_nope' does not exist",
        details: { what: 'event', id: 'evt_nope' },
      },
    });
    const bad = await bertha.http.inject({ method: 'GET', url: '/v1/events?limit=0' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBe('invalid_request');
    expect(bad.json().error.message).toMatch(/limit/);
  } finally {
    await bertha.close();
  }
});

test('/metrics serves the Prometheus text format', async () => {
  const dir = tempDir();
  const { config } = loadConfig({ dataDir: dir, port: 0 }, {}, dir);
  const bertha = await createBertha(config, { logger: createLogger('silent') });
  try {
    const response = await bertha.http.inject({ method: 'GET', url: '/metrics' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toContain('text/plain');
    expect(response.body).toContain('bertha_process_cpu_seconds_total');
  } finally {
    await bertha.close();
  }
});
