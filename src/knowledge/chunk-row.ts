import type { ChunkRecord, ChunkWithVector } from './vector-store.ts';

/**
 * A chunk as the vector-store adapters (LanceDB, Milvus) keep it: flat snake_case columns,
 * loader metadata as JSON text. Each adapter declares the column types in its own schema.
 * Type aliases, not interfaces: both clients take rows as string-keyed records, which an
 * interface is not assignable to.
 */
export type ChunkRow = {
  id: string;
  document_id: string;
  document_key: string;
  document_version: string;
  ordinal: number;
  text: string;
  metadata_json: string;
};

/** A row as written: the chunk's columns and its vector as a plain array of numbers. */
export type ChunkRowWithVector = ChunkRow & { vector: number[] };

/** Every column of a chunk row but the vector: what a search reads back. */
export const CHUNK_COLUMNS: readonly (keyof ChunkRow)[] = [
  'id',
  'document_id',
  'document_key',
  'document_version',
  'ordinal',
  'text',
  'metadata_json',
];

export function chunkFromRow(row: ChunkRow): ChunkRecord {
  return {
    id: row.id,
    documentId: row.document_id,
    documentKey: row.document_key,
    documentVersion: row.document_version,
    ordinal: Number(row.ordinal),
    text: row.text,
    metadata: JSON.parse(row.metadata_json) as Record<string, unknown>,
  };
}

export function rowFromChunk(chunk: ChunkWithVector): ChunkRowWithVector {
  return {
    id: chunk.id,
    document_id: chunk.documentId,
    document_key: chunk.documentKey,
    document_version: chunk.documentVersion,
    ordinal: chunk.ordinal,
    text: chunk.text,
    metadata_json: JSON.stringify(chunk.metadata),
    vector: Array.from(chunk.vector),
  };
}
