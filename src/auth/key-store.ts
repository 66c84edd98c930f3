import { createHash, randomBytes } from 'node:crypto';
import { NotFoundError } from '../core/errors.ts';
import { isoNow, newId } from '../core/ids.ts';
import type { MetadataDb } from '../db/index.ts';
import { isRole, type Role } from './roles.ts';

export interface ApiKeyRecord {
  id: string;
  name: string;
  role: Role;
  keyPrefix: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

export interface CreatedApiKey {
  record: ApiKeyRecord;
  /** The only time the key itself exists outside the client. */
  key: string;
}

export interface ApiKeyStore {
  create(input: { name: string; role: Role }): Promise<CreatedApiKey>;
  /** The key's record when it exists and is not revoked. */
  verify(key: string): Promise<ApiKeyRecord | undefined>;
  list(): Promise<ApiKeyRecord[]>;
  revoke(id: string): Promise<ApiKeyRecord>;
}

const KEY_PREFIX = 'bk_';
/** `last_used_at` is written at most this often per key, so reads do not turn into writes. */
const TOUCH_INTERVAL_MS = 60_000;

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

type Row = {
  id: string;
  name: string;
  role: string;
  key_prefix: string;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
};

function toRecord(row: Row): ApiKeyRecord {
  return {
    id: row.id,
    name: row.name,
    role: isRole(row.role) ? row.role : 'viewer',
    keyPrefix: row.key_prefix,
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
    revokedAt: row.revoked_at,
  };
}

const COLUMNS = ['id', 'name', 'role', 'key_prefix', 'created_at', 'last_used_at', 'revoked_at'] as const;

export function createApiKeyStore(db: MetadataDb): ApiKeyStore {
  const touched = new Map<string, number>();
  return {
    async create({ name, role }) {
      const key = `${KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
      const row = {
        id: newId('key'),
        name,
        role,
        key_hash: hashApiKey(key),
        key_prefix: key.slice(0, KEY_PREFIX.length + 6),
        created_at: isoNow(),
        last_used_at: null,
        revoked_at: null,
      };
      await db.kysely.insertInto('api_keys').values(row).execute();
      return { record: toRecord(row), key };
    },

    async verify(key) {
      if (!key.startsWith(KEY_PREFIX)) return undefined;
      const row = await db.kysely
        .selectFrom('api_keys')
        .select(COLUMNS)
        .where('key_hash', '=', hashApiKey(key))
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
      if (!row) return undefined;
      const now = Date.now();
      if (now - (touched.get(row.id) ?? 0) > TOUCH_INTERVAL_MS) {
        touched.set(row.id, now);
        row.last_used_at = new Date(now).toISOString();
        await db.kysely
          .updateTable('api_keys')
          .set({ last_used_at: row.last_used_at })
          .where('id', '=', row.id)
          .execute();
      }
      return toRecord(row);
    },

    async list() {
      const rows = await db.kysely.selectFrom('api_keys').select(COLUMNS).orderBy('id', 'asc').execute();
      return rows.map(toRecord);
    },

    async revoke(id) {
      const revokedAt = isoNow();
      await db.kysely
        .updateTable('api_keys')
        .set({ revoked_at: revokedAt })
        .where('id', '=', id)
        .where('revoked_at', 'is', null)
        .execute();
      const row = await db.kysely.selectFrom('api_keys').select(COLUMNS).where('id', '=', id).executeTakeFirst();
      if (!row) throw new NotFoundError('api key', id);
      return toRecord(row);
    },
  };
}
