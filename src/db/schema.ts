import type { Generated } from 'kysely';

/**
 * Table types shared by every capability. Conventions that keep one schema valid on
 * SQLite and PostgreSQL alike:
 * - ids are text (see core/ids.ts), timestamps ISO-8601 UTC text (`*_at`);
 * - JSON documents are text columns (`*_json`), parsed by the store that owns them;
 * - flags are integers 0/1; counts are `integer` (PostgreSQL returns `bigint` as a string).
 */
export interface EventsTable {
  id: string;
  seq: Generated<number>;
  type: string;
  source: string;
  subject: string | null;
  /** Set when the producer can recognise a redelivery (alert fingerprint, S3 sequencer). */
  dedupe_key: string | null;
  payload_json: string;
  created_at: string;
}

export interface Database {
  events: EventsTable;
}
