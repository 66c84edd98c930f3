import type { Command } from 'commander';
import { runRole } from '../run-role.ts';

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description(
      'serve the HTTP API (chat, feedback, uploads, tracking) as one of several replicas beside `bertha worker`; needs events.bus: nats',
    )
    .option('-m, --model <file.gguf>', 'GGUF model to serve until the registry names a champion (env BERTHA_MODEL)')
    .action(async (options: { model?: string }, command: Command) => {
      await runRole(command, 'serve', { model: options.model });
    });
}
