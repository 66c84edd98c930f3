import type { Kysely } from 'kysely';
import type { SqlDialectName } from './dialect.ts';
import type { Database } from './schema.ts';

export { columnTypes, type SqlDialectName } from './dialect.ts';
export { isUniqueViolation } from './errors.ts';
export type * from './schema.ts';

/**
 * The metadata database port. Stores are written once against `kysely` and run on every
 * adapter; the adapters differ only in how they connect, migrate and close.
 */
export interface MetadataDb {
  readonly dialect: SqlDialectName;
  readonly kysely: Kysely<Database>;
  /** Applies pending migrations and returns the names it applied. */
  migrate(): Promise<string[]>;
  /** Throws when the database cannot answer a trivial query. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
