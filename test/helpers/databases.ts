import path from 'node:path';
import { afterAll } from 'vitest';
import type { MetadataDb } from '../../src/db/index.ts';
import { createPostgresDb } from '../../src/db/postgres.ts';
import { createSqliteDb } from '../../src/db/sqlite.ts';
import { dropSchema, freshSchemaName, POSTGRES_TEST_URL, postgresAvailable } from './postgres.ts';
import { tempDir } from './temp.ts';

export interface DbFactory {
  name: 'sqlite' | 'postgres';
  /** Whether this database can run here (PostgreSQL may be missing outside CI). */
  available(): Promise<boolean>;
  /** A migrated, empty database of its own, closed and removed when the test finishes. */
  create(): Promise<MetadataDb>;
}

const openPostgresSchemas: string[] = [];

afterAll(async () => {
  await Promise.all(openPostgresSchemas.splice(0).map((schema) => dropSchema(schema)));
});

/** Every metadata DB adapter; contract suites run once per entry. */
export const dbFactories: DbFactory[] = [
  {
    name: 'sqlite',
    available: async () => true,
    create: async () => {
      const db = createSqliteDb({ path: path.join(tempDir(), 'bertha.sqlite') });
      await db.migrate();
      return db;
    },
  },
  {
    name: 'postgres',
    available: postgresAvailable,
    create: async () => {
      const schema = freshSchemaName();
      openPostgresSchemas.push(schema);
      const db = createPostgresDb({ url: POSTGRES_TEST_URL, schema, poolSize: 5 });
      await db.migrate();
      return db;
    },
  },
];
