import { createRequire } from 'node:module';
import * as lancedb from '@lancedb/lancedb';
import type { Logger } from '../core/logger.ts';
import { CHUNK_COLUMNS, type ChunkRow, chunkFromRow, rowFromChunk } from './chunk-row.ts';
import { ExactScanIndex } from './exact-scan.ts';
import {
  type ChunkWithVector,
  matchesFilter,
  type SearchFilter,
  type SearchHit,
  type SearchRequest,
  searchByMode,
  type VectorStore,
} from './vector-store.ts';

// LanceDB checks Arrow tables with `instanceof` against the CommonJS build of apache-arrow;
// the ESM copy is a different class and createTable rejects its tables (FACTS.md).
const require = createRequire(import.meta.url);
const arrow = require('apache-arrow') as typeof import('apache-arrow');

export interface LanceVectorStoreOptions {
  /** Folder of the LanceDB database. */
  path: string;
  dimensions: number;
  /** Table name; one per vector space, so changing the embedder never mixes vectors. */
  table: string;
  logger: Logger;
}

function schemaFor(dimensions: number) {
  return new arrow.Schema([
    new arrow.Field('id', new arrow.Utf8(), false),
    new arrow.Field('document_id', new arrow.Utf8(), false),
    new arrow.Field('document_key', new arrow.Utf8(), false),
    new arrow.Field('document_version', new arrow.Utf8(), false),
    new arrow.Field('ordinal', new arrow.Int32(), false),
    new arrow.Field('text', new arrow.Utf8(), false),
    new arrow.Field('metadata_json', new arrow.Utf8(), false),
    new arrow.Field(
      'vector',
      new arrow.FixedSizeList(dimensions, new arrow.Field('item', new arrow.Float32(), true)),
      false,
    ),
  ]);
}

function sqlString(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** The part of a filter LanceDB can apply in SQL; metadata equality is checked on the rows after. */
function whereFor(filter: SearchFilter | undefined): string | undefined {
  const clauses: string[] = [];
  if (filter?.documentKeys) clauses.push(`document_key IN (${filter.documentKeys.map(sqlString).join(', ') || "''"})`);
  if (filter?.keyPrefix) clauses.push(`starts_with(document_key, ${sqlString(filter.keyPrefix)})`);
  return clauses.length > 0 ? clauses.join(' AND ') : undefined;
}

interface LanceRow extends ChunkRow {
  vector?: { toArray(): Float32Array } | Float32Array;
}

/**
 * LanceDB, embedded: the durable copy of every chunk, its full-text (BM25) index, and SQL
 * filters. Vector search runs on an in-memory exact scan loaded from the table at open
 * (LanceDB's flat search re-reads the vector column per query; see docs/performance.md).
 */
export async function createLanceVectorStore(options: LanceVectorStoreOptions): Promise<VectorStore> {
  const { dimensions, logger } = options;
  const connection = await lancedb.connect(options.path);
  const names = await connection.tableNames();
  const table = names.includes(options.table)
    ? await connection.openTable(options.table)
    : await connection.createEmptyTable(options.table, schemaFor(dimensions));

  let scan = new ExactScanIndex(dimensions);
  async function loadScan(): Promise<ExactScanIndex> {
    const loaded = new ExactScanIndex(dimensions, Math.max(1024, await table.countRows()));
    for await (const batch of table.query().select([...CHUNK_COLUMNS, 'vector'])) {
      for (const row of batch.toArray() as unknown as LanceRow[]) {
        const vector = row.vector instanceof Float32Array ? row.vector : Float32Array.from(row.vector?.toArray() ?? []);
        loaded.set(chunkFromRow(row), vector);
      }
    }
    return loaded;
  }
  scan = await loadScan();
  let syncedVersion = await table.version();
  logger.info({ table: options.table, chunks: scan.size }, 'vector store loaded');

  let ftsReady = (await table.listIndices()).some((index) => index.columns.includes('text'));
  // LanceDB tables take one writer at a time; queue writes in this process.
  let writes: Promise<unknown> = Promise.resolve();
  function serialised<T>(work: () => Promise<T>): Promise<T> {
    const result = writes.then(work, work);
    writes = result.catch(() => undefined);
    return result;
  }

  // Another process (`bertha ingest`, a pipeline step in its own process) may write the table:
  // at most once a second, in the background, reload the in-memory scan when the version moved.
  let lastCheck = Date.now();
  let refreshing: Promise<void> | undefined;
  function refreshIfChanged() {
    if (refreshing || Date.now() - lastCheck < 1_000) return;
    lastCheck = Date.now();
    refreshing = serialised(async () => {
      await table.checkoutLatest();
      const version = await table.version();
      if (version === syncedVersion) return;
      scan = await loadScan();
      syncedVersion = version;
      ftsReady = (await table.listIndices()).some((index) => index.columns.includes('text'));
      logger.info({ table: options.table, chunks: scan.size, version }, 'vector store reloaded after an outside write');
    })
      .catch((error: unknown) => logger.error({ err: error }, 'vector store refresh failed'))
      .finally(() => {
        refreshing = undefined;
      });
  }

  async function ensureFullTextIndex() {
    if (ftsReady || scan.size === 0) return;
    await table.createIndex('text', { config: lancedb.Index.fts(), replace: true });
    ftsReady = true;
  }

  async function fullText(text: string, topK: number, filter: SearchFilter | undefined): Promise<SearchHit[]> {
    if (!ftsReady || !text.trim()) return [];
    const needsPostFilter = Boolean(filter?.metadata && Object.keys(filter.metadata).length > 0);
    let query = table
      .search(text, 'fts')
      .select(['id', '_score'])
      .limit(needsPostFilter ? topK * 10 : topK);
    const where = whereFor(filter);
    if (where) query = query.where(where);
    const rows = (await query.toArray()) as Array<{ id: string; _score: number }>;
    const hits: SearchHit[] = [];
    for (const row of rows) {
      const chunk = scan.get(row.id);
      if (chunk && matchesFilter(chunk, filter)) hits.push({ chunk, score: row._score });
    }
    return hits.slice(0, topK);
  }

  // A table filled by another writer (or an older Bertha) may lack the full-text index.
  await ensureFullTextIndex();

  return {
    kind: 'lancedb',
    dimensions,

    upsert(chunks: ChunkWithVector[]) {
      return serialised(async () => {
        if (chunks.length === 0) return;
        const ids = chunks.map((chunk) => sqlString(chunk.id)).join(', ');
        await table.delete(`id IN (${ids})`);
        // Plain rows: LanceDB converts them with the table's own schema (FixedSizeList<Float32> vectors).
        await table.add(chunks.map(rowFromChunk));
        for (const { vector, ...chunk } of chunks) scan.set(chunk, vector);
        await ensureFullTextIndex();
        syncedVersion = await table.version();
      });
    },

    deleteDocument(documentKey, deleteOptions = {}) {
      return serialised(async () => {
        const doomed: string[] = [];
        for (const chunk of scan.chunks()) {
          if (chunk.documentKey === documentKey && chunk.documentVersion !== deleteOptions.exceptVersion) {
            doomed.push(chunk.id);
          }
        }
        let predicate = `document_key = ${sqlString(documentKey)}`;
        if (deleteOptions.exceptVersion)
          predicate += ` AND document_version <> ${sqlString(deleteOptions.exceptVersion)}`;
        await table.delete(predicate);
        for (const id of doomed) scan.remove(id);
        syncedVersion = await table.version();
        return doomed.length;
      });
    },

    async search(request: SearchRequest) {
      request.signal?.throwIfAborted();
      refreshIfChanged();
      return searchByMode(request, (vector, topK, filter) => scan.search(vector, topK, filter), fullText);
    },

    async count() {
      return scan.size;
    },

    async close() {
      await refreshing;
      await writes;
      table.close();
      connection.close();
    },
  };
}
