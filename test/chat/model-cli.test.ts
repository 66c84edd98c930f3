import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import OpenAI from 'openai';
import { expect, onTestFinished, test } from 'vitest';
import { loadConfig } from '../../src/config/index.ts';
import { writeTinyLlama } from '../fixtures/tiny-llama.ts';
import { startBerthaProcess } from '../helpers/bertha-process.ts';
import { tempDir } from '../helpers/temp.ts';
import { eventually } from './serving.ts';

const BIN = path.resolve('bin/bertha.js');

function runBertha(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A plain HTTP file server on loopback, as a model host would be. */
async function serveFile(file: string): Promise<string> {
  const body = readFileSync(file);
  const server: Server = createServer((request, response) => {
    if (request.url !== `/models/${path.basename(file)}`) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'content-length': body.length, 'content-type': 'application/octet-stream' });
    response.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/models/${path.basename(file)}`;
}

test('bertha model pull downloads a GGUF, checks its sha256, and refuses a mismatch', {
  timeout: 240_000,
}, async () => {
  const tiny = await writeTinyLlama(tempDir());
  const url = await serveFile(tiny.modelPath);
  const expected = createHash('sha256').update(readFileSync(tiny.modelPath)).digest('hex');
  const dataDir = tempDir();

  const pulled = await runBertha(['--data-dir', dataDir, 'model', 'pull', url, '--sha256', expected]);
  expect(pulled.code).toBe(0);
  const target = path.join(dataDir, 'models', 'tiny-llama.gguf');
  expect(pulled.stdout).toContain(target);
  expect(pulled.stdout).toContain(`sha256 ${expected}`);
  expect(pulled.stderr).toContain('100%');
  expect(readFileSync(target).equals(readFileSync(tiny.modelPath))).toBe(true);

  const wrong = await runBertha([
    'model',
    'pull',
    url,
    '--output',
    path.join(dataDir, 'other'),
    '--sha256',
    '0'.repeat(64),
  ]);
  expect(wrong.code).toBe(1);
  expect(wrong.stderr).toContain('checksum mismatch');
  expect(readdirSync(path.join(dataDir, 'other'))).toEqual([]);

  const missing = await runBertha(['model', 'pull', `${url}.nope`, '--output', path.join(dataDir, 'other')]);
  expect(missing.code).toBe(1);
  expect(missing.stderr).toContain('404');
  expect(existsSync(path.join(dataDir, 'other', 'tiny-llama.gguf.nope'))).toBe(false);
});

// Child processes that load node-llama-cpp take a while on a busy 2-core machine.
const PROCESS_TEST_TIMEOUT_MS = 240_000;

test('bertha up --model serves the GGUF through the OpenAI API', { timeout: PROCESS_TEST_TIMEOUT_MS }, async () => {
  const tiny = await writeTinyLlama(tempDir());
  const bertha = await startBerthaProcess(
    [
      '--data-dir',
      tempDir(),
      '--set',
      'serving.llamaCpp.gpu=off',
      '--set',
      'serving.llamaCpp.contextSize=512',
      '--model',
      tiny.modelPath,
    ],
    {},
    120_000,
  );
  expect((await fetch(`${bertha.url}/healthz`)).status).toBe(200);
  await eventually(async () => ((await fetch(`${bertha.url}/readyz`)).status === 200 ? true : undefined), 120_000);
  const client = new OpenAI({ baseURL: `${bertha.url}/v1`, apiKey: 'unused' });
  const completion = await client.chat.completions.create({
    model: 'bertha',
    messages: [{ role: 'user', content: 'hello' }],
    max_tokens: 4,
  });
  expect(completion.usage?.completion_tokens).toBe(4);
  bertha.child.kill('SIGTERM');
  expect(await bertha.exited).toBe(0);
});

test('BERTHA_MODEL and --model both set the served GGUF, resolved against the working directory', () => {
  const cwd = tempDir();
  expect(loadConfig({}, { BERTHA_MODEL: 'models/a.gguf' }, cwd).config.serving.model).toBe(
    path.join(cwd, 'models/a.gguf'),
  );
  expect(loadConfig({ model: '/abs/b.gguf' }, { BERTHA_MODEL: 'models/a.gguf' }, cwd).config.serving.model).toBe(
    '/abs/b.gguf',
  );
});
