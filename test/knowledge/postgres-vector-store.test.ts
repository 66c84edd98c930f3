import pg from 'pg';
import { afterAll, describe, expect, onTestFinished, test } from 'vitest';
import { openVectorStore } from '../../src/adapters.ts';
import { loadConfig } from '../../src/config/index.ts';
import { createLogger, type Logger } from '../../src/core/logger.ts';
import type { ChunkWithVector, VectorStore } from '../../src/knowledge/index.ts';
import { createLexicalEmbedder } from '../../src/knowledge/lexical-embedder.ts';
import { createPostgresVectorStore } from '../../src/knowledge/postgres-vector-store.ts';
import { vectorTable } from '../../src/knowledge/postgres-vector-table.ts';
import { vectorStoreContract } from '../contract/vector-store.ts';
import { dropSchema, freshSchemaName, POSTGRES_TEST_URL, postgresAvailable } from '../helpers/postgres.ts';
import { waitFor } from '../helpers/processes.ts';
import { tempDir } from '../helpers/temp.ts';

const available = await postgresAvailable();
const schema = freshSchemaName();
afterAll(async () => {
  if (available) await dropSchema(schema);
});

let tables = 0;
function storeOptions(overrides: { table?: string; dimensions?: number; language?: string; logger?: Logger } = {}) {
  return {
    url: POSTGRES_TEST_URL,
    schema,
    table: overrides.table ?? `chunks_${++tables}`,
    dimensions: overrides.dimensions ?? 32,
    language: overrides.language ?? 'simple',
    poolSize: 3,
    logger: overrides.logger ?? createLogger('silent'),
  };
}

async function open(options: ReturnType<typeof storeOptions>): Promise<VectorStore> {
  const store = await createPostgresVectorStore(options);
  onTestFinished(() => store.close());
  return store;
}

const embedder = createLexicalEmbedder({ dimensions: 32 });

async function chunk(id: string, documentKey: string, text: string, documentVersion = 'v1'): Promise<ChunkWithVector> {
  const [vector] = await embedder.embed([text]);
  return {
    id,
    documentId: 'd',
    documentKey,
    documentVersion,
    ordinal: 0,
    text,
    metadata: {},
    vector: vector as Float32Array,
  };
}

async function vectorHits(store: VectorStore, text: string): Promise<string[]> {
  const [vector] = await embedder.embed([text]);
  const hits = await store.search({ mode: 'vector', topK: 10, vector });
  return hits.map((hit) => hit.chunk.id);
}

describe.skipIf(!available)('VectorStore contract on PostgreSQL', () => {
  vectorStoreContract(async (dimensions) => {
    const options = storeOptions({ dimensions });
    return { store: await createPostgresVectorStore(options), reopen: () => createPostgresVectorStore(options) };
  });
});

describe.skipIf(!available)('PostgreSQL vector store shared by replicas', () => {
  test('a chunk upserted through one replica is found through the other, and its deletion is seen there too', async () => {
    const options = storeOptions();
    const first = await open(options);
    const second = await open(options);
    await first.upsert([await chunk('a1', 'docs/apples.md', 'apples grow on trees')]);
    await waitFor(async () => ((await vectorHits(second, 'apples grow')).includes('a1') ? true : undefined), {
      timeoutMs: 15_000,
      what: 'the other replica to find the chunk',
    });
    expect(await second.count()).toBe(1);

    await second.upsert([await chunk('a2', 'docs/apples.md', 'apples are red or green', 'v2')]);
    expect(await second.deleteDocument('docs/apples.md', { exceptVersion: 'v2' })).toBe(1);
    await waitFor(
      async () => {
        const ids = await vectorHits(first, 'apples');
        return ids.includes('a2') && !ids.includes('a1') ? true : undefined;
      },
      { timeoutMs: 15_000, what: 'the first replica to see the new version and not the old' },
    );
    expect(await first.count()).toBe(1);
  });

  test('a replica whose listening connection was cut catches up on the writes it missed', async () => {
    const lines: string[] = [];
    const options = storeOptions();
    const writer = await open(options);
    const reader = await open({ ...options, logger: createLogger('info', { write: (line) => lines.push(line) }) });
    await writer.upsert([await chunk('b1', 'docs/boats.md', 'boats float on water')]);

    const admin = new pg.Client({ connectionString: POSTGRES_TEST_URL });
    await admin.connect();
    onTestFinished(() => admin.end());
    const { rowCount } = await admin.query(
      `select pg_terminate_backend(pid) from pg_stat_activity
       where application_name = 'bertha-vector-store' and query = $1`,
      [`listen ${vectorTable(schema, options.table).channel}`],
    );
    expect(rowCount).toBe(2);
    await writer.upsert([await chunk('b2', 'docs/bikes.md', 'bikes roll on roads')]);
    await writer.deleteDocument('docs/boats.md');

    await waitFor(async () => (lines.some((line) => line.includes('listening again')) ? true : undefined), {
      timeoutMs: 15_000,
      what: 'the reader to listen again',
    });
    await waitFor(async () => ((await vectorHits(reader, 'bikes boats')).join() === 'b2' ? true : undefined), {
      timeoutMs: 15_000,
      what: 'the reader to hold only the bike chunk',
    });
  });

  test('thousands of chunks, more than one page of rows, load whole and reach the other replica whole', async () => {
    const options = storeOptions();
    const first = await open(options);
    const second = await open(options);
    const many = Array.from({ length: 2_500 }, (_, i) => ({
      id: `m${i}`,
      documentId: 'd',
      documentKey: `docs/${i % 10}.md`,
      documentVersion: 'v1',
      ordinal: i,
      text: `chunk ${i}`,
      metadata: {},
      vector: new Float32Array(32).fill(1 / Math.sqrt(32)),
    }));
    await first.upsert(many);
    await waitFor(async () => ((await second.count()) === 2_500 ? true : undefined), {
      timeoutMs: 15_000,
      what: 'the other replica to hold every chunk',
    });
    await first.deleteDocument('docs/0.md');
    const third = await open(options);
    expect(await third.count()).toBe(2_250);
    await waitFor(async () => ((await second.count()) === 2_250 ? true : undefined), {
      timeoutMs: 15_000,
      what: 'the other replica to drop the deleted document',
    });
  });

  test('full-text search reads the table, so it sees another replica at once', async () => {
    const options = storeOptions();
    const first = await open(options);
    const second = await open(options);
    await first.upsert([await chunk('c1', 'docs/cars.md', 'cars need fuel')]);
    const hits = await second.search({ mode: 'fulltext', topK: 5, text: 'fuel' });
    expect(hits.map((hit) => hit.chunk.id)).toEqual(['c1']);
  });
});

describe.skipIf(!available)('PostgreSQL vector store table', () => {
  test('a new text search configuration rebuilds the full-text column', async () => {
    const options = storeOptions();
    const simple = await createPostgresVectorStore(options);
    await simple.upsert([await chunk('s1', 'docs/ships.md', 'Container ships cross the ocean.')]);
    expect(await simple.search({ mode: 'fulltext', topK: 5, text: 'ship' })).toEqual([]);
    await simple.close();

    const english = await open({ ...options, language: 'english' });
    const hits = await english.search({ mode: 'fulltext', topK: 5, text: 'ship' });
    expect(hits.map((hit) => hit.chunk.id)).toEqual(['s1']);
  });

  test('opening a table of other dimensions fails with a stable code', async () => {
    const options = storeOptions();
    const store = await createPostgresVectorStore(options);
    await store.upsert([await chunk('d1', 'docs/d.md', 'some text')]);
    await store.close();
    await expect(createPostgresVectorStore({ ...options, dimensions: 64 })).rejects.toMatchObject({
      code: 'vector_dimensions_mismatch',
    });
    const again = await open(options);
    await expect(
      again.upsert([{ ...(await chunk('d2', 'docs/d.md', 'more')), vector: new Float32Array(8) }]),
    ).rejects.toMatchObject({
      code: 'vector_dimensions_mismatch',
    });
  });

  test('a vector-space name longer than PostgreSQL identifiers still gets tables of its own', async () => {
    const long = `chunks_${'x'.repeat(70)}`;
    const first = await open(storeOptions({ table: `${long}_a` }));
    const second = await open(storeOptions({ table: `${long}_b` }));
    await first.upsert([await chunk('e1', 'docs/e.md', 'eels swim')]);
    expect(await first.count()).toBe(1);
    expect(await second.count()).toBe(0);
  });
});

describe.skipIf(!available)('vectorStore: postgres in the config', () => {
  test("it reuses the metadata database's URL and schema, with a table per vector space", async () => {
    const { config } = loadConfig(
      {},
      {
        BERTHA_DATABASE_DRIVER: 'postgres',
        BERTHA_DATABASE_URL: POSTGRES_TEST_URL,
        BERTHA_DATABASE_SCHEMA: schema,
        BERTHA_KNOWLEDGE_VECTOR_STORE: 'postgres',
      },
      tempDir(),
    );
    const store = await openVectorStore(config, embedder, createLogger('silent'));
    onTestFinished(() => store.close());
    expect(store.kind).toBe('postgres');
    const client = new pg.Client({ connectionString: POSTGRES_TEST_URL });
    await client.connect();
    onTestFinished(() => client.end());
    const { rows } = await client.query('select to_regclass($1) as found', [`${schema}.vector_chunks_lexical_32`]);
    expect(rows[0]?.found).not.toBeNull();
  });
});

describe('vectorStore: postgres without PostgreSQL metadata', () => {
  test('without a URL it is a config error that names the setting', async () => {
    const { config } = loadConfig({}, { BERTHA_KNOWLEDGE_VECTOR_STORE: 'postgres' }, tempDir());
    await expect(openVectorStore(config, embedder, createLogger('silent'))).rejects.toMatchObject({
      code: 'config_invalid',
      message: expect.stringContaining('knowledge.postgres.url'),
    });
  });
});
