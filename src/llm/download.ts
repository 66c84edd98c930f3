import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BerthaError } from '../core/errors.ts';
import { isGgufFile } from '../gguf/index.ts';

export class ModelDownloadError extends BerthaError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('model_download_failed', message, 502, details);
  }
}

export interface DownloadModelOptions {
  url: string;
  /** Folder the file lands in, under the name the URL ends with. */
  dir: string;
  /** Expected SHA-256 (hex); a mismatch removes the file and fails. */
  sha256?: string | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: ((received: number, total: number | undefined) => void) | undefined;
}

export interface DownloadedModel {
  path: string;
  sha256: string;
  bytes: number;
}

function fileNameOf(url: string): string {
  const name = decodeURIComponent(new URL(url).pathname.split('/').pop() ?? '');
  if (!name || name.includes('..')) throw new ModelDownloadError(`cannot tell a file name from ${url}`, { url });
  return name;
}

/**
 * Streams a GGUF to `<dir>/<name>.part`, hashing as it goes, and renames it into place only
 * once it is complete, is a GGUF and matches the expected checksum.
 */
export async function downloadModel(options: DownloadModelOptions): Promise<DownloadedModel> {
  const target = path.join(options.dir, fileNameOf(options.url));
  const partial = `${target}.part`;
  await mkdir(options.dir, { recursive: true });
  const response = await fetch(options.url, options.signal ? { signal: options.signal } : {});
  if (!response.ok || !response.body) {
    throw new ModelDownloadError(`GET ${options.url} answered ${response.status} ${response.statusText}`, {
      url: options.url,
      status: response.status,
    });
  }
  const lengthHeader = response.headers.get('content-length');
  const total = lengthHeader ? Number(lengthHeader) : undefined;
  const hash = createHash('sha256');
  let received = 0;
  const body = Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>);
  body.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    received += chunk.length;
    options.onProgress?.(received, total);
  });
  try {
    await pipeline(body, createWriteStream(partial), options.signal ? { signal: options.signal } : {});
    if (total !== undefined && received !== total) {
      throw new ModelDownloadError(`download ended after ${received} of ${total} bytes`, { url: options.url });
    }
    const sha256 = hash.digest('hex');
    if (options.sha256 && options.sha256.toLowerCase() !== sha256) {
      throw new ModelDownloadError(`checksum mismatch: expected sha256 ${options.sha256}, got ${sha256}`, {
        url: options.url,
        expected: options.sha256,
        actual: sha256,
      });
    }
    if (!(await isGgufFile(partial))) {
      throw new ModelDownloadError(`${options.url} is not a GGUF file`, { url: options.url });
    }
    await rename(partial, target);
    return { path: target, sha256, bytes: received };
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  }
}
