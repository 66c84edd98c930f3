import { randomBytes } from 'node:crypto';
import { describe } from 'vitest';
import { createMilvusVectorStore } from '../../src/knowledge/milvus.ts';
import { vectorStoreContract } from '../contract/vector-store.ts';

// No Milvus server can run on the development machines (no Docker, no package): this suite runs
// only where one is given, e.g. BERTHA_TEST_MILVUS_ADDRESS=127.0.0.1:19530 (Milvus 2.5+).
const address = process.env.BERTHA_TEST_MILVUS_ADDRESS;
if (!address)
  console.warn('skipping the Milvus contract suite: set BERTHA_TEST_MILVUS_ADDRESS to a Milvus 2.5+ server');

describe.skipIf(!address)('VectorStore contract on Milvus', () => {
  vectorStoreContract(async (dimensions) => {
    const options = {
      address: address as string,
      collection: `bertha_test_${randomBytes(4).toString('hex')}`,
      dimensions,
    };
    return { store: await createMilvusVectorStore(options), reopen: () => createMilvusVectorStore(options) };
  });
});
