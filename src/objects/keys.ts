import { ValidationError } from '../core/errors.ts';

const MAX_KEY_BYTES = 1024;

/**
 * Object keys are `/`-separated names, as in S3. Spaces and any Unicode are fine; what could
 * escape a folder or confuse a store is not: empty, `.` or `..` segments, a leading `/`,
 * backslashes, control characters, more than 1024 bytes.
 */
export function assertSafeObjectKey(key: string): string {
  const reason = unsafeKeyReason(key);
  if (reason) throw new ValidationError(`invalid object key ${JSON.stringify(key)}: ${reason}`, { key });
  return key;
}

export function unsafeKeyReason(key: string): string | undefined {
  if (key.length === 0) return 'empty';
  if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) return `longer than ${MAX_KEY_BYTES} bytes`;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(key)) return 'contains a control character';
  if (key.includes('\\')) return 'contains a backslash';
  if (key.startsWith('/')) return 'starts with /';
  for (const segment of key.split('/')) {
    if (segment === '') return 'has an empty path segment';
    if (segment === '.' || segment === '..') return `has a '${segment}' path segment`;
  }
  return undefined;
}
