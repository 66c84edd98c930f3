/** A passage the chat service may put in the prompt, with where it came from. */
export interface RetrievedChunk {
  chunkId: string;
  documentId: string;
  /** The object key the document was ingested from. */
  documentKey: string;
  /** Content hash of the document version the chunk was cut from. */
  documentVersion: string;
  text: string;
  /** Higher is more relevant; comparable within one result list. */
  score: number;
  /** Page, section heading and similar loader metadata. */
  metadata: Record<string, unknown>;
}

/** The port the chat service retrieves through. */
export interface Retriever {
  retrieve(query: string, options: { topK: number; signal?: AbortSignal }): Promise<RetrievedChunk[]>;
}
