import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { expect, onTestFinished, test } from 'vitest';
import { createBertha } from '../../src/app.ts';
import { terminalLogger } from '../../src/cli/commands/ingest.ts';
import { loadConfig } from '../../src/config/index.ts';
import { createLogger } from '../../src/core/logger.ts';
import { createSqliteDb } from '../../src/db/sqlite.ts';
import { createDocumentStore } from '../../src/knowledge/index.ts';
import { createRunStore, type RunRecord } from '../../src/pipelines/index.ts';
import { makePdf } from '../helpers/documents.ts';
import { tempDir } from '../helpers/temp.ts';

function run(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.resolve('bin/bertha.js'), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.on('exit', (code) => resolve({ code, output }));
  });
}

/** Node's own deprecation notices are not Bertha's log lines. */
function jsonLines(output: string): string[] {
  return output.split('\n').filter((line) => line.trimStart().startsWith('{'));
}

async function ingestionRuns(dataDir: string): Promise<RunRecord[]> {
  const db = createSqliteDb({ path: path.join(dataDir, 'bertha.sqlite') });
  try {
    return await createRunStore(db).listRuns({ pipeline: 'vector-ingestion' });
  } finally {
    await db.close();
  }
}

test('bertha ingest reads a folder recursively, refuses what it cannot ingest, runs the rest, and reports failures', async () => {
  const dataDir = tempDir();
  const source = tempDir();
  mkdirSync(path.join(source, 'sub dir'));
  writeFileSync(path.join(source, 'guide.md'), '# Guide\nTurn it on. Turn it off.');
  writeFileSync(path.join(source, 'sub dir', 'manual ✓.pdf'), makePdf(['Page one.', 'Page two.']));
  writeFileSync(path.join(source, 'broken.pdf'), '%PDF-1.4\nthis is not a pdf');
  writeFileSync(path.join(source, 'empty.txt'), '');
  writeFileSync(path.join(source, 'setup.exe'), Buffer.from('MZ\x90\x00binary'));
  const result = await run(['ingest', source, '--data-dir', dataDir]);
  expect(result.output).toContain('5 files: 1 failed, 2 refused, 2 ingested; 3 chunks written');
  expect(result.output).toMatch(/failed: documents\/broken\.pdf: .*corrupt PDF.*\(run run_\w+\)/);
  expect(result.output).toContain('refused: documents/empty.txt: the file is empty');
  expect(result.output).toContain("refused: documents/setup.exe: unsupported format '.exe'");
  expect(result.output).toMatch(/accepted formats: PDF \(\.pdf\), Word \(\.docx\), Markdown/);
  // The terminal gets the summary, not log records (a load failure is a warning in the server's log).
  expect(jsonLines(result.output)).toEqual([]);
  expect(result.code).toBe(1);

  const db = createSqliteDb({ path: path.join(dataDir, 'bertha.sqlite') });
  try {
    const documents = await createDocumentStore(db).list({ limit: 10 });
    expect(documents.map((d) => [d.key, d.status, d.chunkCount])).toEqual([
      ['documents/broken.pdf', 'failed', 0],
      ['documents/guide.md', 'ingested', 1],
      ['documents/sub dir/manual ✓.pdf', 'ingested', 2],
    ]);
    const runs = await createRunStore(db).listRuns({ pipeline: 'vector-ingestion' });
    expect(runs.map((r) => [r.params.key, r.status]).sort()).toEqual([
      ['documents/broken.pdf', 'failed'],
      ['documents/guide.md', 'succeeded'],
      ['documents/sub dir/manual ✓.pdf', 'succeeded'],
    ]);
  } finally {
    await db.close();
  }

  const again = await run(['ingest', path.join(source, 'guide.md'), '--data-dir', dataDir]);
  expect(again.output).toContain('1 files: 1 unchanged; 0 chunks written');
  expect(again.code).toBe(0);

  const nothing = await run(['ingest', path.join(source, 'setup.exe'), '--data-dir', dataDir]);
  expect(nothing.output).toContain('1 files: 1 refused; 0 chunks written');
  expect(nothing.code).toBe(1);
}, 120_000);

test('one file ingested by bertha ingest is one vector-ingestion run, also once bertha up watches the folder', async () => {
  const dataDir = tempDir();
  const source = tempDir();
  writeFileSync(path.join(source, 'guide.md'), '# Guide\nTurn it on. Turn it off.');
  const result = await run(['ingest', path.join(source, 'guide.md'), '--data-dir', dataDir]);
  expect(result.output).toContain('1 files: 1 ingested; 1 chunks written');
  expect((await ingestionRuns(dataDir)).map((r) => [r.params.key, r.status])).toEqual([
    ['documents/guide.md', 'succeeded'],
  ]);

  // `bertha up` on the same data dir: its folder watcher scans at start; its runner claims what is queued.
  const { config } = loadConfig({ dataDir, port: 0, set: ['pipelines.pollIntervalMs=50'] }, {}, dataDir);
  const bertha = await createBertha(config, { logger: createLogger('silent') });
  onTestFinished(() => bertha.close());
  await bertha.listen();
  // A file dropped by hand afterwards: once its run has finished, the watcher has scanned the folder.
  writeFileSync(path.join(dataDir, 'objects', 'documents', 'dropped.md'), '# Dropped\nBy hand.');
  const deadline = Date.now() + 30_000;
  for (;;) {
    const runs = await bertha.pipelines.store.listRuns({ pipeline: 'vector-ingestion' });
    const dropped = runs.find((r) => r.params.key === 'documents/dropped.md');
    if (dropped?.status === 'succeeded') break;
    if (Date.now() > deadline) throw new Error('timed out waiting for the run of the dropped file');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await bertha.pipelines.runner.idle();
  const runs = await bertha.pipelines.store.listRuns({ pipeline: 'vector-ingestion' });
  expect(runs.map((r) => r.params.key).sort()).toEqual(['documents/dropped.md', 'documents/guide.md']);
}, 120_000);

test('on the terminal, library warnings stay out of sight and errors are one plain line; debug shows every record', () => {
  const lines: string[] = [];
  const terminal = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  const logger = terminalLogger('info', terminal).child({ component: 'llm' });
  // As src/llm/llama-cpp.ts forwards llama.cpp's own messages.
  logger.warn(
    { llama: 'llama_context: n_ctx_seq (256) > n_ctx_train (128) -- possible training context overflow' },
    'llama.cpp',
  );
  logger.info({ model: 'starter.gguf' }, 'model loaded');
  logger.error({ err: new Error('out of memory') }, 'model failed to load');
  expect(lines).toEqual(['bertha: llm: model failed to load: out of memory']);

  lines.length = 0;
  terminalLogger('debug', terminal).warn({ llama: 'n_ctx_seq (256) > n_ctx_train (128)' }, 'llama.cpp');
  expect(lines).toHaveLength(1);
  expect(JSON.parse(lines[0] as string)).toMatchObject({ level: 40, msg: 'llama.cpp' });
});
