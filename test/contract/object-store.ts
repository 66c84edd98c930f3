import { Readable } from 'node:stream';
import { expect, test } from 'vitest';
import { type ObjectStore, readObject } from '../../src/objects/index.ts';

async function keysOf(store: ObjectStore, prefix?: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const info of store.list(prefix)) keys.push(info.key);
  return keys.sort();
}

/** Behaviour every ObjectStore adapter must have. `create` returns an empty store. */
export function objectStoreContract(create: () => Promise<ObjectStore>): void {
  test('put then get returns the same bytes, head reports size and an etag', async () => {
    const store = await create();
    const body = Buffer.from('# Title\n\nSome text ✓\n');
    const info = await store.put('docs/readme.md', body);
    expect(info).toMatchObject({ key: 'docs/readme.md', size: body.length });
    expect(info.etag).not.toBe('');
    expect(await readObject(store, 'docs/readme.md')).toEqual(body);
    expect(await store.head('docs/readme.md')).toMatchObject({
      key: 'docs/readme.md',
      size: body.length,
      etag: info.etag,
    });
  });

  test('streams are accepted as bodies', async () => {
    const store = await create();
    await store.put('stream.txt', Readable.from([Buffer.from('a'), Buffer.from('b')]));
    expect((await readObject(store, 'stream.txt')).toString()).toBe('ab');
  });

  test('overwriting changes the etag; delete removes; deleting twice is fine', async () => {
    const store = await create();
    const first = await store.put('a.txt', 'one');
    await new Promise((resolve) => setTimeout(resolve, 5));
    const second = await store.put('a.txt', 'second version');
    expect(second.etag).not.toBe(first.etag);
    await store.delete('a.txt');
    await store.delete('a.txt');
    expect(await store.head('a.txt')).toBeUndefined();
    await expect(store.get('a.txt')).rejects.toMatchObject({ code: 'object_not_found', status: 404 });
  });

  test('keys with spaces and unicode work; list filters by prefix', async () => {
    const store = await create();
    const keys = ['reports/Q1 summary.pdf', 'reports/résumé 2026 ✓.md', 'notes/日本語.txt', 'top.txt'];
    for (const key of keys) await store.put(key, key);
    expect(await keysOf(store)).toEqual([...keys].sort());
    expect(await keysOf(store, 'reports/')).toEqual(['reports/Q1 summary.pdf', 'reports/résumé 2026 ✓.md']);
    expect(await keysOf(store, 'reports/r')).toEqual(['reports/résumé 2026 ✓.md']);
    expect(await keysOf(store, 'missing/')).toEqual([]);
    expect((await readObject(store, 'notes/日本語.txt')).toString()).toBe('notes/日本語.txt');
  });

  test('keys that could escape the store are rejected before any I/O', async () => {
    const store = await create();
    for (const key of ['../escape.txt', 'a/../../b', '/abs', 'a//b', 'a\\b', '', 'nul\u0000byte']) {
      await expect(store.put(key, 'x')).rejects.toMatchObject({ code: 'invalid_request', status: 400 });
      await expect(store.get(key)).rejects.toMatchObject({ status: 400 });
    }
  });
}
