import type { PageSize } from '../core/paging.ts';
import { invalidParameter } from './errors.ts';
import type { Page } from './types.ts';
import { maxResults } from './validation.ts';

/** Page tokens are opaque to clients; like MLflow's SQL store they carry an offset (base64 JSON). */
function decodePageToken(token: string | undefined): number {
  if (!token) return 0;
  try {
    const parsed = JSON.parse(Buffer.from(token, 'base64').toString('utf8')) as { offset?: unknown };
    if (typeof parsed.offset === 'number' && Number.isInteger(parsed.offset) && parsed.offset >= 0)
      return parsed.offset;
  } catch {
    // falls through to the error below: a token that does not decode is the client's mistake
  }
  throw invalidParameter(`Invalid page token, could not base64-decode`);
}

function encodePageToken(offset: number): string {
  return Buffer.from(JSON.stringify({ offset })).toString('base64');
}

/** What a search request says about paging: MLflow's `max_results` and `page_token`. */
export interface PageRequest {
  maxResults?: number | undefined;
  pageToken?: string | undefined;
}

/** One page of a search being read. */
export interface PageInProgress {
  /** The LIMIT to query with: one over the page size, to learn whether another page follows. */
  limit: number;
  offset: number;
  /** The page's items from the rows the query returned, with the token for the next page when there is one. */
  finish<Row, Item>(rows: Row[], toItems: (rows: Row[]) => Item[] | Promise<Item[]>): Promise<Page<Item>>;
}

/**
 * Starts a page of a search (`size`: the `max_results` it takes when none is given, and the most
 * it accepts); throws MLflow's errors for a bad `max_results`, then for a bad token.
 */
export function startPage(request: PageRequest, size: PageSize): PageInProgress {
  const pageSize = maxResults(request.maxResults, size.fallback, size.max);
  const offset = decodePageToken(request.pageToken);
  return {
    limit: pageSize + 1,
    offset,
    async finish(rows, toItems) {
      const items = await toItems(rows.slice(0, pageSize));
      return rows.length > pageSize ? { items, nextPageToken: encodePageToken(offset + pageSize) } : { items };
    },
  };
}
