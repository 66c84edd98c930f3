export { createDocumentStore, type DocumentRecord, type DocumentStatus, type DocumentStore } from './documents.ts';
export { type Embedder, l2Normalise } from './embedder.ts';
export {
  DocumentLoadError,
  DocumentNotLoadedError,
  EmbedderError,
  EmptyDocumentError,
  UnsupportedDocumentError,
} from './errors.ts';
export {
  ACCEPTED_EXTENSIONS,
  ACCEPTED_FORMATS,
  type DocumentFormat,
  documentFormat,
  ingestRefusal,
} from './formats.ts';
export {
  createVectors,
  type IngestResult,
  ingestObject,
  ingestVectors,
  type KnowledgeDeps,
  type LoadedDocument,
  loadDocument,
  type RemoveResult,
  removeDocument,
  type VectorizedDocument,
} from './ingest.ts';
export type { RetrievedChunk, Retriever } from './retriever.ts';
export { createKnowledgeRetriever, type KnowledgeSearch, searchKnowledge } from './search.ts';
export type {
  ChunkRecord,
  ChunkWithVector,
  SearchFilter,
  SearchHit,
  SearchMode,
  SearchRequest,
  VectorStore,
} from './vector-store.ts';
export { deferredVectorStore } from './vector-store.ts';
