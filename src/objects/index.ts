import type { Readable } from 'node:stream';
import type { ObjectStore } from './store.ts';

export { ObjectNotFoundError } from './errors.ts';
export { assertSafeObjectKey, unsafeKeyReason } from './keys.ts';
export type { ObjectBody, ObjectInfo, ObjectStore } from './store.ts';

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

/** Reads a whole object into memory (documents, small artifacts). */
export async function readObject(store: ObjectStore, key: string): Promise<Buffer> {
  return readAll(await store.get(key));
}
