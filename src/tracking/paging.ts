import { invalidParameter } from './errors.ts';

/** Page tokens are opaque to clients; like MLflow's SQL store they carry an offset (base64 JSON). */
export function decodePageToken(token: string | undefined): number {
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

export function encodePageToken(offset: number): string {
  return Buffer.from(JSON.stringify({ offset })).toString('base64');
}

/** The token for the page after `offset` when the query returned one more row than `limit`. */
export function nextPageToken(offset: number, limit: number, fetched: number): string | undefined {
  return fetched > limit ? encodePageToken(offset + limit) : undefined;
}
