import path from 'node:path';
import { describe, expect, onTestFinished, test } from 'vitest';
import { createLogger } from '../../src/core/logger.ts';
import { createLanceVectorStore } from '../../src/knowledge/lancedb.ts';
import { createLexicalEmbedder } from '../../src/knowledge/lexical-embedder.ts';
import { vectorStoreContract } from '../contract/vector-store.ts';
import { tempDir } from '../helpers/temp.ts';

describe('VectorStore contract on LanceDB', () => {
  vectorStoreContract(async (dimensions) => {
    const options = {
      path: path.join(tempDir(), 'vectors'),
      dimensions,
      table: 'chunks',
      logger: createLogger('silent'),
    };
    return { store: await createLanceVectorStore(options), reopen: () => createLanceVectorStore(options) };
  });
});

test('a store sees chunks another process wrote to the same table', async () => {
  const options = {
    path: path.join(tempDir(), 'vectors'),
    dimensions: 32,
    table: 'chunks',
    logger: createLogger('silent'),
  };
  const reader = await createLanceVectorStore(options);
  const writer = await createLanceVectorStore(options);
  onTestFinished(async () => {
    await reader.close();
    await writer.close();
  });
  const [vector] = await createLexicalEmbedder({ dimensions: 32 }).embed(['written elsewhere']);
  await writer.upsert([
    {
      id: 'x1',
      documentId: 'd',
      documentKey: 'k.md',
      documentVersion: 'v',
      ordinal: 0,
      text: 'written elsewhere',
      metadata: {},
      vector: vector as Float32Array,
    },
  ]);
  const deadline = Date.now() + 15_000;
  let hits = await reader.search({ mode: 'vector', topK: 1, vector });
  while (hits.length === 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    hits = await reader.search({ mode: 'vector', topK: 1, vector });
  }
  expect(hits.map((hit) => hit.chunk.id)).toEqual(['x1']);
});
