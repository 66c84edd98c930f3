/** One chunk as the vector store holds it: enough to answer a query without the metadata DB. */
export interface ChunkRecord {
  id: string;
  documentId: string;
  documentKey: string;
  documentVersion: string;
  ordinal: number;
  text: string;
  metadata: Record<string, unknown>;
}

export interface ChunkWithVector extends ChunkRecord {
  vector: Float32Array;
}

/** Restricts a search. Every given condition must hold. */
export interface SearchFilter {
  documentKeys?: string[] | undefined;
  keyPrefix?: string | undefined;
  /** Loader metadata equality, e.g. `{ page: 3 }` or `{ heading: 'Install' }`. */
  metadata?: Record<string, string | number | boolean> | undefined;
}

export type SearchMode = 'vector' | 'fulltext' | 'hybrid';

export interface SearchRequest {
  mode: SearchMode;
  topK: number;
  /** Needed for vector and hybrid. */
  vector?: Float32Array | undefined;
  /** Needed for fulltext and hybrid. */
  text?: string | undefined;
  filter?: SearchFilter | undefined;
  signal?: AbortSignal | undefined;
}

export interface SearchHit {
  chunk: ChunkRecord;
  /**
   * Cosine similarity (vector); the store's full-text relevance (fulltext: BM25 on LanceDB and
   * Milvus, ts_rank_cd on PostgreSQL), comparable within one result list only; or the
   * reciprocal-rank-fusion score (hybrid).
   */
  score: number;
}

/** The vector store port (LanceDB embedded, PostgreSQL, Milvus). Vectors are L2-normalised; similarity is cosine. */
export interface VectorStore {
  readonly kind: string;
  readonly dimensions: number;
  upsert(chunks: ChunkWithVector[]): Promise<void>;
  /** Removes a document's chunks, all versions or all but `exceptVersion`. Returns how many went. */
  deleteDocument(documentKey: string, options?: { exceptVersion?: string }): Promise<number>;
  search(request: SearchRequest): Promise<SearchHit[]>;
  count(): Promise<number>;
  close(): Promise<void>;
}

/** Reciprocal rank fusion (Cormack et al. 2009): score = sum over lists of 1 / (k + rank). */
export function fuseByReciprocalRank(lists: SearchHit[][], topK: number, k = 60): SearchHit[] {
  const fused = new Map<string, SearchHit>();
  for (const list of lists) {
    list.forEach((hit, rank) => {
      const previous = fused.get(hit.chunk.id);
      const score = 1 / (k + rank + 1);
      fused.set(hit.chunk.id, { chunk: hit.chunk, score: (previous?.score ?? 0) + score });
    });
  }
  return [...fused.values()].sort((a, b) => b.score - a.score).slice(0, topK);
}

/**
 * A search request run on an exact vector scan and a full-text index, as the embedded and
 * PostgreSQL stores run it: hybrid asks both for a deeper list and fuses them by rank.
 */
export async function searchByMode(
  request: SearchRequest,
  byVector: (vector: Float32Array, topK: number, filter: SearchFilter | undefined) => SearchHit[],
  byText: (text: string, topK: number, filter: SearchFilter | undefined) => Promise<SearchHit[]>,
): Promise<SearchHit[]> {
  const { mode, topK, filter } = request;
  if (mode === 'vector') return request.vector ? byVector(request.vector, topK, filter) : [];
  if (mode === 'fulltext') return byText(request.text ?? '', topK, filter);
  const depth = Math.max(topK * 3, 20);
  const [vectorHits, textHits] = await Promise.all([
    request.vector ? byVector(request.vector, depth, filter) : [],
    byText(request.text ?? '', depth, filter),
  ]);
  return fuseByReciprocalRank([vectorHits, textHits], topK);
}

export function matchesFilter(chunk: ChunkRecord, filter: SearchFilter | undefined): boolean {
  if (!filter) return true;
  if (filter.documentKeys && !filter.documentKeys.includes(chunk.documentKey)) return false;
  if (filter.keyPrefix && !chunk.documentKey.startsWith(filter.keyPrefix)) return false;
  if (filter.metadata) {
    for (const [name, value] of Object.entries(filter.metadata)) {
      if (chunk.metadata[name] !== value) return false;
    }
  }
  return true;
}

export function hasFilter(filter: SearchFilter | undefined): boolean {
  return Boolean(
    filter && (filter.documentKeys || filter.keyPrefix || (filter.metadata && Object.keys(filter.metadata).length > 0)),
  );
}

/**
 * A store usable before it has opened: calls wait for `opening`. Lets the server listen while
 * LanceDB loads (seconds for a large table); readiness reports when it is done.
 */
export function deferredVectorStore(opening: Promise<VectorStore>, kind: string, dimensions: number): VectorStore {
  // Rejections surface on every call; this keeps an early failure from being unhandled.
  opening.catch(() => undefined);
  return {
    kind,
    dimensions,
    upsert: async (chunks) => (await opening).upsert(chunks),
    deleteDocument: async (documentKey, options) => (await opening).deleteDocument(documentKey, options),
    search: async (request) => (await opening).search(request),
    count: async () => (await opening).count(),
    close: async () => {
      const store = await opening.catch(() => undefined);
      await store?.close();
    },
  };
}
