import type { Command } from 'commander';
import { type ConfigFlags, type LoadedConfig, loadConfig } from '../config/index.ts';

export interface GlobalOptions {
  config?: string;
  port?: string;
  host?: string;
  dataDir?: string;
  set?: string[];
}

/** Reads the effective config from the global flags of whichever command is running. */
export function configFrom(command: Command, extra: Pick<ConfigFlags, 'model'> = {}): LoadedConfig {
  const options = command.optsWithGlobals<GlobalOptions>();
  return loadConfig({
    config: options.config,
    port: options.port,
    host: options.host,
    dataDir: options.dataDir,
    set: options.set,
    ...extra,
  });
}
