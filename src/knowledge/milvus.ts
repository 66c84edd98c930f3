import { DataType, FunctionType, MilvusClient } from '@zilliz/milvus2-sdk-node';
import { CHUNK_COLUMNS, type ChunkRow, chunkFromRow, rowFromChunk } from './chunk-row.ts';
import {
  type ChunkWithVector,
  fuseByReciprocalRank,
  matchesFilter,
  type SearchFilter,
  type SearchHit,
  type SearchRequest,
  type VectorStore,
} from './vector-store.ts';

export interface MilvusVectorStoreOptions {
  /** `host:port` of Milvus 2.5+ (full-text search needs its BM25 function). */
  address: string;
  token?: string | undefined;
  username?: string | undefined;
  password?: string | undefined;
  database?: string | undefined;
  collection: string;
  dimensions: number;
}

function literal(value: string): string {
  return JSON.stringify(value);
}

/** Milvus boolean expression for the key conditions; metadata equality is checked on the rows after. */
function exprFor(filter: SearchFilter | undefined): string {
  const clauses: string[] = [];
  if (filter?.documentKeys) clauses.push(`document_key in [${filter.documentKeys.map(literal).join(', ')}]`);
  if (filter?.keyPrefix) clauses.push(`document_key like ${literal(`${filter.keyPrefix.replace(/[%_]/g, '\\$&')}%`)}`);
  return clauses.join(' and ');
}

interface MilvusRow extends ChunkRow {
  score?: number;
}

/**
 * Milvus, the seed's knowledge base: dense vectors (IP on unit vectors = cosine, HNSW) plus a
 * BM25 sparse field that Milvus fills from `text` itself, so full-text and hybrid search
 * (fused client-side with the same RRF as LanceDB) behave like the embedded store.
 */
export async function createMilvusVectorStore(options: MilvusVectorStoreOptions): Promise<VectorStore> {
  const client = new MilvusClient({
    address: options.address,
    ...(options.token ? { token: options.token } : {}),
    ...(options.username ? { username: options.username, password: options.password ?? '' } : {}),
    ...(options.database ? { database: options.database } : {}),
  });
  const collection_name = options.collection;
  const exists = await client.hasCollection({ collection_name });
  if (!exists.value) {
    await client.createCollection({
      collection_name,
      // Read-your-writes: an ingested document is searchable as soon as the step returns.
      consistency_level: 'Strong',
      fields: [
        { name: 'id', data_type: DataType.VarChar, is_primary_key: true, max_length: 64 },
        { name: 'document_id', data_type: DataType.VarChar, max_length: 64 },
        { name: 'document_key', data_type: DataType.VarChar, max_length: 1024 },
        { name: 'document_version', data_type: DataType.VarChar, max_length: 64 },
        { name: 'ordinal', data_type: DataType.Int64 },
        { name: 'text', data_type: DataType.VarChar, max_length: 65535, enable_analyzer: true },
        { name: 'metadata_json', data_type: DataType.VarChar, max_length: 65535 },
        { name: 'vector', data_type: DataType.FloatVector, dim: options.dimensions },
        { name: 'sparse', data_type: DataType.SparseFloatVector },
      ],
      functions: [
        {
          name: 'text_bm25',
          type: FunctionType.BM25,
          input_field_names: ['text'],
          output_field_names: ['sparse'],
          params: {},
        },
      ],
      index_params: [
        { field_name: 'vector', index_type: 'HNSW', metric_type: 'IP', params: { M: 16, efConstruction: 200 } },
        { field_name: 'sparse', index_type: 'SPARSE_INVERTED_INDEX', metric_type: 'BM25' },
      ],
    });
  }
  await client.loadCollectionSync({ collection_name });

  async function search(
    field: 'vector' | 'sparse',
    data: Float32Array | string,
    limit: number,
    filter: SearchFilter | undefined,
  ) {
    const needsPostFilter = Boolean(filter?.metadata && Object.keys(filter.metadata).length > 0);
    const expr = exprFor(filter);
    const response = await client.search({
      collection_name,
      anns_field: field,
      data: typeof data === 'string' ? data : Array.from(data),
      limit: needsPostFilter ? limit * 10 : limit,
      output_fields: [...CHUNK_COLUMNS],
      ...(expr ? { filter: expr } : {}),
      ...(field === 'vector' ? { params: { ef: Math.max(64, limit * 4) } } : {}),
    });
    const hits: SearchHit[] = [];
    for (const row of response.results as unknown as MilvusRow[]) {
      const chunk = chunkFromRow(row);
      if (matchesFilter(chunk, filter)) hits.push({ chunk, score: Number(row.score) });
    }
    return hits.slice(0, limit);
  }

  async function idsOf(expr: string): Promise<string[]> {
    const response = await client.query({ collection_name, filter: expr, output_fields: ['id'], limit: 16_384 });
    return (response.data as Array<{ id: string }>).map((row) => row.id);
  }

  return {
    kind: 'milvus',
    dimensions: options.dimensions,

    async upsert(chunks: ChunkWithVector[]) {
      if (chunks.length === 0) return;
      await client.upsert({
        collection_name,
        data: chunks.map(rowFromChunk),
      });
    },

    async deleteDocument(documentKey, deleteOptions = {}) {
      let expr = `document_key == ${literal(documentKey)}`;
      if (deleteOptions.exceptVersion) expr += ` and document_version != ${literal(deleteOptions.exceptVersion)}`;
      const ids = await idsOf(expr);
      if (ids.length > 0) await client.delete({ collection_name, filter: expr });
      return ids.length;
    },

    async search(request: SearchRequest) {
      request.signal?.throwIfAborted();
      const { mode, topK, filter } = request;
      if (mode === 'vector') return request.vector ? search('vector', request.vector, topK, filter) : [];
      if (mode === 'fulltext') return request.text?.trim() ? search('sparse', request.text, topK, filter) : [];
      const depth = Math.max(topK * 3, 20);
      const [byVector, byText] = await Promise.all([
        request.vector ? search('vector', request.vector, depth, filter) : [],
        request.text?.trim() ? search('sparse', request.text, depth, filter) : [],
      ]);
      return fuseByReciprocalRank([byVector, byText], topK);
    },

    async count() {
      const stats = await client.query({ collection_name, filter: '', output_fields: ['count(*)'] });
      return Number((stats.data[0] as Record<string, unknown> | undefined)?.['count(*)'] ?? 0);
    },

    async close() {
      await client.closeConnection();
    },
  };
}
