import { sql } from 'kysely';
import { expect, onTestFinished, test } from 'vitest';
import { isoNow, newId } from '../../src/core/ids.ts';
import { isUniqueViolation, type MetadataDb } from '../../src/db/index.ts';
import type { DbFactory } from '../helpers/databases.ts';

async function open(factory: DbFactory): Promise<MetadataDb> {
  const db = await factory.create();
  onTestFinished(() => db.close());
  return db;
}

function eventRow(
  overrides: Partial<{ id: string; type: string; dedupe_key: string | null; created_at: string }> = {},
) {
  return {
    id: newId('evt'),
    type: 'test.happened',
    source: 'contract',
    subject: 'subject-1',
    dedupe_key: null,
    payload_json: JSON.stringify({ n: 1, text: 'héllo ✓' }),
    created_at: isoNow(),
    ...overrides,
  };
}

/** Behaviour every MetadataDb adapter must have; run against SQLite and PostgreSQL. */
export function metadataDbContract(factory: DbFactory): void {
  test('migrate is idempotent: a second run applies nothing', async () => {
    const db = await open(factory);
    expect(await db.migrate()).toEqual([]);
    await db.ping();
  });

  test('rows round-trip with unicode JSON text and ISO timestamps intact', async () => {
    const db = await open(factory);
    const row = eventRow();
    await db.kysely.insertInto('events').values(row).execute();
    const read = await db.kysely.selectFrom('events').selectAll().where('id', '=', row.id).executeTakeFirstOrThrow();
    // `sent` takes its default: an event stored here counts as delivered.
    expect(read).toEqual({ ...row, sent: 1 });
    expect(JSON.parse(read.payload_json)).toEqual({ n: 1, text: 'héllo ✓' });
  });

  test('a duplicate unique key is reported as a unique violation', async () => {
    const db = await open(factory);
    await db.kysely
      .insertInto('events')
      .values(eventRow({ dedupe_key: 'k1' }))
      .execute();
    const error = await db.kysely
      .insertInto('events')
      .values(eventRow({ dedupe_key: 'k1' }))
      .execute()
      .catch((caught: unknown) => caught);
    expect(isUniqueViolation(error)).toBe(true);
    expect(isUniqueViolation(new Error('other'))).toBe(false);
  });

  test('a failed transaction leaves nothing behind', async () => {
    const db = await open(factory);
    const row = eventRow();
    await expect(
      db.kysely.transaction().execute(async (trx) => {
        await trx.insertInto('events').values(row).execute();
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    const count = await db.kysely.selectFrom('events').select(sql<number>`count(*)`.as('n')).executeTakeFirstOrThrow();
    expect(Number(count.n)).toBe(0);
  });

  test('concurrent writers all land and ids sort in creation order', async () => {
    const db = await open(factory);
    const rows = Array.from({ length: 50 }, () => eventRow());
    await Promise.all(rows.map((row) => db.kysely.insertInto('events').values(row).execute()));
    const read = await db.kysely.selectFrom('events').select('id').orderBy('id').execute();
    expect(read.map((r) => r.id)).toEqual(rows.map((r) => r.id));
  });

  test('ISO timestamps compare correctly in range filters', async () => {
    const db = await open(factory);
    await db.kysely
      .insertInto('events')
      .values([
        eventRow({ created_at: '2026-01-01T00:00:00.000Z' }),
        eventRow({ created_at: '2026-06-01T00:00:00.000Z' }),
        eventRow({ created_at: '2026-12-01T00:00:00.000Z' }),
      ])
      .execute();
    const mid = await db.kysely
      .selectFrom('events')
      .select('created_at')
      .where('created_at', '>=', '2026-03-01T00:00:00.000Z')
      .where('created_at', '<', '2026-09-01T00:00:00.000Z')
      .execute();
    expect(mid).toEqual([{ created_at: '2026-06-01T00:00:00.000Z' }]);
  });
}
