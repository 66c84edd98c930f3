import type { Command } from 'commander';
import { openMetadataDb } from '../../adapters.ts';
import { type ApiKeyStore, createApiKeyStore, ROLES, type Role } from '../../auth/index.ts';
import { ValidationError } from '../../core/errors.ts';
import { configFrom } from '../options.ts';

async function withKeys<T>(command: Command, work: (keys: ApiKeyStore) => Promise<T>): Promise<T> {
  const { config } = configFrom(command);
  const db = openMetadataDb(config);
  try {
    await db.migrate();
    return await work(createApiKeyStore(db));
  } finally {
    await db.close();
  }
}

export function registerAuthCommand(program: Command): void {
  const auth = program.command('auth').description('manage API keys for the dashboard and admin APIs');

  auth
    .command('create-key')
    .description('create an API key and print it once (only its hash is stored)')
    .requiredOption('--role <role>', `one of ${ROLES.join(', ')}`)
    .option('--name <name>', 'what the key is for', 'cli')
    .action(async (options: { role: string; name: string }, command: Command) => {
      if (!(ROLES as readonly string[]).includes(options.role)) {
        throw new ValidationError(`--role must be one of ${ROLES.join(', ')}, got '${options.role}'`);
      }
      const created = await withKeys(command, (keys) =>
        keys.create({ name: options.name, role: options.role as Role }),
      );
      process.stderr.write(`created ${created.record.id} (${created.record.role}); the key is shown only now:\n`);
      process.stdout.write(`${created.key}\n`);
    });

  auth
    .command('list-keys')
    .description('list API keys (id, role, name, prefix, last use)')
    .action(async (_options, command: Command) => {
      const records = await withKeys(command, (keys) => keys.list());
      for (const record of records) {
        const state = record.revokedAt ? `revoked ${record.revokedAt}` : `last used ${record.lastUsedAt ?? 'never'}`;
        process.stdout.write(`${record.id}\t${record.role}\t${record.name}\t${record.keyPrefix}…\t${state}\n`);
      }
    });

  auth
    .command('revoke-key <id>')
    .description('revoke an API key at once')
    .action(async (id: string, _options, command: Command) => {
      const record = await withKeys(command, (keys) => keys.revoke(id));
      process.stdout.write(`revoked ${record.id} (${record.role}, ${record.name})\n`);
    });
}
