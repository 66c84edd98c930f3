import { type RawBuilder, sql } from 'kysely';
import type { SqlDialectName } from '../db/index.ts';
import { invalidParameter } from './errors.ts';
import type { FilterComparison } from './filter.ts';

/**
 * MLflow's LIKE is case-sensitive. PostgreSQL's LIKE already is; SQLite's is not, so there
 * the pattern becomes a GLOB with the same meaning (`%` -> `*`, `_` -> `?`, GLOB's own
 * wildcards escaped as one-character classes).
 */
function likeExpression(
  column: RawBuilder<unknown>,
  pattern: string,
  dialect: SqlDialectName,
  insensitive: boolean,
): RawBuilder<unknown> {
  if (dialect === 'postgres') return insensitive ? sql`${column} ILIKE ${pattern}` : sql`${column} LIKE ${pattern}`;
  if (insensitive) return sql`lower(${column}) LIKE lower(${pattern})`;
  let glob = '';
  for (const ch of pattern) {
    if (ch === '%') glob += '*';
    else if (ch === '_') glob += '?';
    else if (ch === '*' || ch === '?' || ch === '[') glob += `[${ch}]`;
    else glob += ch;
  }
  return sql`${column} GLOB ${glob}`;
}

/** A comparison of one column against a parsed filter value; `kind` says which operators make sense. */
export function compareColumn(
  column: RawBuilder<unknown>,
  comparison: FilterComparison,
  kind: 'string' | 'number',
  dialect: SqlDialectName,
): RawBuilder<unknown> {
  const { op, value, key } = comparison;
  const where = `${comparison.entity === 'attribute' ? '' : `${comparison.entity}.`}${key}`;
  if (op === 'IS NULL') return sql`${column} IS NULL`;
  if (op === 'IS NOT NULL') return sql`${column} IS NOT NULL`;
  if (kind === 'number') {
    if (typeof value !== 'number') {
      throw invalidParameter(`Expected numeric value type for '${where}', got ${JSON.stringify(value)}`);
    }
    switch (op) {
      case '=':
      case '!=':
      case '>':
      case '>=':
      case '<':
      case '<=':
        return sql`${column} ${sql.raw(op)} ${value}`;
      default:
        throw invalidParameter(`Invalid comparator '${op}' for '${where}'; expected one of =, !=, >, >=, <, <=`);
    }
  }
  if (op === 'IN' || op === 'NOT IN') {
    if (!Array.isArray(value) || value.length === 0) throw invalidParameter(`'${where} ${op}' needs a non-empty list`);
    return sql`${column} ${sql.raw(op)} (${sql.join(value)})`;
  }
  if (typeof value !== 'string') {
    throw invalidParameter(`Expected a quoted string value for '${where}', got ${JSON.stringify(value)}`);
  }
  switch (op) {
    case '=':
    case '!=':
      return sql`${column} ${sql.raw(op)} ${value}`;
    case 'LIKE':
    case 'ILIKE':
      return likeExpression(column, value, dialect, op === 'ILIKE');
    default:
      throw invalidParameter(`Invalid comparator '${op}' for '${where}'; expected one of =, !=, LIKE, ILIKE`);
  }
}

/** int64 columns come back from PostgreSQL as strings. */
export function toNumber(value: number | string): number;
export function toNumber(value: number | string | null): number | null;
export function toNumber(value: number | string | null): number | null {
  return value === null ? null : Number(value);
}
