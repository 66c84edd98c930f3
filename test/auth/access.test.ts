import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { expect, test } from 'vitest';
import { accessFor } from '../../src/auth/index.ts';
import { startBertha } from '../helpers/bertha-in-process.ts';
import { startBerthaProcess } from '../helpers/bertha-process.ts';
import { ensureWebBuilt } from '../helpers/browser.ts';
import { tempDir } from '../helpers/temp.ts';

test('the route policy: chat and thumbs are chat-level, reads need a viewer, writes an operator, keys an admin', () => {
  expect(accessFor('GET', '/')).toBe('open');
  expect(accessFor('GET', '/assets/index-abc.js')).toBe('open');
  expect(accessFor('GET', '/healthz')).toBe('open');
  expect(accessFor('POST', '/v1/chat/completions')).toBe('chat');
  expect(accessFor('GET', '/v1/models')).toBe('chat');
  expect(accessFor('GET', '/v1/models/bertha')).toBe('chat');
  expect(accessFor('GET', '/v1/models/bertha-chat/aliases/champion/bundle')).toBe('viewer');
  // The Alertmanager webhook checks its own bearer token.
  expect(accessFor('POST', '/events/alertmanager')).toBe('open');
  expect(accessFor('POST', '/v1/feedback')).toBe('chat');
  expect(accessFor('GET', '/v1/feedback?model_version=x')).toBe('viewer');
  expect(accessFor('GET', '/v1/stream')).toBe('viewer');
  expect(accessFor('POST', '/v1/documents')).toBe('operator');
  expect(accessFor('DELETE', '/v1/documents/doc_1')).toBe('operator');
  expect(accessFor('POST', '/api/2.0/mlflow/runs/search')).toBe('viewer');
  expect(accessFor('POST', '/api/2.0/mlflow/registered-models/alias')).toBe('operator');
  expect(accessFor('GET', '/v1/auth/whoami')).toBe('open');
  expect(accessFor('GET', '/v1/auth/keys')).toBe('admin');
});

test('with auth on, the dashboard APIs need a key of the right role while chat stays public', async () => {
  // The page itself is public: build it so `/` has something to serve on a fresh clone.
  await ensureWebBuilt();
  const bertha = await startBertha(['auth.enabled=true']);
  const viewer = await bertha.apiKeys.create({ name: 'viewer', role: 'viewer' });
  const admin = await bertha.apiKeys.create({ name: 'admin', role: 'admin' });
  const get = (url: string, key?: string, init: RequestInit = {}) =>
    fetch(`${bertha.url}${url}`, {
      ...init,
      headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...init.headers },
    });

  const anonymous = await get('/v1/events');
  expect(anonymous.status).toBe(401);
  expect(await anonymous.json()).toMatchObject({ error: { code: 'unauthorized' } });
  expect((await get('/v1/events', 'bk_wrong')).status).toBe(401);
  expect((await get('/v1/events', viewer.key)).status).toBe(200);
  expect((await fetch(`${bertha.url}/v1/events`, { headers: { 'x-api-key': viewer.key } })).status).toBe(200);
  expect((await get('/v1/stream', undefined)).status).toBe(401);

  const forbidden = await get('/v1/auth/keys', viewer.key);
  expect(forbidden.status).toBe(403);
  expect(await forbidden.json()).toMatchObject({ error: { code: 'forbidden' } });
  const created = await get('/v1/auth/keys', admin.key, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'ci', role: 'operator' }),
  });
  expect(created.status).toBe(201);
  const body = (await created.json()) as { id: string; key: string; role: string };
  expect(body.role).toBe('operator');
  expect(await bertha.apiKeys.verify(body.key)).toMatchObject({ role: 'operator' });
  expect((await get(`/v1/auth/keys/${body.id}`, admin.key, { method: 'DELETE' })).status).toBe(200);
  expect((await get('/v1/events', body.key)).status).toBe(401);

  // Chat routes are public.
  expect((await get('/v1/models')).status).not.toBe(401);
  expect((await get('/')).status).toBe(200);
  const whoami = await get('/v1/auth/whoami', viewer.key);
  expect(await whoami.json()).toMatchObject({ enabled: true, chat: 'public', key: { role: 'viewer' } });
});

test('with chat keyed, the chat routes need a key too', async () => {
  const bertha = await startBertha(['auth.enabled=true', 'auth.chat=keyed']);
  const viewer = await bertha.apiKeys.create({ name: 'v', role: 'viewer' });
  expect((await fetch(`${bertha.url}/v1/models`)).status).toBe(401);
  const keyed = await fetch(`${bertha.url}/v1/models`, { headers: { authorization: `Bearer ${viewer.key}` } });
  expect(keyed.status).not.toBe(401);
  await keyed.arrayBuffer();
});

test('bertha auth create-key prints a key once that the running server accepts', async () => {
  const dataDir = tempDir();
  const cli = spawnSync(
    process.execPath,
    [path.resolve('bin/bertha.js'), 'auth', 'create-key', '--role', 'viewer', '--name', 'dash', '--data-dir', dataDir],
    { encoding: 'utf8' },
  );
  expect(cli.status).toBe(0);
  const key = cli.stdout.trim();
  expect(key).toMatch(/^bk_/);
  expect(cli.stderr).toContain('shown only now');

  const listed = spawnSync(
    process.execPath,
    [path.resolve('bin/bertha.js'), 'auth', 'list-keys', '--data-dir', dataDir],
    {
      encoding: 'utf8',
    },
  );
  expect(listed.stdout).toContain('viewer\tdash');
  expect(listed.stdout).not.toContain(key);

  const bertha = await startBerthaProcess(['--data-dir', dataDir, '--set', 'auth.enabled=true'], {}, 120_000);
  expect((await fetch(`${bertha.url}/v1/events`)).status).toBe(401);
  expect((await fetch(`${bertha.url}/v1/events`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
}, 240_000);
