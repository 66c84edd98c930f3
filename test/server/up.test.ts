import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect, test } from 'vitest';
import { startBerthaProcess } from '../helpers/bertha-process.ts';
import { tempDir } from '../helpers/temp.ts';

test('bertha up on a fresh data dir serves /healthz and /readyz, and exits 0 on SIGTERM', async () => {
  const dataDir = tempDir();
  const bertha = await startBerthaProcess(['--data-dir', dataDir]);
  const health = await fetch(`${bertha.url}/healthz`);
  expect(health.status).toBe(200);
  expect(await health.json()).toMatchObject({ status: 'ok' });
  // Components may finish opening after the server listens (the vector store loads in the background).
  const deadline = Date.now() + 20_000;
  let ready = await fetch(`${bertha.url}/readyz`);
  while (ready.status !== 200 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    ready = await fetch(`${bertha.url}/readyz`);
  }
  const body = (await ready.json()) as { status: string; checks: Record<string, { ready: boolean }> };
  expect(ready.status).toBe(200);
  expect(body.checks.database?.ready).toBe(true);
  expect(health.headers.get('x-request-id')).toMatch(/[0-9a-f-]{36}/);

  bertha.child.kill('SIGTERM');
  expect(await bertha.exited).toBe(0);
  const lines = bertha
    .output()
    .trim()
    .split('\n')
    .filter((line) => line.startsWith('{'));
  expect(lines.length).toBeGreaterThan(0);
  for (const line of lines) expect(() => JSON.parse(line)).not.toThrow();
  expect(bertha.output()).toContain('shutting down');
});

test('a malformed bertha.yaml stops start-up with a one-line error naming the key', () => {
  const dir = tempDir();
  writeFileSync(path.join(dir, 'bertha.yaml'), 'server:\n  port: "not a port"\n');
  const result = spawnSync(process.execPath, [path.resolve('bin/bertha.js'), 'up'], { cwd: dir, encoding: 'utf8' });
  expect(result.status).toBe(78);
  expect(result.stderr.trim().split('\n')).toHaveLength(1);
  expect(result.stderr).toContain('server.port');
  expect(result.stderr).toContain('expected number');
});

test('the request id a client sends is echoed back', async () => {
  const bertha = await startBerthaProcess(['--data-dir', tempDir()]);
  const response = await fetch(`${bertha.url}/healthz`, { headers: { 'x-request-id': 'trace-abc-123' } });
  expect(response.headers.get('x-request-id')).toBe('trace-abc-123');
});
