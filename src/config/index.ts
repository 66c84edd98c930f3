export { type CommandTrainerSpec, commandTrainerSchema } from './command-trainer.ts';
export { type ConfigFlags, envNameFor, type LoadedConfig, loadConfig, maskSecrets } from './load.ts';
export { type Config, type ConfigInput, configSchema } from './schema.ts';
