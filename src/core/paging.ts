import { type SelectQueryBuilder, sql } from 'kysely';
import { z } from 'zod';

/**
 * A page of a newest-first list. Ids are time-ordered (`newId`), so "older than the last row
 * a client saw" is `id < before`, and no offset is needed.
 */
export interface NewestFirstPage {
  /** Only rows with an id lower than this one (paging backwards). */
  before?: string | undefined;
  limit?: number | undefined;
}

/** How many rows a list returns when the client does not say, and the most it may ask for. */
export interface PageSize {
  fallback: number;
  max: number;
}

/** The `before` and `limit` query parameters of a newest-first list route, for its `z.object`. */
export function pageQuery(size: PageSize) {
  return {
    before: z.string().optional(),
    limit: z.coerce.number().int().min(1).max(size.max).default(size.fallback),
  };
}

/** Orders a query on a table with an `id` column newest first and cuts it to the page. */
export function newestFirst<DB, TB extends keyof DB, O>(
  query: SelectQueryBuilder<DB, TB, O>,
  page: NewestFirstPage,
  fallbackLimit: number,
): SelectQueryBuilder<DB, TB, O> {
  const id = sql.ref<string>('id');
  const from = page.before ? query.where(id, '<', page.before) : query;
  return from.orderBy(id, 'desc').limit(page.limit ?? fallbackLimit);
}
