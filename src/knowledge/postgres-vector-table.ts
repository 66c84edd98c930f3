import { createHash } from 'node:crypto';
import pg from 'pg';
import { BerthaError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';

/** A table that holds vectors of another size than the embedder makes, or a chunk of the wrong size. */
export class VectorDimensionsError extends BerthaError {
  constructor(message: string, details: Record<string, unknown>) {
    super('vector_dimensions_mismatch', message, 500, details);
  }
}

/** The SQL names of one vector space's table and its companions, quoted and schema-qualified. */
export interface VectorTable {
  schema: string;
  /** The table's name, shortened to fit PostgreSQL's identifiers. */
  name: string;
  /** For logs: `schema.name`. */
  label: string;
  chunks: string;
  /** Ids of deleted chunks, stamped from the same sequence as the chunks. */
  tombstones: string;
  /** Orders every write to the table (see the store's comment). */
  sequence: string;
  /** NOTIFY channel that tells other processes a write committed. */
  channel: string;
  /** Transaction-scoped advisory lock key that writers of this table take. */
  writeLock: string;
}

/**
 * PostgreSQL identifiers stop at 63 bytes and longer ones are cut silently, so a long
 * vector-space name keeps a hash of itself and its suffixed companions (`_deleted`, `_seq`,
 * index names) never collide.
 */
function shortName(table: string): string {
  if (Buffer.byteLength(table) <= 40) return table;
  const digest = createHash('sha256').update(table).digest('hex').slice(0, 8);
  return `${table.replace(/[^\x20-\x7e]/g, '_').slice(0, 30)}_${digest}`;
}

export function vectorTable(schema: string, table: string): VectorTable {
  const name = shortName(table);
  const qualified = (suffix: string) => `${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(`${name}${suffix}`)}`;
  const digest = createHash('sha256').update(`${schema}.${name}`).digest('hex');
  return {
    schema,
    name,
    label: `${schema}.${name}`,
    chunks: qualified(''),
    tombstones: qualified('_deleted'),
    sequence: qualified('_seq'),
    // Channel names are identifiers too; a hash keeps them short and unquoted.
    channel: `bertha_vectors_${digest.slice(0, 16)}`,
    writeLock: BigInt.asIntN(64, BigInt(`0x${digest.slice(16, 32)}`)).toString(),
  };
}

/**
 * Creates the table when missing (with a full-text column in `language`, rebuilt when the
 * language changed) and checks that its vectors have `dimensions`.
 */
export async function prepareVectorTable(
  client: pg.PoolClient,
  table: VectorTable,
  options: { language: string; dimensions: number; logger: Logger },
): Promise<void> {
  const index = (suffix: string) => pg.escapeIdentifier(`${table.name}${suffix}`);
  const textSearch = `text_search tsvector generated always as (to_tsvector(${pg.escapeLiteral(options.language)}::regconfig, text)) stored`;
  // Replicas starting together would race on `create ... if not exists`.
  await client.query('select pg_advisory_xact_lock($1)', [table.writeLock]);
  // CREATE SCHEMA needs the CREATE privilege even when the schema exists.
  const schemaExists = await client.query('select 1 from pg_namespace where nspname = $1', [table.schema]);
  if (schemaExists.rowCount === 0) await client.query(`create schema ${pg.escapeIdentifier(table.schema)}`);
  await client.query(`create sequence if not exists ${table.sequence}`);
  await client.query(
    `create table if not exists ${table.chunks} (
      id text primary key,
      document_id text not null,
      document_key text not null,
      document_version text not null,
      ordinal integer not null,
      text text not null,
      metadata jsonb not null,
      vector bytea not null,
      seq bigint not null default nextval(${pg.escapeLiteral(table.sequence)}),
      ${textSearch}
    )`,
  );
  const generated = await client.query<{ expression: string }>(
    `select pg_get_expr(d.adbin, d.adrelid) as expression
     from pg_attrdef d join pg_attribute a on a.attrelid = d.adrelid and a.attnum = d.adnum
     where d.adrelid = $1::regclass and a.attname = 'text_search'`,
    [table.chunks],
  );
  if (!generated.rows[0]?.expression.includes(`${pg.escapeLiteral(options.language)}::regconfig`)) {
    options.logger.info(
      { table: table.label, language: options.language },
      'rebuilding the full-text column for a new text search configuration',
    );
    await client.query(`alter table ${table.chunks} drop column if exists text_search, add column ${textSearch}`);
  }
  await client.query(`create index if not exists ${index('_text_idx')} on ${table.chunks} using gin (text_search)`);
  await client.query(`create index if not exists ${index('_key_idx')} on ${table.chunks} (document_key)`);
  await client.query(`create index if not exists ${index('_seq_idx')} on ${table.chunks} (seq)`);
  await client.query(
    `create table if not exists ${table.tombstones} (
      id text primary key,
      seq bigint not null default nextval(${pg.escapeLiteral(table.sequence)})
    )`,
  );
  await client.query(`create index if not exists ${index('_deleted_seq_idx')} on ${table.tombstones} (seq)`);

  const sample = await client.query<{ bytes: number }>(
    `select octet_length(vector) as bytes from ${table.chunks} limit 1`,
  );
  const stored = sample.rows[0]?.bytes;
  if (stored !== undefined && stored !== options.dimensions * 4) {
    throw new VectorDimensionsError(
      `table ${table.label} holds ${stored / 4}-dimensional vectors; the embedder makes ${options.dimensions}`,
      { table: table.label, stored: stored / 4, dimensions: options.dimensions },
    );
  }
}
