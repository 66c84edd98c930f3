import pg from 'pg';
import type { Logger } from '../core/logger.ts';
import { resilientPool } from '../db/pg-pool.ts';
import { ExactScanIndex } from './exact-scan.ts';
import { prepareVectorTable, VectorDimensionsError, vectorTable } from './postgres-vector-table.ts';
import {
  type ChunkRecord,
  type ChunkWithVector,
  type SearchFilter,
  type SearchHit,
  type SearchRequest,
  searchByMode,
  type VectorStore,
} from './vector-store.ts';

export interface PostgresVectorStoreOptions {
  url: string;
  /** Schema of the table; created when missing. */
  schema: string;
  /** One table per vector space, so changing the embedder never mixes vectors. */
  table: string;
  dimensions: number;
  /** Text search configuration of the full-text column: `simple` (no stemming, any language), `english`, ... */
  language: string;
  poolSize: number;
  logger: Logger;
}

interface ChunkRow {
  id: string;
  document_id: string;
  document_key: string;
  document_version: string;
  ordinal: number;
  text: string;
  metadata: Record<string, unknown>;
}

/**
 * A row read back by `seq`: a live chunk, or a tombstone whose chunk columns are null. `seq`
 * is a bigint, which pg hands over as a string.
 */
type ChangeRow = ChunkRow & { seq: string; deleted: boolean; vector: Buffer | null };

const CHUNK_COLUMNS = 'id, document_id, document_key, document_version, ordinal, text, metadata';
const PAGE_ROWS = 1_000;
const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 10_000;
const CATCH_UP_RETRY_MS = 5_000;

function chunkFromRow(row: ChunkRow): ChunkRecord {
  return {
    id: row.id,
    documentId: row.document_id,
    documentKey: row.document_key,
    documentVersion: row.document_version,
    ordinal: row.ordinal,
    text: row.text,
    metadata: row.metadata,
  };
}

// Vectors are stored as raw float32 in the machine's byte order (little-endian on x86-64 and
// arm64): they load several times faster than `real[]`, whose text form pg parses number by number.
function bytesOf(vector: Float32Array, dimensions: number): Buffer {
  return Buffer.from(vector.buffer, vector.byteOffset, dimensions * 4);
}

function vectorOf(bytes: Buffer): Float32Array {
  // A copy: pg's buffers are slices of a larger one and need not be 4-byte aligned.
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
}

/** The `seq` a notification announces; NaN for a payload this adapter did not write. */
function notifiedSeq(payload: string | undefined): number {
  try {
    return Number((JSON.parse(payload ?? '') as { seq?: unknown }).seq);
  } catch {
    return Number.NaN;
  }
}

/**
 * The knowledge base in PostgreSQL, shared by every Bertha replica. The table is the durable
 * copy: chunks, float32 vectors and a generated `tsvector` with a GIN index. Vector search runs
 * on an in-memory exact scan per process, loaded at open and kept current by this process's
 * writes and, for other processes' writes, by LISTEN/NOTIFY (no pgvector needed).
 *
 * Every write takes the table's transaction-scoped advisory lock and stamps its rows, and the
 * tombstones of the rows it deletes, from one sequence: writes commit in `seq` order, so the
 * rows above the last `seq` a process has applied are exactly what it has missed. A
 * notification, or reconnecting after a lost connection, reads those back. Tombstones are kept
 * (an id and a number each) so that a process that was away still sees the deletions.
 *
 * Full-text scores are `ts_rank_cd` (cover density, unnormalised), not BM25: comparable within
 * one result list only. A query matches chunks with any of its words, as BM25 does.
 */
export async function createPostgresVectorStore(options: PostgresVectorStoreOptions): Promise<VectorStore> {
  const { dimensions, language, logger } = options;
  const table = vectorTable(options.schema, options.table);
  const { chunks, tombstones, sequence, channel, writeLock } = table;
  // A pooled connection that drops (a PostgreSQL restart) must not take the process down.
  const pool = resilientPool({ connectionString: options.url, max: options.poolSize }, (error) =>
    logger.warn({ err: error }, 'an idle vector-store connection closed'),
  );

  async function inTransaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await pool.connect();
    let broken = false;
    try {
      await client.query('begin');
      const result = await work(client);
      await client.query('commit');
      return result;
    } catch (error) {
      await client.query('rollback').catch(() => {
        broken = true;
      });
      throw error;
    } finally {
      client.release(broken);
    }
  }

  /** The highest `seq` committed; under the write lock every lower one is committed or superseded. */
  async function headSeq(client: pg.Pool | pg.PoolClient): Promise<number> {
    const { rows } = await client.query<{ head: string }>(
      `select greatest((select max(seq) from ${chunks}), (select max(seq) from ${tombstones}), 0)::text as head`,
    );
    return Number(rows[0]?.head ?? 0);
  }

  // This process's writes and catch-ups, one at a time: a catch-up that read a row before a
  // local write committed must not apply that older row after the write.
  let queue: Promise<unknown> = Promise.resolve();
  function serialised<T>(work: () => Promise<T>): Promise<T> {
    const result = queue.then(work, work);
    queue = result.catch(() => undefined);
    return result;
  }

  let closed = false;
  let lastSeen = 0;
  let scan = new ExactScanIndex(dimensions);

  function apply(row: ChangeRow): void {
    if (row.deleted || !row.vector) scan.remove(row.id);
    else scan.set(chunkFromRow(row), vectorOf(row.vector));
    lastSeen = Number(row.seq);
  }

  /** Applies every row written or deleted since `lastSeen`, in commit order. */
  async function catchUp(): Promise<number> {
    let applied = 0;
    for (;;) {
      const { rows } = await pool.query<ChangeRow>(
        `(select seq, false as deleted, vector, ${CHUNK_COLUMNS}
          from ${chunks} where seq > $1 order by seq limit $2)
         union all
         (select seq, true, null, id, null, null, null, null, null, null
          from ${tombstones} where seq > $1 order by seq limit $2)
         order by seq limit $2`,
        [lastSeen, PAGE_ROWS],
      );
      for (const row of rows) apply(row);
      applied += rows.length;
      if (rows.length < PAGE_ROWS) return applied;
    }
  }

  /** Every live chunk up to the head, then whatever moved while they loaded. */
  async function load(): Promise<void> {
    const { rows } = await pool.query<{ count: string }>(`select count(*)::text as count from ${chunks}`);
    scan = new ExactScanIndex(dimensions, Math.max(1024, Number(rows[0]?.count ?? 0)));
    const head = await headSeq(pool);
    for (let after = 0; ; after = lastSeen) {
      const page = await pool.query<ChangeRow>(
        `select seq, false as deleted, vector, ${CHUNK_COLUMNS}
         from ${chunks} where seq > $1 and seq <= $2 order by seq limit $3`,
        [after, head, PAGE_ROWS],
      );
      for (const row of page.rows) apply(row);
      if (page.rows.length < PAGE_ROWS) break;
    }
    // Rows rewritten or deleted during the load carry a seq above the head.
    lastSeen = head;
    await catchUp();
  }

  let catchUpQueued = false;
  let retryTimer: NodeJS.Timeout | undefined;
  function requestCatchUp(): void {
    if (catchUpQueued || closed) return;
    catchUpQueued = true;
    serialised(async () => {
      catchUpQueued = false;
      const applied = await catchUp();
      if (applied > 0) logger.debug({ table: table.label, applied, seq: lastSeen }, 'vector store caught up');
    }).catch((error: unknown) => {
      logger.error({ err: error, table: table.label }, 'vector store catch-up failed; retrying');
      clearTimeout(retryTimer);
      retryTimer = setTimeout(requestCatchUp, CATCH_UP_RETRY_MS).unref();
    });
  }

  let listener: pg.Client | undefined;
  let reconnectTimer: NodeJS.Timeout | undefined;
  let reconnectDelay = RECONNECT_MIN_MS;

  async function listen(): Promise<void> {
    const client = new pg.Client({
      connectionString: options.url,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      application_name: 'bertha-vector-store',
    });
    client.on('notification', (message) => {
      // This process's own writes are applied already; anything else, readable or not, is caught up.
      if (!(notifiedSeq(message.payload) <= lastSeen)) requestCatchUp();
    });
    client.on('error', (error) => lost(client, error));
    client.on('end', () => lost(client));
    listener = client;
    try {
      await client.connect();
      await client.query(`listen ${channel}`);
    } catch (error) {
      if (listener === client) listener = undefined;
      await client.end().catch(() => undefined);
      throw error;
    }
  }

  function lost(client: pg.Client, error?: Error): void {
    if (closed || listener !== client) return;
    listener = undefined;
    logger.warn({ err: error, table: table.label }, 'vector store stopped hearing other replicas; reconnecting');
    client.end().catch(() => undefined);
    reconnect();
  }

  function reconnect(): void {
    if (closed || reconnectTimer) return;
    reconnectTimer = setTimeout(async () => {
      reconnectTimer = undefined;
      if (closed) return;
      try {
        await listen();
        reconnectDelay = RECONNECT_MIN_MS;
        logger.info({ table: table.label }, 'vector store listening again; catching up');
        requestCatchUp();
      } catch (error) {
        if (closed) return;
        reconnectDelay = Math.min(reconnectDelay * 2, RECONNECT_MAX_MS);
        logger.warn({ err: error, table: table.label, retryInMs: reconnectDelay }, 'vector store cannot listen yet');
        reconnect();
      }
    }, reconnectDelay).unref();
  }

  async function shutDown(): Promise<void> {
    closed = true;
    clearTimeout(retryTimer);
    clearTimeout(reconnectTimer);
    await queue;
    await listener?.end().catch(() => undefined);
    await pool.end();
  }

  try {
    await inTransaction((client) => prepareVectorTable(client, table, { language, dimensions, logger }));
    // Listening before loading: a write that commits during the load is caught up right after.
    await listen();
    await serialised(load);
  } catch (error) {
    await shutDown().catch(() => undefined);
    throw error;
  }
  logger.info({ table: table.label, chunks: scan.size, seq: lastSeen }, 'vector store loaded');

  /** Takes the table's write lock; returns whether this process had applied every earlier write. */
  async function lockForWrite(client: pg.PoolClient): Promise<boolean> {
    await client.query('select pg_advisory_xact_lock($1)', [writeLock]);
    return (await headSeq(client)) <= lastSeen;
  }

  /** After a local write: its own rows need no reading back, unless an earlier write is still unseen. */
  function wrote(upToDate: boolean, seqs: string[]): void {
    if (upToDate) for (const seq of seqs) lastSeen = Math.max(lastSeen, Number(seq));
  }

  async function notify(client: pg.PoolClient, seqs: string[]): Promise<void> {
    // Delivered at commit. Only a hint: the rows are read back by `seq`, which also keeps the
    // payload under NOTIFY's 8000 bytes however many chunks a write has.
    const seq = seqs.reduce((highest, value) => Math.max(highest, Number(value)), 0);
    await client.query('select pg_notify($1, $2)', [channel, JSON.stringify({ seq })]);
  }

  async function fullText(text: string, topK: number, filter: SearchFilter | undefined): Promise<SearchHit[]> {
    if (!text.trim() || topK <= 0) return [];
    const params: unknown[] = [language, text];
    const where = ['text_search @@ query'];
    if (filter?.documentKeys) {
      params.push(filter.documentKeys);
      where.push(`document_key = any($${params.length}::text[])`);
    }
    if (filter?.keyPrefix) {
      params.push(filter.keyPrefix);
      where.push(`starts_with(document_key, $${params.length})`);
    }
    if (filter?.metadata && Object.keys(filter.metadata).length > 0) {
      params.push(JSON.stringify(filter.metadata));
      where.push(`metadata @> $${params.length}::jsonb`);
    }
    params.push(topK);
    // plainto_tsquery ANDs the words; OR them so a chunk with some of the words still ranks.
    const { rows } = await pool.query<ChunkRow & { score: number }>(
      `select ${CHUNK_COLUMNS}, ts_rank_cd(text_search, query) as score
       from ${chunks}, (select replace(plainto_tsquery($1::regconfig, $2)::text, ' & ', ' | ')::tsquery as query) q
       where ${where.join(' and ')}
       order by score desc, id
       limit $${params.length}`,
      params,
    );
    return rows.map((row) => ({ chunk: chunkFromRow(row), score: row.score }));
  }

  return {
    kind: 'postgres',
    dimensions,

    upsert(batch: ChunkWithVector[]) {
      // The last of repeated ids wins, as it would written one by one.
      const latest = [...new Map(batch.map((chunk) => [chunk.id, chunk])).values()];
      const wrong = latest.find((chunk) => chunk.vector.length !== dimensions);
      if (wrong) {
        const message = `chunk ${wrong.id} has ${wrong.vector.length} dimensions; the store holds ${dimensions}`;
        return Promise.reject(new VectorDimensionsError(message, { id: wrong.id, dimensions }));
      }
      if (latest.length === 0) return Promise.resolve();
      return serialised(async () => {
        const ids = latest.map((chunk) => chunk.id);
        const { upToDate, seqs } = await inTransaction(async (client) => {
          const upToDate = await lockForWrite(client);
          const { rows } = await client.query<{ seq: string }>(
            `insert into ${chunks} (${CHUNK_COLUMNS}, vector)
             select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::text[], $7::jsonb[], $8::bytea[])
             on conflict (id) do update set
               document_id = excluded.document_id, document_key = excluded.document_key,
               document_version = excluded.document_version, ordinal = excluded.ordinal, text = excluded.text,
               metadata = excluded.metadata, vector = excluded.vector, seq = nextval(${pg.escapeLiteral(sequence)})
             returning seq`,
            [
              ids,
              latest.map((chunk) => chunk.documentId),
              latest.map((chunk) => chunk.documentKey),
              latest.map((chunk) => chunk.documentVersion),
              latest.map((chunk) => chunk.ordinal),
              latest.map((chunk) => chunk.text),
              latest.map((chunk) => JSON.stringify(chunk.metadata)),
              latest.map((chunk) => bytesOf(chunk.vector, dimensions)),
            ],
          );
          // A chunk written again after a delete is live: its tombstone would only be read back.
          await client.query(`delete from ${tombstones} where id = any($1::text[])`, [ids]);
          const seqs = rows.map((row) => row.seq);
          await notify(client, seqs);
          return { upToDate, seqs };
        });
        for (const { vector, ...chunk } of latest) scan.set(chunk, vector);
        wrote(upToDate, seqs);
      });
    },

    deleteDocument(documentKey, deleteOptions = {}) {
      return serialised(async () => {
        const { upToDate, gone } = await inTransaction(async (client) => {
          const upToDate = await lockForWrite(client);
          const { rows } = await client.query<{ id: string; seq: string }>(
            `with gone as (
               delete from ${chunks}
               where document_key = $1 and ($2::text is null or document_version <> $2)
               returning id
             )
             insert into ${tombstones} (id) select id from gone
             on conflict (id) do update set seq = excluded.seq
             returning id, seq`,
            [documentKey, deleteOptions.exceptVersion ?? null],
          );
          if (rows.length > 0)
            await notify(
              client,
              rows.map((row) => row.seq),
            );
          return { upToDate, gone: rows };
        });
        for (const { id } of gone) scan.remove(id);
        wrote(
          upToDate,
          gone.map((row) => row.seq),
        );
        return gone.length;
      });
    },

    async search(request: SearchRequest) {
      request.signal?.throwIfAborted();
      return searchByMode(request, (vector, topK, filter) => scan.search(vector, topK, filter), fullText);
    },

    async count() {
      return scan.size;
    },

    async close() {
      if (!closed) await shutDown();
    },
  };
}
