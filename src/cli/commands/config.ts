import type { Command } from 'commander';
import YAML from 'yaml';
import { maskSecrets } from '../../config/index.ts';
import { configFrom } from '../options.ts';

export function registerConfigCommand(program: Command): void {
  const config = program.command('config').description('inspect the effective configuration');
  config
    .command('print')
    .description('print the effective config (file + BERTHA_* env + flags) with secrets masked')
    .option('--json', 'print JSON instead of YAML')
    .action((options: { json?: boolean }, command: Command) => {
      const loaded = configFrom(command);
      const masked = maskSecrets(loaded.config);
      process.stdout.write(options.json ? `${JSON.stringify(masked, null, 2)}\n` : YAML.stringify(masked));
    });
}
