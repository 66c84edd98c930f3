import { type FSWatcher, watch } from 'node:fs';
import { isoNow } from '../core/ids.ts';
import type { Logger } from '../core/logger.ts';
import type { MetadataDb } from '../db/index.ts';
import type { ObjectInfo, ObjectStore } from '../objects/index.ts';
import type { EventBus } from './bus.ts';
import { publishObjectEvent } from './object-events.ts';

export interface ScanResult {
  created: string[];
  removed: string[];
}

/**
 * Finds what changed under a prefix since the last scan by comparing a listing (ETags) with the
 * snapshot stored in `object_snapshots`, and publishes `object.created` / `object.removed`.
 * The snapshot is updated after each publish, so a crash can repeat an announcement but never
 * lose one; ingestion is idempotent, so a repeat costs a no-op run.
 */
export function createObjectChangeFeed(options: {
  store: ObjectStore;
  db: MetadataDb;
  bus: EventBus;
  prefix: string;
  /** Event source, e.g. `fs-watch` or `s3-poll`. */
  source: string;
  logger: Logger;
}) {
  const { store, db, bus, prefix, source, logger } = options;
  const k = db.kysely;
  let running: Promise<ScanResult> | undefined;
  let again = false;

  async function record(info: ObjectInfo): Promise<void> {
    const row = { etag: info.etag, size: info.size, seen_at: isoNow() };
    await k
      .insertInto('object_snapshots')
      .values({ key: info.key, ...row })
      .onConflict((oc) => oc.column('key').doUpdateSet(row))
      .execute();
  }

  async function scanOnce(): Promise<ScanResult> {
    const known = new Map<string, string>();
    const rows = await k.selectFrom('object_snapshots').select(['key', 'etag']).execute();
    for (const row of rows) if (row.key.startsWith(prefix)) known.set(row.key, row.etag);
    const result: ScanResult = { created: [], removed: [] };
    for await (const info of store.list(prefix)) {
      const previous = known.get(info.key);
      known.delete(info.key);
      if (previous === info.etag) continue;
      await publishObjectEvent(bus, {
        type: 'object.created',
        source,
        key: info.key,
        etag: info.etag,
        size: info.size,
      });
      await record(info);
      result.created.push(info.key);
    }
    for (const key of known.keys()) {
      await publishObjectEvent(bus, { type: 'object.removed', source, key });
      await k.deleteFrom('object_snapshots').where('key', '=', key).execute();
      result.removed.push(key);
    }
    if (result.created.length + result.removed.length > 0) logger.info({ source, ...result }, 'object changes');
    return result;
  }

  return {
    /** Scans now; overlapping calls coalesce into one follow-up scan. */
    scan(): Promise<ScanResult> {
      if (running) {
        again = true;
        return running;
      }
      running = (async () => {
        try {
          let result = await scanOnce();
          while (again) {
            again = false;
            const next = await scanOnce();
            result = { created: [...result.created, ...next.created], removed: [...result.removed, ...next.removed] };
          }
          return result;
        } finally {
          running = undefined;
        }
      })();
      return running;
    },
    /** Bertha itself wrote or deleted this object and announced it: the next scan should not repeat it. */
    async note(key: string, info: ObjectInfo | undefined): Promise<void> {
      if (info) await record(info);
      else await k.deleteFrom('object_snapshots').where('key', '=', key).execute();
    },
  };
}

export type ObjectChangeFeed = ReturnType<typeof createObjectChangeFeed>;

/**
 * Runs a change feed in the background: every `intervalMs` (S3 polling), and for a folder also
 * soon after the kernel reports a change (fs.watch is a hint; the scan decides what changed).
 * Returns the stop function.
 */
export function startObjectWatcher(options: {
  feed: ObjectChangeFeed;
  intervalMs: number;
  /** A folder to watch with fs.watch (fs store); omitted for S3. */
  folder?: string | undefined;
  debounceMs?: number;
  logger: Logger;
}): () => Promise<void> {
  const { feed, logger } = options;
  let timer: NodeJS.Timeout | undefined;
  let debounce: NodeJS.Timeout | undefined;
  let watcher: FSWatcher | undefined;
  let stopped = false;
  let last: Promise<unknown> = Promise.resolve();

  const scan = () => {
    if (stopped) return;
    last = feed.scan().catch((error: unknown) => logger.error({ err: error }, 'object scan failed'));
  };
  scan();
  if (options.intervalMs > 0) {
    timer = setInterval(scan, options.intervalMs);
    timer.unref();
  }
  if (options.folder) {
    try {
      watcher = watch(options.folder, { recursive: true }, () => {
        clearTimeout(debounce);
        debounce = setTimeout(scan, options.debounceMs ?? 200);
        debounce.unref();
      });
      watcher.on('error', (error) => logger.warn({ err: error }, 'folder watch failed; relying on periodic scans'));
    } catch (error) {
      logger.warn({ err: error, folder: options.folder }, 'cannot watch folder; relying on periodic scans');
    }
  }
  return async () => {
    stopped = true;
    clearInterval(timer);
    clearTimeout(debounce);
    watcher?.close();
    await last;
  };
}
