import type { Kysely } from 'kysely';
import type { SqlDialectName } from '../dialect.ts';

/** The knowledge base's record of documents (one per object key) and the chunks cut from them. */
export async function up(db: Kysely<unknown>, _dialect: SqlDialectName): Promise<void> {
  await db.schema
    .createTable('documents')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('key', 'text', (col) => col.notNull().unique())
    .addColumn('version', 'text')
    .addColumn('status', 'text', (col) => col.notNull())
    .addColumn('error', 'text')
    .addColumn('size', 'integer')
    .addColumn('content_type', 'text')
    .addColumn('chunk_count', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('metadata_json', 'text', (col) => col.notNull())
    .addColumn('created_at', 'text', (col) => col.notNull())
    .addColumn('updated_at', 'text', (col) => col.notNull())
    .addColumn('ingested_at', 'text')
    .execute();
  await db.schema.createIndex('documents_status').on('documents').columns(['status', 'updated_at']).execute();
  await db.schema
    .createTable('chunks')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('document_id', 'text', (col) => col.notNull())
    .addColumn('document_version', 'text', (col) => col.notNull())
    .addColumn('ordinal', 'integer', (col) => col.notNull())
    .addColumn('text', 'text', (col) => col.notNull())
    .addColumn('metadata_json', 'text', (col) => col.notNull())
    .addColumn('created_at', 'text', (col) => col.notNull())
    .execute();
  await db.schema.createIndex('chunks_document').on('chunks').columns(['document_id', 'ordinal']).execute();
}
