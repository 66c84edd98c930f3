import { createHash } from 'node:crypto';
import type { Stats } from 'node:fs';
import { open, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** A file's content digest: what a path named at the moment it was read. */
export interface FileDigest {
  /** `sha256:<hex>` of the file's bytes. */
  digest: string;
  /** The file's name without its folder: digests identify content, names only help a person. */
  file: string;
  bytes: number;
}

/**
 * Digests of model files, cached by what `stat` says of them: the same path with the same
 * device, inode, size, mtime and ctime is not read again; a file replaced under the same
 * name (a new inode) or rewritten in place (a new mtime/ctime) is. A file changed shortly
 * before it was digested is read again next time too: a second write within the same
 * timestamp tick would leave every field as it was (git's "racily clean" entries).
 */
export interface FileDigests {
  digest(filePath: string, signal?: AbortSignal): Promise<FileDigest>;
  /** How many times a file was read and hashed (a cache hit reads nothing). */
  readonly hashedFiles: number;
  /** Resolves once every cache-file write started so far has landed (or failed): before a data dir goes away. */
  flush(): Promise<void>;
}

/** Read size per chunk: large enough for throughput, small enough that each hash update is a short task. */
const CHUNK_BYTES = 1 << 20;

/**
 * How long after a file's last change its timestamps are trusted to tell a later change apart:
 * kernels stamp files from a coarse clock, and some filesystems keep whole (or even) seconds.
 */
const RACY_WINDOW_MS = 2_000;

const identity = (stat: Stats) => `${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeMs}:${stat.ctimeMs}`;

function abortable<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/** A digest as `cacheFile` keeps it: the stat identity it was taken under and when that stat ran. */
interface StoredDigest {
  identity: string;
  statAt: number;
  digest: FileDigest;
}

export interface FileDigestsOptions {
  /**
   * JSON file that keeps digests across restarts (`<dataDir>/file-digests.json`): a multi-gigabyte base
   * unchanged since the last run is not read again at start-up. Unreadable or corrupt: start empty.
   */
  cacheFile?: string;
}

export function createFileDigests(options: FileDigestsOptions = {}): FileDigests {
  const cache = new Map<string, { identity: string; statAt: number; digest: Promise<FileDigest> }>();
  let hashedFiles = 0;
  const { cacheFile } = options;
  let stored: Promise<Map<string, StoredDigest>> | undefined;
  let saving: Promise<void> = Promise.resolve();
  const load = (): Promise<Map<string, StoredDigest>> => {
    stored ??= cacheFile
      ? readFile(cacheFile, 'utf8').then(
          (text) => new Map(Object.entries(JSON.parse(text) as Record<string, StoredDigest>)),
          () => new Map(),
        )
      : Promise.resolve(new Map());
    return stored.catch(() => new Map());
  };
  // Writes are chained, each whole file through a rename, so a crash leaves the old or the new cache.
  const save = (filePath: string, entry: StoredDigest) => {
    if (!cacheFile) return;
    saving = saving.then(async () => {
      const entries = await load();
      entries.set(filePath, entry);
      const temporary = `${cacheFile}.${process.pid}.tmp`;
      await writeFile(temporary, JSON.stringify(Object.fromEntries(entries)));
      await rename(temporary, cacheFile);
    });
    saving = saving.catch(() => undefined);
  };

  /**
   * Streams the open file through SHA-256 (reads run on libuv's pool, each chunk's update is
   * short), so a multi-gigabyte GGUF neither sits in memory nor blocks the event loop. The
   * handle pins the inode that was stat'ed: a rename over the path meanwhile does not mix files.
   */
  async function hash(
    handle: Awaited<ReturnType<typeof open>>,
    filePath: string,
    stat: Stats,
  ): Promise<{ result: FileDigest; changed: boolean }> {
    hashedFiles += 1;
    try {
      const hasher = createHash('sha256');
      for await (const chunk of handle.createReadStream({ highWaterMark: CHUNK_BYTES, autoClose: false, start: 0 })) {
        hasher.update(chunk as Buffer);
      }
      const after = await handle.stat();
      return {
        result: { digest: `sha256:${hasher.digest('hex')}`, file: path.basename(filePath), bytes: stat.size },
        changed: identity(after) !== identity(stat),
      };
    } finally {
      await handle.close();
    }
  }

  return {
    get hashedFiles() {
      return hashedFiles;
    },
    flush: () => saving,
    async digest(filePath, signal) {
      signal?.throwIfAborted();
      const handle = await open(filePath, 'r');
      let stat: Stats;
      const statAt = Date.now();
      try {
        stat = await handle.stat();
      } catch (error) {
        await handle.close();
        throw error;
      }
      const key = identity(stat);
      const trusted = (entry: { identity: string; statAt: number } | undefined) =>
        entry?.identity === key && stat.ctimeMs < entry.statAt - RACY_WINDOW_MS;
      const cached = cache.get(filePath);
      if (cached && trusted(cached)) {
        await handle.close();
        return abortable(cached.digest, signal);
      }
      const kept = (await load()).get(filePath);
      if (kept && trusted(kept)) {
        await handle.close();
        cache.set(filePath, { identity: key, statAt: kept.statAt, digest: Promise.resolve(kept.digest) });
        return kept.digest;
      }
      // Shared by every load of the same file, and not cancelled by one of them going away.
      const digest: Promise<FileDigest> = hash(handle, filePath, stat).then(({ result, changed }) => {
        // Written to while it was read: the digest describes no one version of the file.
        if (changed && cache.get(filePath)?.digest === digest) cache.delete(filePath);
        else if (!changed) save(filePath, { identity: key, statAt, digest: result });
        return result;
      });
      cache.set(filePath, { identity: key, statAt, digest });
      digest.catch(() => {
        if (cache.get(filePath)?.digest === digest) cache.delete(filePath);
      });
      return abortable(digest, signal);
    },
  };
}
