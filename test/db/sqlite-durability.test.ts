import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { expect, test } from 'vitest';
import { createSqliteDb } from '../../src/db/sqlite.ts';
import { tempDir } from '../helpers/temp.ts';

test('a committed SQLite write survives the writing process being killed with SIGKILL', async () => {
  const file = path.join(tempDir(), 'bertha.sqlite');
  const script = `
    import { createSqliteDb } from ${JSON.stringify(path.resolve('src/db/sqlite.ts'))};
    const db = createSqliteDb({ path: ${JSON.stringify(file)} });
    await db.migrate();
    await db.kysely.insertInto('events').values({ id: 'evt_1', type: 't', source: 's', subject: null, dedupe_key: null, payload_json: '{}', created_at: new Date().toISOString() }).execute();
    process.kill(process.pid, 'SIGKILL');
  `;
  expect(() => execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script])).toThrow();
  const db = createSqliteDb({ path: file });
  try {
    const rows = await db.kysely.selectFrom('events').select('id').execute();
    expect(rows).toEqual([{ id: 'evt_1' }]);
  } finally {
    await db.close();
  }
});
