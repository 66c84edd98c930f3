import type { Kysely } from 'kysely';

/**
 * The outbox mark of the NATS bus: 0 while a stored event has not been accepted by the broker.
 * Events stored before this migration, and every event of the in-process bus, count as sent.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('events')
    .addColumn('sent', 'integer', (column) => column.notNull().defaultTo(1))
    .execute();
  await db.schema.createIndex('events_unsent').on('events').columns(['sent', 'id']).execute();
}
