import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect, test } from 'vitest';
import YAML from 'yaml';
import { createSqliteDb } from '../../src/db/sqlite.ts';
import { createFsObjectStore } from '../../src/objects/fs.ts';
import { readObject } from '../../src/objects/index.ts';
import { argoReferenceProblems, type RenderedManifest, strictSchemaProblems } from '../../src/pipelines/argo/index.ts';
import { createRunStore } from '../../src/pipelines/index.ts';
import { tempDir } from '../helpers/temp.ts';

const run = promisify(execFile);
const BIN = path.resolve('bin/bertha.js');

async function bertha(dataDir: string, ...args: string[]) {
  return run(process.execPath, [BIN, '-d', dataDir, '--set', 'log.level=warn', ...args], { timeout: 240_000 });
}

test('`bertha step` runs vector-ingestion one pod at a time, passing object keys between steps as Argo does', async () => {
  const dataDir = tempDir();
  mkdirSync(path.join(dataDir, 'objects', 'documents'), { recursive: true });
  writeFileSync(
    path.join(dataDir, 'objects', 'documents', 'faq.md'),
    '# Returns\nItems can be returned within 30 days.\n',
  );
  const runId = 'vector-ingestion-x7k2p';
  const params = ['--param', 'key=documents/faq.md', '--param', 'change=created'];
  const outputs = (step: string) => path.join(dataDir, 'pods', step);
  const key = (step: string, name: string) => readFileSync(path.join(outputs(step), name), 'utf8');

  await bertha(
    dataDir,
    'step',
    'vector-ingestion',
    'load-document',
    '--run',
    runId,
    '--single-attempt',
    '--outputs-dir',
    outputs('load'),
    ...params,
  );
  await bertha(
    dataDir,
    'step',
    'vector-ingestion',
    'create-vectors',
    '--run',
    runId,
    '--single-attempt',
    '--outputs-dir',
    outputs('create'),
    ...params,
    '--input',
    `loaded=${key('load', 'loaded')}`,
  );
  await bertha(
    dataDir,
    'step',
    'vector-ingestion',
    'ingest-vectors',
    '--run',
    runId,
    '--single-attempt',
    '--outputs-dir',
    outputs('ingest'),
    ...params,
    '--input',
    `vectorized=${key('create', 'vectorized')}`,
  );

  const db = createSqliteDb({ path: path.join(dataDir, 'bertha.sqlite') });
  try {
    const store = createRunStore(db);
    expect(await store.getRun(runId)).toMatchObject({
      status: 'succeeded',
      executor: 'argo',
      params: { key: 'documents/faq.md' },
    });
    const objects = createFsObjectStore({ root: path.join(dataDir, 'objects') });
    const result = JSON.parse((await readObject(objects, key('ingest', 'result'))).toString());
    expect(result).toMatchObject({ key: 'documents/faq.md', status: 'ingested', chunkCount: 1 });
    const show = await bertha(dataDir, 'pipeline', 'show', runId, '--json');
    // Pretty-printed JSON starts with `{` alone on a line; log lines (one JSON object each) may precede it.
    const detail = JSON.parse(show.stdout.slice(show.stdout.indexOf('{\n')));
    expect(detail.steps.map((step: { name: string; status: string }) => `${step.name}:${step.status}`)).toEqual([
      'load-document:succeeded',
      'create-vectors:succeeded',
      'ingest-vectors:succeeded',
    ]);
  } finally {
    await db.close();
  }
}, 900_000);

test('`bertha deploy render --target argo` writes manifests that pass the schema and reference checks', async () => {
  const dataDir = tempDir();
  const out = path.join(dataDir, 'argo');
  const { stdout } = await bertha(dataDir, 'deploy', 'render', '--target', 'argo', '--out', out);
  expect(stdout.split('\n').filter((line) => line.endsWith('.yaml'))).toHaveLength(readdirSync(out).length);
  const manifests: RenderedManifest[] = readdirSync(out).map((file) => ({
    file,
    manifest: YAML.parse(readFileSync(path.join(out, file), 'utf8')),
  }));
  expect(manifests.map(({ file }) => file).sort()).toEqual([
    'eventbus.yaml',
    'eventsource-alertmanager.yaml',
    'eventsource-minio.yaml',
    'sensor-llm-retraining-on-alertmanager.yaml',
    'sensor-vector-ingestion-on-removals.yaml',
    'sensor-vector-ingestion-on-uploads.yaml',
    'workflowtemplate-llm-retraining.yaml',
    'workflowtemplate-vector-ingestion.yaml',
  ]);
  for (const { manifest } of manifests) expect(strictSchemaProblems(manifest)).toEqual([]);
  expect(argoReferenceProblems(manifests)).toEqual([]);
  await expect(bertha(dataDir, 'deploy', 'render', '--target', 'helm')).rejects.toThrow(/unknown target 'helm'/);
}, 200_000);
