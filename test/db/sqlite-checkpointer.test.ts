import { statSync } from 'node:fs';
import path from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { startCheckpointer } from '../../src/db/sqlite-checkpointer.ts';
import { tempDir } from '../helpers/temp.ts';

describe('SQLite checkpointer', () => {
  it('checkpoints the WAL into the database file from its worker thread', async () => {
    const file = path.join(tempDir(), 'wal.sqlite');
    const connection = new SqliteDatabase(file);
    connection.pragma('journal_mode = WAL');
    connection.pragma('wal_autocheckpoint = 0');
    connection.exec('create table blobs (body text)');
    const insert = connection.prepare('insert into blobs values (?)');
    connection.transaction(() => {
      for (let i = 0; i < 200; i++) insert.run('x'.repeat(4_000));
    })();
    const before = statSync(file).size;
    expect(statSync(`${file}-wal`).size).toBeGreaterThan(800_000);

    const checkpointer = startCheckpointer(file, { walBytes: 64 * 1024, intervalMs: 20 });
    await expect.poll(() => statSync(file).size, { timeout: 10_000 }).toBeGreaterThan(before + 800_000);
    await checkpointer.close();
    // The rows were copied, not lost, and the main connection still writes.
    insert.run('after');
    expect(connection.prepare('select count(*) as n from blobs').get()).toEqual({ n: 201 });
    connection.close();
  });
});
