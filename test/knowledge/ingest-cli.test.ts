import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect, test } from 'vitest';
import { createSqliteDb } from '../../src/db/sqlite.ts';
import { createDocumentStore } from '../../src/knowledge/index.ts';
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

test('bertha ingest reads a folder recursively, ingests each file, and reports failures', async () => {
  const dataDir = tempDir();
  const source = tempDir();
  mkdirSync(path.join(source, 'sub dir'));
  writeFileSync(path.join(source, 'guide.md'), '# Guide\nTurn it on. Turn it off.');
  writeFileSync(path.join(source, 'sub dir', 'manual ✓.pdf'), makePdf(['Page one.', 'Page two.']));
  writeFileSync(path.join(source, 'empty.txt'), '');
  const result = await run(['ingest', source, '--data-dir', dataDir]);
  expect(result.output).toContain('3 files: 1 failed, 2 ingested; 3 chunks written');
  expect(result.output).toMatch(/failed: documents\/empty\.txt: .*empty/);
  expect(result.code).toBe(1);

  const db = createSqliteDb({ path: path.join(dataDir, 'bertha.sqlite') });
  try {
    const documents = await createDocumentStore(db).list({ limit: 10 });
    expect(documents.map((d) => [d.key, d.status, d.chunkCount])).toEqual([
      ['documents/empty.txt', 'failed', 0],
      ['documents/guide.md', 'ingested', 1],
      ['documents/sub dir/manual ✓.pdf', 'ingested', 2],
    ]);
  } finally {
    await db.close();
  }

  const again = await run(['ingest', path.join(source, 'guide.md'), '--data-dir', dataDir]);
  expect(again.output).toContain('1 files: 1 unchanged; 0 chunks written');
  expect(again.code).toBe(0);
});
