import type { Command } from 'commander';
import { runRole } from '../run-role.ts';

export function registerUpCommand(program: Command): void {
  program
    .command('up')
    .description(
      'start the Bertha server on embedded defaults (data under --data-dir): serve and worker in one process',
    )
    .option('-m, --model <file.gguf>', 'GGUF model to serve (env BERTHA_MODEL)')
    .action(async (options: { model?: string }, command: Command) => {
      await runRole(command, 'all', { model: options.model, prepareStarterModel: true });
    });
}
