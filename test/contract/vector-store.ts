import { expect, test } from 'vitest';
import type { ChunkWithVector, VectorStore } from '../../src/knowledge/index.ts';
import { createLexicalEmbedder } from '../../src/knowledge/lexical-embedder.ts';

const embedder = createLexicalEmbedder({ dimensions: 64 });

async function chunk(
  id: string,
  documentKey: string,
  text: string,
  metadata: Record<string, unknown> = {},
  documentVersion = 'v1',
): Promise<ChunkWithVector> {
  const [vector] = await embedder.embed([text]);
  return {
    id,
    documentId: `doc-${documentKey}`,
    documentKey,
    documentVersion,
    ordinal: Number(id.replace(/\D/g, '') || 0),
    text,
    metadata,
    vector: vector as Float32Array,
  };
}

async function query(text: string) {
  return (await embedder.embed([text]))[0] as Float32Array;
}

/**
 * Behaviour every VectorStore adapter must have. `create(dimensions)` returns an empty store;
 * `reopen` (optional) opens the same store again as a new process would.
 */
export function vectorStoreContract(
  create: (dimensions: number) => Promise<{ store: VectorStore; reopen?: () => Promise<VectorStore> }>,
): void {
  const corpus = async () => [
    await chunk('c1', 'docs/cats.md', 'Cats purr and sleep in the sun.', { page: 1 }),
    await chunk('c2', 'docs/cats.md', 'A kitten chases a ball of yarn.', { page: 2 }),
    await chunk('c3', 'docs/dogs.md', 'Dogs bark at the mail carrier.', { page: 1 }),
    await chunk('c4', 'other/ships.md', 'Container ships cross the ocean.', { page: 1 }),
  ];

  test('vector search ranks the closest chunk first with a cosine score', async () => {
    const { store } = await create(64);
    await store.upsert(await corpus());
    expect(await store.count()).toBe(4);
    const hits = await store.search({ mode: 'vector', topK: 2, vector: await query('dogs bark loudly') });
    expect(hits[0]?.chunk).toMatchObject({
      id: 'c3',
      documentKey: 'docs/dogs.md',
      documentVersion: 'v1',
      metadata: { page: 1 },
    });
    expect(hits[0]?.score).toBeGreaterThan(hits[1]?.score ?? 1);
    expect(hits[0]?.score).toBeLessThanOrEqual(1.0001);
    await store.close();
  });

  test('full-text and hybrid search find the chunk that shares the words', async () => {
    const { store } = await create(64);
    await store.upsert(await corpus());
    const text = await store.search({ mode: 'fulltext', topK: 3, text: 'ocean ships' });
    expect(text[0]?.chunk.id).toBe('c4');
    const hybrid = await store.search({
      mode: 'hybrid',
      topK: 3,
      text: 'kitten yarn',
      vector: await query('kitten yarn'),
    });
    expect(hybrid[0]?.chunk.id).toBe('c2');
    await store.close();
  });

  test('filters by document key, key prefix and metadata apply to every mode', async () => {
    const { store } = await create(64);
    await store.upsert(await corpus());
    const vector = await query('cats dogs ships');
    for (const mode of ['vector', 'fulltext', 'hybrid'] as const) {
      const byPrefix = await store.search({
        mode,
        topK: 10,
        vector,
        text: 'cats dogs ships',
        filter: { keyPrefix: 'docs/' },
      });
      expect(byPrefix.every((hit) => hit.chunk.documentKey.startsWith('docs/'))).toBe(true);
      expect(byPrefix.length).toBeGreaterThan(0);
      const byKey = await store.search({
        mode,
        topK: 10,
        vector,
        text: 'cats dogs ships',
        filter: { documentKeys: ['other/ships.md'] },
      });
      expect(byKey.map((hit) => hit.chunk.id)).toEqual(['c4']);
      const byPage = await store.search({
        mode,
        topK: 10,
        vector,
        text: 'cats kitten',
        filter: { metadata: { page: 2 } },
      });
      expect(byPage.map((hit) => hit.chunk.id)).toEqual(['c2']);
    }
    await store.close();
  });

  test('deleting a document keeps the version asked for and removes the rest', async () => {
    const { store } = await create(64);
    await store.upsert(await corpus());
    await store.upsert([await chunk('c9', 'docs/cats.md', 'Cats now bark too.', {}, 'v2')]);
    expect(await store.deleteDocument('docs/cats.md', { exceptVersion: 'v2' })).toBe(2);
    const hits = await store.search({
      mode: 'vector',
      topK: 10,
      vector: await query('cats'),
      filter: { documentKeys: ['docs/cats.md'] },
    });
    expect(hits.map((hit) => hit.chunk.id)).toEqual(['c9']);
    expect(await store.deleteDocument('docs/cats.md')).toBe(1);
    expect(await store.count()).toBe(2);
    await store.close();
  });

  test('upserting an existing chunk id replaces it', async () => {
    const { store } = await create(64);
    await store.upsert([await chunk('c1', 'a.md', 'old text about apples')]);
    await store.upsert([await chunk('c1', 'a.md', 'new text about pears')]);
    expect(await store.count()).toBe(1);
    const hits = await store.search({ mode: 'fulltext', topK: 5, text: 'pears' });
    expect(hits.map((hit) => hit.chunk.text)).toEqual(['new text about pears']);
    await store.close();
  });

  test('chunks survive closing and reopening the store', async () => {
    const { store, reopen } = await create(64);
    if (!reopen) return;
    await store.upsert(await corpus());
    await store.close();
    const again = await reopen();
    expect(await again.count()).toBe(4);
    const hits = await again.search({
      mode: 'hybrid',
      topK: 1,
      vector: await query('mail carrier'),
      text: 'mail carrier',
    });
    expect(hits[0]?.chunk.id).toBe('c3');
    await again.close();
  });
}
