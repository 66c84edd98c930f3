import type { Command } from 'commander';
import { type BerthaRole, createBertha } from '../app.ts';
import { configFrom } from './options.ts';

/**
 * Starts Bertha in a role and keeps it running until SIGTERM or SIGINT, then closes it within
 * `server.shutdownTimeoutMs` (exit 0), or exits 1: what `up`, `serve` and `worker` share.
 */
export async function runRole(
  command: Command,
  role: BerthaRole,
  options: { model?: string | undefined; prepareStarterModel?: boolean } = {},
): Promise<void> {
  const { config, file } = configFrom(command, { model: options.model });
  const bertha = await createBertha(config, { role, prepareStarterModel: options.prepareStarterModel ?? false });
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
}
