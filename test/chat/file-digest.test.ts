import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect, test } from 'vitest';
import { createFileDigests } from '../../src/models/index.ts';
import { tempDir } from '../helpers/temp.ts';

const sha256Of = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** Waits until `file` was last changed long enough ago for its timestamps to tell a later change apart. */
async function settled(file: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() - statSync(file).ctimeMs <= 2_500) {
    if (Date.now() > deadline) throw new Error(`${file} never settled`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test('a file is digested as sha256 of its bytes, and not read again while it is unchanged', async () => {
  const file = path.join(tempDir(), 'adapter.gguf');
  writeFileSync(file, 'first adapter bytes');
  await settled(file);
  const digests = createFileDigests();

  const first = await digests.digest(file);
  expect(first).toEqual({ digest: sha256Of(readFileSync(file)), file: 'adapter.gguf', bytes: 19 });
  expect(await digests.digest(file)).toEqual(first);
  expect(await digests.digest(file)).toEqual(first);
  expect(digests.hashedFiles).toBe(1);
});

test('a file changed just before it was digested is read again next time (its timestamps may not show a second write)', async () => {
  const file = path.join(tempDir(), 'adapter.gguf');
  writeFileSync(file, 'first adapter bytes');
  const digests = createFileDigests();
  await digests.digest(file);
  await digests.digest(file);
  expect(digests.hashedFiles).toBe(2);
});

test('a file replaced under the same path (renamed over it) gets a new digest', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'adapter.gguf');
  writeFileSync(file, 'first adapter bytes');
  const digests = createFileDigests();
  const before = await digests.digest(file);

  writeFileSync(path.join(dir, 'adapter.gguf.new'), 'other adapter bytes');
  renameSync(path.join(dir, 'adapter.gguf.new'), file);
  const after = await digests.digest(file);
  expect(after.digest).toBe(sha256Of(Buffer.from('other adapter bytes')));
  expect(after.digest).not.toBe(before.digest);
  expect(digests.hashedFiles).toBe(2);
});

test('a file rewritten in place with the same size gets a new digest', async () => {
  const file = path.join(tempDir(), 'model.gguf');
  writeFileSync(file, 'aaaaaaaa');
  const digests = createFileDigests();
  const before = await digests.digest(file);

  writeFileSync(file, 'bbbbbbbb');
  const after = await digests.digest(file);
  expect(after).toEqual({ digest: sha256Of(Buffer.from('bbbbbbbb')), file: 'model.gguf', bytes: 8 });
  expect(after.digest).not.toBe(before.digest);
});

test('a large file is streamed: the event loop keeps running while it is hashed', async () => {
  const file = path.join(tempDir(), 'big.gguf');
  const size = 48 * 1024 * 1024;
  writeFileSync(file, '');
  truncateSync(file, size);
  const digests = createFileDigests();
  let turns = 0;
  let hashing = true;
  const tick = () => {
    turns += 1;
    if (hashing) setImmediate(tick);
  };
  setImmediate(tick);
  const digest = await digests.digest(file);
  hashing = false;
  expect(digest).toEqual({ digest: sha256Of(Buffer.alloc(size)), file: 'big.gguf', bytes: size });
  // Read in 1 MiB chunks: other work ran between them.
  expect(turns).toBeGreaterThan(1);
});

test('an aborted digest rejects with the abort reason; a missing file is an error', async () => {
  const file = path.join(tempDir(), 'model.gguf');
  writeFileSync(file, 'bytes');
  const digests = createFileDigests();
  const controller = new AbortController();
  controller.abort(new Error('bundle retired'));
  await expect(digests.digest(file, controller.signal)).rejects.toThrow('bundle retired');
  await expect(digests.digest(path.join(path.dirname(file), 'missing.gguf'))).rejects.toMatchObject({
    code: 'ENOENT',
  });
});

test('digests kept in a cache file survive a restart; a file changed since is read again; a corrupt cache is ignored', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'base.gguf');
  const cacheFile = path.join(dir, 'file-digests.json');
  writeFileSync(file, 'base model bytes');
  await settled(file);
  const first = createFileDigests({ cacheFile });
  const digest = await first.digest(file);
  expect(first.hashedFiles).toBe(1);
  await first.flush();
  expect(existsSync(cacheFile)).toBe(true);

  const afterRestart = createFileDigests({ cacheFile });
  expect(await afterRestart.digest(file)).toEqual(digest);
  expect(afterRestart.hashedFiles).toBe(0);

  writeFileSync(file, 'other model bytes');
  await settled(file);
  const afterChange = createFileDigests({ cacheFile });
  expect((await afterChange.digest(file)).digest).toBe(sha256Of(Buffer.from('other model bytes')));
  expect(afterChange.hashedFiles).toBe(1);
  await afterChange.flush();

  writeFileSync(cacheFile, '{not json');
  const corrupt = createFileDigests({ cacheFile });
  expect((await corrupt.digest(file)).digest).toBe(sha256Of(Buffer.from('other model bytes')));
  expect(corrupt.hashedFiles).toBe(1);
  // The rewritten cache lands before the folder is removed.
  await corrupt.flush();
  expect(JSON.parse(readFileSync(cacheFile, 'utf8'))).toHaveProperty([file]);
});
