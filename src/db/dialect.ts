import type { ColumnDataType } from 'kysely';

export type SqlDialectName = 'sqlite' | 'postgres';

/** Column types that differ between the two databases; everything else is plain `text`/`integer`. */
export function columnTypes(dialect: SqlDialectName): { float: ColumnDataType; bigint: ColumnDataType } {
  return dialect === 'postgres'
    ? { float: 'double precision', bigint: 'bigint' }
    : { float: 'real', bigint: 'integer' };
}
