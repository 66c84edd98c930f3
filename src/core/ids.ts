import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

function base32(value: bigint, length: number): string {
  let out = '';
  let rest = value;
  for (let i = 0; i < length; i++) {
    out = ALPHABET[Number(rest & 31n)] + out;
    rest >>= 5n;
  }
  return out;
}

let lastTime = 0;
let lastRandom = 0n;

/**
 * Time-ordered ids in the ULID layout (48-bit ms time, 80-bit random, lower-case Crockford
 * base32) behind a readable prefix such as `ans_`. Within one millisecond the random part is
 * incremented, so ids made by one process sort in creation order on both databases.
 */
export function newId(prefix: string, now = Date.now()): string {
  if (now <= lastTime) {
    lastRandom += 1n;
  } else {
    lastTime = now;
    lastRandom = BigInt(`0x${randomBytes(10).toString('hex')}`) >> 1n;
  }
  return `${prefix}_${base32(BigInt(lastTime), 10)}${base32(lastRandom, 16)}`;
}

/** Timestamps are stored as ISO-8601 UTC text: they sort as strings and read the same on both databases. */
export function isoNow(): string {
  return new Date().toISOString();
}
