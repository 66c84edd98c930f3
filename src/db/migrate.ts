import { type Kysely, Migrator } from 'kysely';
import { BerthaError } from '../core/errors.ts';
import type { SqlDialectName } from './dialect.ts';
import { migrationsFor } from './migrations/index.ts';

export async function runMigrations(db: Kysely<unknown>, dialect: SqlDialectName, schema?: string): Promise<string[]> {
  const migrations = migrationsFor(dialect);
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
    ...(schema ? { migrationTableSchema: schema } : {}),
    // Capabilities own numbered ranges of migrations; a data dir created before one of them
    // landed must still accept it.
    allowUnorderedMigrations: true,
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((result) => result.status === 'Error')?.migrationName;
    throw new BerthaError(
      'db_migration_failed',
      `migration ${failed ?? '(unknown)'} failed: ${(error as Error).message}`,
      500,
      undefined,
      {
        cause: error,
      },
    );
  }
  return (results ?? []).filter((result) => result.status === 'Success').map((result) => result.migrationName);
}
