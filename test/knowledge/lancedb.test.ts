import path from 'node:path';
import { describe } from 'vitest';
import { createLogger } from '../../src/core/logger.ts';
import { createLanceVectorStore } from '../../src/knowledge/lancedb.ts';
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
