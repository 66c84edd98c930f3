import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ObjectNotFoundError } from './errors.ts';
import { assertSafeObjectKey } from './keys.ts';
import type { ObjectBody, ObjectInfo, ObjectStore } from './store.ts';

/** Temporary upload files live beside the objects but never show up as objects. */
const TEMP_PREFIX = '.bertha-upload-';

function infoFrom(key: string, stats: { size: number; mtimeMs: number; mtime: Date }): ObjectInfo {
  return {
    key,
    size: stats.size,
    etag: `${stats.size.toString(16)}-${Math.floor(stats.mtimeMs * 1000).toString(16)}`,
    lastModified: stats.mtime.toISOString(),
  };
}

async function fsyncPath(target: string): Promise<void> {
  const handle = await open(target, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** A folder as an object store: key `a/b.md` is the file `<root>/a/b.md`. */
export function createFsObjectStore(options: { root: string }): ObjectStore {
  const root = path.resolve(options.root);

  function fileFor(key: string): string {
    assertSafeObjectKey(key);
    const file = path.resolve(root, ...key.split('/'));
    // Key validation already forbids `..`; this guards against anything it missed.
    if (!file.startsWith(root + path.sep)) throw new ObjectNotFoundError(key);
    return file;
  }

  async function* walk(dir: string, prefixKey: string): AsyncGenerator<ObjectInfo> {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      if (entry.name.startsWith(TEMP_PREFIX)) continue;
      const key = prefixKey ? `${prefixKey}/${entry.name}` : entry.name;
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) yield* walk(full, key);
      else if (entry.isFile()) yield infoFrom(key, await stat(full));
    }
  }

  return {
    kind: 'fs',

    async put(key: string, body: ObjectBody) {
      const file = fileFor(key);
      await mkdir(path.dirname(file), { recursive: true });
      const temp = path.join(path.dirname(file), `${TEMP_PREFIX}${randomBytes(6).toString('hex')}`);
      try {
        const source =
          body instanceof Readable ? body : Readable.from([typeof body === 'string' ? Buffer.from(body) : body]);
        await pipeline(source, createWriteStream(temp));
        // Durable before acknowledged: data, then the rename, reach the disk.
        await fsyncPath(temp);
        await rename(temp, file);
        await fsyncPath(path.dirname(file));
      } catch (error) {
        await rm(temp, { force: true });
        throw error;
      }
      return infoFrom(key, await stat(file));
    },

    async get(key: string) {
      const file = fileFor(key);
      try {
        const stats = await stat(file);
        if (!stats.isFile()) throw new ObjectNotFoundError(key);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new ObjectNotFoundError(key);
        throw error;
      }
      return createReadStream(file);
    },

    async head(key: string) {
      try {
        const stats = await stat(fileFor(key));
        return stats.isFile() ? infoFrom(key, stats) : undefined;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw error;
      }
    },

    async *list(prefix = '') {
      // Walk only the folder the prefix points into, then filter by the full prefix.
      const slash = prefix.lastIndexOf('/');
      const folderKey = slash >= 0 ? prefix.slice(0, slash) : '';
      const folder = folderKey ? fileFor(folderKey) : root;
      for await (const info of walk(folder, folderKey)) {
        if (info.key.startsWith(prefix)) yield info;
      }
    },

    async delete(key: string) {
      await rm(fileFor(key), { force: true });
    },
  };
}
