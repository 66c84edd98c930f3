import path from 'node:path';
import { onTestFinished } from 'vitest';
import type { Logger } from '../../src/core/logger.ts';
import type { MetadataDb } from '../../src/db/index.ts';
import type { KnowledgeDeps } from '../../src/knowledge/index.ts';
import { createLanceVectorStore } from '../../src/knowledge/lancedb.ts';
import { createLexicalEmbedder } from '../../src/knowledge/lexical-embedder.ts';
import { createFsObjectStore } from '../../src/objects/fs.ts';

/**
 * Knowledge-base dependencies as the embedded default wires them (folder objects, LanceDB,
 * the lexical embedder) in `dir`, with small chunks so a short document gives several.
 */
export async function embeddedKnowledge(db: MetadataDb, dir: string, logger: Logger): Promise<KnowledgeDeps> {
  const vectors = await createLanceVectorStore({
    path: path.join(dir, 'vectors'),
    dimensions: 256,
    table: 'chunks',
    logger,
  });
  onTestFinished(() => vectors.close());
  return {
    db,
    objects: createFsObjectStore({ root: path.join(dir, 'objects') }),
    embedder: createLexicalEmbedder({ dimensions: 256 }),
    vectors,
    split: { chunkSize: 200, chunkOverlap: 40 },
    batchSize: 8,
    logger,
  };
}
