import { isoNow, newId } from '../core/ids.ts';
import type { DocumentsTable } from '../db/index.ts';
import { isUniqueViolation, type MetadataDb } from '../db/index.ts';

export type DocumentStatus = 'pending' | 'ingested' | 'failed';

export interface DocumentRecord {
  id: string;
  key: string;
  /** SHA-256 of the content last loaded (null until the first load). */
  version: string | null;
  status: DocumentStatus;
  error: string | null;
  size: number | null;
  contentType: string | null;
  chunkCount: number;
  metadata: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
  ingestedAt: string | null;
}

export interface StoredChunk {
  id: string;
  ordinal: number;
  text: string;
  metadata: Record<string, unknown>;
}

function recordFrom(row: DocumentsTable): DocumentRecord {
  return {
    id: row.id,
    key: row.key,
    version: row.version,
    status: row.status as DocumentStatus,
    error: row.error,
    size: row.size === null ? null : Number(row.size),
    contentType: row.content_type,
    chunkCount: Number(row.chunk_count),
    metadata: JSON.parse(row.metadata_json) as Record<string, unknown>,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    ingestedAt: row.ingested_at,
  };
}

/** The `documents` and `chunks` tables: what the knowledge base holds, per object key and version. */
export function createDocumentStore(db: MetadataDb) {
  const k = db.kysely;

  async function byKey(key: string): Promise<DocumentRecord | undefined> {
    const row = await k.selectFrom('documents').selectAll().where('key', '=', key).executeTakeFirst();
    return row ? recordFrom(row) : undefined;
  }

  /** Creates the row for a key, or updates it; concurrent first sightings of a key converge on one row. */
  async function upsert(
    key: string,
    fields: Partial<Omit<DocumentsTable, 'id' | 'key' | 'created_at'>>,
  ): Promise<DocumentRecord> {
    const now = isoNow();
    const existing = await byKey(key);
    if (existing) {
      await k
        .updateTable('documents')
        .set({ ...fields, updated_at: now })
        .where('id', '=', existing.id)
        .execute();
      return (await byKey(key)) as DocumentRecord;
    }
    try {
      await k
        .insertInto('documents')
        .values({
          id: newId('doc'),
          key,
          version: null,
          status: 'pending',
          error: null,
          size: null,
          content_type: null,
          chunk_count: 0,
          metadata_json: '{}',
          ingested_at: null,
          ...fields,
          created_at: now,
          updated_at: now,
        })
        .execute();
    } catch (error) {
      if (!isUniqueViolation(error)) throw error;
      return upsert(key, fields);
    }
    return (await byKey(key)) as DocumentRecord;
  }

  return {
    byKey,

    async byId(id: string): Promise<DocumentRecord | undefined> {
      const row = await k.selectFrom('documents').selectAll().where('id', '=', id).executeTakeFirst();
      return row ? recordFrom(row) : undefined;
    },

    async list(filter: { status?: DocumentStatus | undefined; limit: number }) {
      let query = k.selectFrom('documents').selectAll().orderBy('key').limit(filter.limit);
      if (filter.status) query = query.where('status', '=', filter.status);
      return (await query.execute()).map(recordFrom);
    },

    /**
     * An object arrived (upload) and waits for ingestion. A key seen before keeps its row as it
     * is: the load step decides whether the content changed, and sets `pending` if it did.
     */
    async markPending(key: string, size: number | null): Promise<DocumentRecord> {
      return (await byKey(key)) ?? upsert(key, { status: 'pending', error: null, size });
    },

    /** A load began for this content version. */
    beginVersion(key: string, version: string, size: number): Promise<DocumentRecord> {
      return upsert(key, { version, status: 'pending', error: null, size });
    },

    /**
     * Records that ingesting this content version failed, unless a newer version began
     * meanwhile (that version's run decides the status then). Returns whether it was recorded.
     */
    async markFailed(key: string, version: string, error: string): Promise<boolean> {
      const result = await k
        .updateTable('documents')
        .set({ status: 'failed', error, updated_at: isoNow() })
        .where('key', '=', key)
        .where('version', '=', version)
        .executeTakeFirst();
      return result.numUpdatedRows > 0n;
    },

    /**
     * Replaces the document's chunks with this version's, unless a newer version began
     * meanwhile. Returns false when superseded.
     */
    async replaceChunks(
      documentId: string,
      version: string,
      details: { contentType: string; metadata: Record<string, unknown> },
      chunks: StoredChunk[],
    ): Promise<boolean> {
      return k.transaction().execute(async (trx) => {
        const current = await trx
          .selectFrom('documents')
          .select('version')
          .where('id', '=', documentId)
          .executeTakeFirst();
        if (!current || current.version !== version) return false;
        const now = isoNow();
        await trx.deleteFrom('chunks').where('document_id', '=', documentId).execute();
        // Batched so a large document stays under SQLite's bound-parameter limit.
        for (let i = 0; i < chunks.length; i += 100) {
          await trx
            .insertInto('chunks')
            .values(
              chunks.slice(i, i + 100).map((chunk) => ({
                id: chunk.id,
                document_id: documentId,
                document_version: version,
                ordinal: chunk.ordinal,
                text: chunk.text,
                metadata_json: JSON.stringify(chunk.metadata),
                created_at: now,
              })),
            )
            .execute();
        }
        await trx
          .updateTable('documents')
          .set({
            status: 'ingested',
            error: null,
            chunk_count: chunks.length,
            content_type: details.contentType,
            metadata_json: JSON.stringify(details.metadata),
            ingested_at: now,
            updated_at: now,
          })
          .where('id', '=', documentId)
          .execute();
        return true;
      });
    },

    async chunksOf(documentId: string) {
      const rows = await k
        .selectFrom('chunks')
        .selectAll()
        .where('document_id', '=', documentId)
        .orderBy('ordinal')
        .execute();
      return rows.map((row) => ({
        id: row.id,
        documentVersion: row.document_version,
        ordinal: Number(row.ordinal),
        text: row.text,
        metadata: JSON.parse(row.metadata_json) as Record<string, unknown>,
      }));
    },

    /** Forgets the document and its chunks; returns what was removed. */
    async remove(key: string): Promise<DocumentRecord | undefined> {
      const existing = await byKey(key);
      if (!existing) return undefined;
      await k.transaction().execute(async (trx) => {
        await trx.deleteFrom('chunks').where('document_id', '=', existing.id).execute();
        await trx.deleteFrom('documents').where('id', '=', existing.id).execute();
      });
      return existing;
    },
  };
}

export type DocumentStore = ReturnType<typeof createDocumentStore>;
