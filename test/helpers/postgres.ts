import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { SCHEMA_CHANGE_LOCK } from '../../src/db/postgres.ts';

/** The PostgreSQL the dev and CI machines run (trust auth); override with BERTHA_TEST_POSTGRES_URL. */
export const POSTGRES_TEST_URL = process.env.BERTHA_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

const INSTALL_HINT =
  'PostgreSQL is not reachable at ' +
  `${POSTGRES_TEST_URL}. Install and start it (Debian: apt-get install postgresql && pg_ctlcluster 15 main start, ` +
  'then createdb test) or point BERTHA_TEST_POSTGRES_URL at one with trust auth.';

let reachable: Promise<boolean> | undefined;

async function probe(): Promise<boolean> {
  const client = new pg.Client({ connectionString: POSTGRES_TEST_URL, connectionTimeoutMillis: 2_000 });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Resolves true when PostgreSQL can be used. Outside CI a missing server skips the suite;
 * in CI (CI=true) it is an error, with what to install.
 */
export async function postgresAvailable(): Promise<boolean> {
  reachable ??= probe();
  const ok = await reachable;
  if (!ok && process.env.CI === 'true') throw new Error(INSTALL_HINT);
  if (!ok) console.warn(`skipping PostgreSQL tests: ${INSTALL_HINT}`);
  return ok;
}

/** A schema name of its own for one test run, so parallel runs never see each other's tables. */
export function freshSchemaName(): string {
  return `t_${randomBytes(6).toString('hex')}`;
}

export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: POSTGRES_TEST_URL });
  await client.connect();
  try {
    // A migration running beside this drop would see the schema's tables vanish mid-listing.
    await client.query('select pg_advisory_lock($1)', [SCHEMA_CHANGE_LOCK]);
    await client.query(`drop schema if exists "${schema}" cascade`);
  } finally {
    await client.end();
  }
}
