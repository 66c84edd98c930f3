import { describe, expect, onTestFinished, test } from 'vitest';
import { createApiKeyStore, hashApiKey } from '../../src/auth/index.ts';
import { dbFactories } from '../helpers/databases.ts';

for (const factory of dbFactories) {
  const available = await factory.available();
  describe.skipIf(!available)(`API key store on ${factory.name}`, () => {
    async function open() {
      const db = await factory.create();
      onTestFinished(() => db.close());
      return { db, keys: createApiKeyStore(db) };
    }

    test('a created key verifies to its role, and only its hash is stored', async () => {
      const { db, keys } = await open();
      const created = await keys.create({ name: 'ops laptop', role: 'operator' });
      expect(created.key).toMatch(/^bk_[A-Za-z0-9_-]{43}$/);
      const verified = await keys.verify(created.key);
      expect(verified).toMatchObject({ id: created.record.id, role: 'operator', name: 'ops laptop' });
      expect(verified?.lastUsedAt).not.toBeNull();
      const rows = await db.kysely.selectFrom('api_keys').selectAll().execute();
      expect(rows).toHaveLength(1);
      expect(rows[0]?.key_hash).toBe(hashApiKey(created.key));
      expect(JSON.stringify(rows)).not.toContain(created.key);
      expect(await keys.verify(`${created.key}x`)).toBeUndefined();
      expect(await keys.verify('not-a-key')).toBeUndefined();
    });

    test('a revoked key no longer verifies and is listed as revoked', async () => {
      const { keys } = await open();
      const kept = await keys.create({ name: 'a', role: 'viewer' });
      const revoked = await keys.create({ name: 'b', role: 'admin' });
      expect((await keys.revoke(revoked.record.id)).revokedAt).not.toBeNull();
      expect(await keys.verify(revoked.key)).toBeUndefined();
      expect(await keys.verify(kept.key)).toBeDefined();
      const listed = await keys.list();
      expect(listed.map((record) => [record.name, record.revokedAt !== null])).toEqual([
        ['a', false],
        ['b', true],
      ]);
      await expect(keys.revoke('key_missing')).rejects.toMatchObject({ code: 'not_found' });
    });
  });
}
