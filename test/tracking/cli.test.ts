import { spawn } from 'node:child_process';
import path from 'node:path';
import { expect, test } from 'vitest';
import { createTrackingClient } from '../../src/tracking/index.ts';
import { startBerthaProcess } from '../helpers/bertha-process.ts';
import { tempDir } from '../helpers/temp.ts';

function bertha(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.resolve('bin/bertha.js'), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
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

test('bertha models lists versions with aliases and metrics, promote moves champion on the running server, runs compares metrics', async () => {
  const dataDir = tempDir();
  const server = await startBerthaProcess(['--data-dir', dataDir]);
  const port = new URL(server.url).port;
  const client = createTrackingClient({ uri: server.url });
  const experimentId = await client.getOrCreateExperiment('llm-retraining');
  await client.createRegisteredModel('bertha-chat');
  for (const [i, accuracy] of [0.71, 0.84].entries()) {
    const run = await client.createRun({ experimentId, runName: `retrain-${i + 1}` });
    await client.logMetrics(run.info.run_id, { gold_accuracy: accuracy, hallucination_rate: 0.1 / (i + 1) });
    await client.endRun(run.info.run_id);
    await client.createModelVersion({ name: 'bertha-chat', source: `models/${i + 1}.gguf`, runId: run.info.run_id });
  }
  await client.setAlias('bertha-chat', 'champion', '1');
  await client.setAlias('bertha-chat', 'challenger', '2');

  const listed = await bertha(['models', '--port', port, '--data-dir', dataDir]);
  expect(listed.code, listed.stderr).toBe(0);
  const lines = listed.stdout.trim().split('\n');
  expect(lines[1]).toMatch(/^VERSION\s+ALIASES\s+STAGE\s+CREATED\s+RUN\s+gold_accuracy\s+hallucination_rate$/);
  expect(lines[2]).toMatch(/^2\s+challenger\s+None\s.*0\.84\s+0\.05$/);
  expect(lines[3]).toMatch(/^1\s+champion\s+None\s.*0\.71\s+0\.1$/);

  const promoted = await bertha(['models', 'promote', '2', '--port', port, '--data-dir', dataDir]);
  expect(promoted.code, promoted.stderr).toBe(0);
  expect(promoted.stdout).toBe('bertha-chat: champion 1 -> 2\n');
  expect((await client.getVersionByAlias('bertha-chat', 'champion'))?.version).toBe('2');
  const events = (await (await fetch(`${server.url}/v1/events?type=model.alias_changed`)).json()) as {
    data: { payload: unknown }[];
  };
  expect(events.data[0]?.payload).toEqual({ name: 'bertha-chat', alias: 'champion', version: '2', previous: '1' });

  const runs = await bertha([
    'runs',
    '--port',
    port,
    '--data-dir',
    dataDir,
    '-o',
    'metrics.gold_accuracy DESC',
    '--metrics',
    'gold_accuracy',
  ]);
  expect(runs.code, runs.stderr).toBe(0);
  expect(
    runs.stdout
      .trim()
      .split('\n')
      .map((line) => line.split(/\s+/)[1]),
  ).toEqual(['NAME', 'retrain-2', 'retrain-1']);
  const filtered = await bertha([
    'runs',
    '--port',
    port,
    '--data-dir',
    dataDir,
    '-f',
    'metrics.gold_accuracy < 0.8',
    '--json',
  ]);
  expect((JSON.parse(filtered.stdout) as { info: { run_name: string } }[]).map((run) => run.info.run_name)).toEqual([
    'retrain-1',
  ]);
  const invalid = await bertha(['runs', '--port', port, '--data-dir', dataDir, '-f', 'metrics.gold_accuracy <']);
  expect(invalid.code).toBe(1);
  expect(invalid.stderr).toContain('Invalid filter');
  // Each CLI call starts a Node process with tsx; on a loaded 2-core machine that alone takes seconds.
}, 240_000);
