import type { Command } from 'commander';
import { createBertha } from '../../app.ts';
import { configFrom } from '../options.ts';

export function registerUpCommand(program: Command): void {
  program
    .command('up')
    .description('start the Bertha server on embedded defaults (data under --data-dir)')
    .option('-m, --model <file.gguf>', 'GGUF model to serve (env BERTHA_MODEL)')
    .action(async (options: { model?: string }, command: Command) => {
      const { config, file } = configFrom(command, { model: options.model });
      const bertha = await createBertha(config, { prepareStarterModel: true });
      const url = await bertha.listen();
      bertha.logger.info({ url, config: file ?? '(defaults)', dataDir: config.dataDir }, 'bertha is up');

      let stopping = false;
      const stop = (signal: NodeJS.Signals) => {
        if (stopping) return;
        stopping = true;
        bertha.logger.info({ signal }, 'shutting down: finishing in-flight requests');
        const deadline = setTimeout(() => {
          bertha.logger.error({ timeoutMs: config.server.shutdownTimeoutMs }, 'shutdown timed out');
          process.exit(1);
        }, config.server.shutdownTimeoutMs);
        deadline.unref();
        bertha.close().then(
          () => process.exit(0),
          (error: unknown) => {
            bertha.logger.error({ err: error }, 'shutdown failed');
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    });
}
