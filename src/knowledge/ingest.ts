import { createHash } from 'node:crypto';
import type { Logger } from '../core/logger.ts';
import type { MetadataDb } from '../db/index.ts';
import { type ObjectStore, readObject } from '../objects/index.ts';
import { createDocumentStore } from './documents.ts';
import type { Embedder } from './embedder.ts';
import { DocumentLoadError } from './errors.ts';
import { type DocumentSection, loadText } from './loaders.ts';
import { type SplitOptions, splitSections } from './splitter.ts';
import type { VectorStore } from './vector-store.ts';

/** What the ingestion steps need; the pipeline runner and `bertha ingest` build it from the Bertha object. */
export interface KnowledgeDeps {
  db: MetadataDb;
  objects: ObjectStore;
  embedder: Embedder;
  vectors: VectorStore;
  split: SplitOptions;
  /** Texts per embed call. */
  batchSize: number;
  logger: Logger;
  signal?: AbortSignal | undefined;
}

/**
 * Step outcomes. `unchanged`: this content version is already ingested (nothing to do);
 * `failed`: the document could not be read (recorded on the document; in the pipeline the
 * load-document step then fails with that reason);
 * `missing`: the object no longer exists (its chunks are removed).
 */
export type StepStatus = 'loaded' | 'vectorized' | 'ingested' | 'unchanged' | 'failed' | 'missing' | 'superseded';

/** Output of `loadDocument`, input of `createVectors`. JSON-serializable (a pipeline artifact). */
export interface LoadedDocument {
  key: string;
  documentId: string | null;
  version: string | null;
  status: Extract<StepStatus, 'loaded' | 'unchanged' | 'failed' | 'missing'>;
  error?: string;
  format?: string;
  sections: DocumentSection[];
  metadata: Record<string, string | number>;
}

export interface VectorizedChunk {
  id: string;
  ordinal: number;
  text: string;
  metadata: Record<string, string | number>;
  vector: number[];
}

/** Output of `createVectors`, input of `ingestVectors`. JSON-serializable. */
export interface VectorizedDocument {
  key: string;
  documentId: string | null;
  version: string | null;
  status: Extract<StepStatus, 'vectorized' | 'unchanged' | 'failed' | 'missing'>;
  error?: string;
  format?: string;
  metadata: Record<string, string | number>;
  embedder: string;
  chunks: VectorizedChunk[];
}

export interface IngestResult {
  key: string;
  documentId: string | null;
  version: string | null;
  status: Extract<StepStatus, 'ingested' | 'unchanged' | 'failed' | 'missing' | 'superseded'>;
  error?: string;
  chunkCount: number;
}

export interface RemoveResult {
  key: string;
  removed: boolean;
  chunksRemoved: number;
  /** True when the object exists again, so the removal event was stale and nothing was removed. */
  stillExists: boolean;
}

const CONTENT_TYPES: Record<string, string> = {
  pdf: 'application/pdf',
  markdown: 'text/markdown',
  html: 'text/html',
  text: 'text/plain',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
};

function sha256(bytes: Buffer | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Step 1 (load-document): reads the object, hashes it, and turns it into sections of text. */
export async function loadDocument(deps: KnowledgeDeps, input: { key: string }): Promise<LoadedDocument> {
  const { key } = input;
  const documents = createDocumentStore(deps.db);
  const log = deps.logger.child({ component: 'knowledge', key });
  deps.signal?.throwIfAborted();
  const info = await deps.objects.head(key);
  if (!info) {
    const existing = await documents.byKey(key);
    return { key, documentId: existing?.id ?? null, version: null, status: 'missing', sections: [], metadata: {} };
  }
  const bytes = await readObject(deps.objects, key);
  const version = sha256(bytes);
  const existing = await documents.byKey(key);
  if (existing?.version === version && existing.status === 'ingested') {
    log.debug({ version }, 'document unchanged');
    return { key, documentId: existing.id, version, status: 'unchanged', sections: [], metadata: {} };
  }
  const document = await documents.beginVersion(key, version, bytes.length);
  try {
    const loaded = await loadText(key, bytes);
    return {
      key,
      documentId: document.id,
      version,
      status: 'loaded',
      format: loaded.format,
      sections: loaded.sections,
      metadata: loaded.metadata,
    };
  } catch (error) {
    if (!(error instanceof DocumentLoadError)) throw error;
    await documents.markFailed(key, version, error.message);
    log.warn({ version, err: error.message }, 'document failed to load');
    return {
      key,
      documentId: document.id,
      version,
      status: 'failed',
      error: error.message,
      sections: [],
      metadata: {},
    };
  }
}

/** A stable id per (document, version, position): a retried step rewrites the same chunks. */
function chunkId(documentId: string, version: string, ordinal: number): string {
  return `chk_${sha256(`${documentId}\n${version}\n${ordinal}`).slice(0, 26)}`;
}

/** Step 2 (create-vectors): splits the sections into chunks and embeds them. */
export async function createVectors(deps: KnowledgeDeps, loaded: LoadedDocument): Promise<VectorizedDocument> {
  const base = {
    key: loaded.key,
    documentId: loaded.documentId,
    version: loaded.version,
    ...(loaded.format ? { format: loaded.format } : {}),
    metadata: loaded.metadata,
    embedder: deps.embedder.id,
  };
  if (loaded.status !== 'loaded') {
    return { ...base, status: loaded.status, ...(loaded.error ? { error: loaded.error } : {}), chunks: [] };
  }
  if (!loaded.documentId || !loaded.version) throw new Error(`loaded document '${loaded.key}' has no id or version`);
  const pieces = splitSections(loaded.sections, deps.split);
  const chunks: VectorizedChunk[] = [];
  try {
    for (let start = 0; start < pieces.length; start += deps.batchSize) {
      const batch = pieces.slice(start, start + deps.batchSize);
      const vectors = await deps.embedder.embed(
        batch.map((piece) => piece.text),
        deps.signal,
      );
      batch.forEach((piece, i) => {
        const ordinal = start + i;
        chunks.push({
          id: chunkId(loaded.documentId as string, loaded.version as string, ordinal),
          ordinal,
          text: piece.text,
          metadata: piece.metadata,
          vector: Array.from(vectors[i] as Float32Array),
        });
      });
    }
  } catch (error) {
    // The embedder is down or misconfigured: record it on the document, and fail the step so the runner retries.
    await createDocumentStore(deps.db).markFailed(
      loaded.key,
      loaded.version,
      `embedding failed: ${(error as Error).message}`,
    );
    throw error;
  }
  return { ...base, status: 'vectorized', chunks };
}

/** Step 3 (ingest-vectors): replaces the document's chunks in the vector store and the metadata DB. */
export async function ingestVectors(deps: KnowledgeDeps, vectorized: VectorizedDocument): Promise<IngestResult> {
  const base = { key: vectorized.key, documentId: vectorized.documentId, version: vectorized.version };
  if (vectorized.status === 'missing') {
    await removeDocument(deps, { key: vectorized.key });
    return { ...base, status: 'missing', chunkCount: 0 };
  }
  if (vectorized.status !== 'vectorized') {
    return {
      ...base,
      status: vectorized.status,
      ...(vectorized.error ? { error: vectorized.error } : {}),
      chunkCount: 0,
    };
  }
  if (!vectorized.documentId || !vectorized.version) {
    throw new Error(`vectorized document '${vectorized.key}' has no id or version`);
  }
  const documents = createDocumentStore(deps.db);
  const current = await documents.byKey(vectorized.key);
  if (current?.version !== vectorized.version) return { ...base, status: 'superseded', chunkCount: 0 };
  deps.signal?.throwIfAborted();
  const { documentId, version } = vectorized;
  let replaced: boolean;
  try {
    await deps.vectors.upsert(
      vectorized.chunks.map((chunk) => ({
        id: chunk.id,
        documentId,
        documentKey: vectorized.key,
        documentVersion: version,
        ordinal: chunk.ordinal,
        text: chunk.text,
        metadata: chunk.metadata,
        vector: Float32Array.from(chunk.vector),
      })),
    );
    // New chunks are in before the old version's go, so retrieval never sees the document empty.
    await deps.vectors.deleteDocument(vectorized.key, { exceptVersion: version });
    replaced = await documents.replaceChunks(
      documentId,
      version,
      {
        contentType: CONTENT_TYPES[vectorized.format ?? ''] ?? 'application/octet-stream',
        metadata: vectorized.metadata,
      },
      vectorized.chunks.map(({ vector: _vector, ...chunk }) => chunk),
    );
  } catch (error) {
    // As for the embedder: the document says what failed, and the step throws so the runner retries.
    await documents.markFailed(vectorized.key, version, `storing chunks failed: ${(error as Error).message}`);
    throw error;
  }
  if (!replaced) return { ...base, status: 'superseded', chunkCount: 0 };
  deps.logger
    .child({ component: 'knowledge' })
    .info({ key: vectorized.key, version, chunks: vectorized.chunks.length }, 'document ingested');
  return { ...base, status: 'ingested', chunkCount: vectorized.chunks.length };
}

/** Removes a deleted object's chunks, unless the object exists again (a stale removal event). */
export async function removeDocument(deps: KnowledgeDeps, input: { key: string }): Promise<RemoveResult> {
  const { key } = input;
  if (await deps.objects.head(key)) return { key, removed: false, chunksRemoved: 0, stillExists: true };
  const chunksRemoved = await deps.vectors.deleteDocument(key);
  const removed = await createDocumentStore(deps.db).remove(key);
  deps.logger.child({ component: 'knowledge' }).info({ key, chunksRemoved }, 'document removed');
  return { key, removed: removed !== undefined, chunksRemoved, stillExists: false };
}

/** The three steps in one process, without a pipeline run (tests). */
export async function ingestObject(deps: KnowledgeDeps, key: string): Promise<IngestResult> {
  const loaded = await loadDocument(deps, { key });
  const vectorized = await createVectors(deps, loaded);
  return ingestVectors(deps, vectorized);
}
