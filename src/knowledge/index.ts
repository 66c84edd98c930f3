export type { RetrievedChunk, Retriever } from './retriever.ts';
