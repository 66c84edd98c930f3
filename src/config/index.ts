export { type ConfigFlags, envNameFor, type LoadedConfig, loadConfig, maskSecrets } from './load.ts';
export { type Config, type ConfigInput, configSchema } from './schema.ts';
