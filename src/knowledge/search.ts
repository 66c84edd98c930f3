import type { Embedder } from './embedder.ts';
import type { RetrievedChunk, Retriever } from './retriever.ts';
import type { SearchFilter, SearchHit, SearchMode, VectorStore } from './vector-store.ts';

export interface KnowledgeSearch {
  query: string;
  topK: number;
  mode: SearchMode;
  filter?: SearchFilter | undefined;
  signal?: AbortSignal | undefined;
}

function retrievedFrom(hit: SearchHit): RetrievedChunk {
  return {
    chunkId: hit.chunk.id,
    documentId: hit.chunk.documentId,
    documentKey: hit.chunk.documentKey,
    documentVersion: hit.chunk.documentVersion,
    text: hit.chunk.text,
    score: hit.score,
    metadata: hit.chunk.metadata,
  };
}

/** Embeds the query (when the mode needs a vector) and searches the store. */
export async function searchKnowledge(
  deps: { embedder: Embedder; vectors: VectorStore },
  search: KnowledgeSearch,
): Promise<RetrievedChunk[]> {
  const vector = search.mode === 'fulltext' ? undefined : (await deps.embedder.embed([search.query], search.signal))[0];
  const hits = await deps.vectors.search({
    mode: search.mode,
    topK: search.topK,
    vector,
    text: search.query,
    filter: search.filter,
    signal: search.signal,
  });
  return hits.map(retrievedFrom);
}

/** The Retriever the chat service consumes: the configured search mode over the whole knowledge base. */
export function createKnowledgeRetriever(deps: {
  embedder: Embedder;
  vectors: VectorStore;
  mode: SearchMode;
}): Retriever {
  return {
    retrieve(query, options) {
      return searchKnowledge(deps, { query, topK: options.topK, mode: deps.mode, signal: options.signal });
    },
  };
}
