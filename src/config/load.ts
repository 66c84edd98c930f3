import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../core/errors.ts';
import { type Config, configSchema } from './schema.ts';

export interface ConfigFlags {
  config?: string | undefined;
  port?: number | string | undefined;
  host?: string | undefined;
  dataDir?: string | undefined;
  /** GGUF file to serve (`bertha up --model`). */
  model?: string | undefined;
  /** `path.to.key=value` pairs from repeated `--set`. */
  set?: string[] | undefined;
}

export interface LoadedConfig {
  config: Config;
  /** The YAML file that was read, if any. */
  file: string | undefined;
}

/** Short environment names kept for the settings people reach for first. */
const ENV_ALIASES: Record<string, string> = {
  BERTHA_PORT: 'server.port',
  BERTHA_HOST: 'server.host',
  BERTHA_DATABASE_URL: 'database.url',
  BERTHA_LOG_LEVEL: 'log.level',
  BERTHA_MODEL: 'serving.model',
};

/**
 * `BERTHA_*` names that are not settings, so an unknown name is not an error for them: the
 * config file's own variable, the key the CLI presents to a server with auth (`BERTHA_API_KEY`,
 * a credential of the client, not of the server), the test suite's (`BERTHA_TEST_POSTGRES_URL`,
 * `BERTHA_TEST_MILVUS_ADDRESS`), and the service links Kubernetes puts in every pod of a
 * namespace with a Service named `bertha` (`BERTHA_SERVICE_HOST`, `BERTHA_PORT_8080_TCP_ADDR`,
 * `BERTHA_PORT=tcp://10.0.0.11:8080`; kubernetes.io, Service, "Environment variables").
 */
function isNotASetting(name: string, value: string): boolean {
  return (
    name === 'BERTHA_CONFIG' ||
    name === 'BERTHA_API_KEY' ||
    name.startsWith('BERTHA_TEST_') ||
    /^BERTHA_SERVICE_(HOST|PORT)(_\w+)?$/.test(name) ||
    /^BERTHA_PORT_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?$/.test(name) ||
    (name === 'BERTHA_PORT' && /^(tcp|udp|sctp):\/\//.test(value))
  );
}

type Leaf = { path: string; takesRawString: boolean };

function unwrap(schema: z.ZodType): z.ZodType {
  let current = schema;
  while (current instanceof z.ZodDefault || current instanceof z.ZodOptional || current instanceof z.ZodNullable) {
    current = current.unwrap() as z.ZodType;
  }
  return current;
}

function leavesOf(schema: z.ZodType, prefix: string[] = []): Leaf[] {
  const inner = unwrap(schema);
  if (inner instanceof z.ZodObject) {
    return Object.entries(inner.shape as Record<string, z.ZodType>).flatMap(([key, child]) =>
      leavesOf(child, [...prefix, key]),
    );
  }
  const takesRawString = inner instanceof z.ZodString || inner instanceof z.ZodEnum;
  return [{ path: prefix.join('.'), takesRawString }];
}

function screamingSnake(segment: string): string {
  return segment.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

/** `server.shutdownTimeoutMs` is set by `BERTHA_SERVER_SHUTDOWN_TIMEOUT_MS`. */
export function envNameFor(configPath: string): string {
  return `BERTHA_${configPath.split('.').map(screamingSnake).join('_')}`;
}

const LEAVES = new Map(leavesOf(configSchema).map((leaf) => [leaf.path, leaf]));

/** Every environment name that sets a key, with the key's path. */
const ENV_SETTINGS = new Map<string, string>([
  ...[...LEAVES.keys()].map((leaf): [string, string] => [envNameFor(leaf), leaf]),
  ...Object.entries(ENV_ALIASES),
]);

/** Every key path of the schema, leaves and the objects above them. */
const KEY_PATHS = new Set(
  [...LEAVES.keys()].flatMap((leaf) => leaf.split('.').map((_, i, keys) => keys.slice(0, i + 1).join('.'))),
);

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current[j] = Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, substitution);
    }
    previous = current;
  }
  return previous[b.length] as number;
}

/** The known name nearest to a misspelt one, if one is near enough to be what was meant. */
function closest(name: string, known: Iterable<string>): string | undefined {
  let best: { name: string; distance: number } | undefined;
  for (const candidate of known) {
    const distance = editDistance(name, candidate);
    if (!best || distance < best.distance) best = { name: candidate, distance };
  }
  return best && best.distance <= Math.max(2, Math.floor(name.length / 4)) ? best.name : undefined;
}

function unknownSetting(name: string, known: Iterable<string>): string {
  const suggestion = closest(name, known);
  return `${name}: unknown setting${suggestion ? ` (did you mean ${suggestion}?)` : ''}`;
}

function scalar(configPath: string, raw: string): unknown {
  const leaf = LEAVES.get(configPath);
  if (leaf?.takesRawString) return raw;
  try {
    return YAML.parse(raw);
  } catch {
    return raw;
  }
}

function setPath(target: Record<string, unknown>, configPath: string, value: unknown): void {
  const keys = configPath.split('.');
  let node = target;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[keys[keys.length - 1] as string] = value;
}

function readYaml(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read config file ${file}: ${(error as Error).message}`, { file });
  }
  let parsed: unknown;
  try {
    parsed = YAML.parse(text);
  } catch (error) {
    const message = (error as Error).message.split('\n')[0];
    throw new ConfigError(`${file}: not valid YAML: ${message}`, { file });
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError(`${file}: expected a mapping of settings at the top level`, { file });
  }
  return parsed as Record<string, unknown>;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const where = issue.path.length > 0 ? issue.path.join('.') : '(top level)';
  if (issue.code === 'unrecognized_keys') {
    const prefix = issue.path.length > 0 ? `${issue.path.join('.')}.` : '';
    const siblings = [...KEY_PATHS].filter((key) => key.startsWith(prefix) && !key.includes('.', prefix.length));
    return issue.keys.map((key) => unknownSetting([...issue.path, key].join('.'), siblings)).join(', ');
  }
  return `${where}: ${issue.message}`;
}

/**
 * Effective config = schema defaults < bertha.yaml < BERTHA_* environment < command-line flags.
 * The result has absolute paths and every derived default filled in.
 */
export function loadConfig(
  flags: ConfigFlags = {},
  env: NodeJS.ProcessEnv = process.env,
  cwd = process.cwd(),
): LoadedConfig {
  const explicitFile = flags.config ?? env.BERTHA_CONFIG;
  const defaultFile = path.join(cwd, 'bertha.yaml');
  const file = explicitFile ? path.resolve(cwd, explicitFile) : existsSync(defaultFile) ? defaultFile : undefined;
  if (explicitFile && file && !existsSync(file)) {
    throw new ConfigError(`config file ${file} does not exist`, { file });
  }
  const raw: Record<string, unknown> = file ? readYaml(file) : {};

  const unknownNames: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || !name.startsWith('BERTHA_') || isNotASetting(name, value)) continue;
    const configPath = ENV_SETTINGS.get(name);
    if (configPath) setPath(raw, configPath, scalar(configPath, value));
    else unknownNames.push(name);
  }
  if (unknownNames.length > 0) {
    const problems = unknownNames.map((name) => unknownSetting(name, ENV_SETTINGS.keys()));
    throw new ConfigError(`invalid environment: ${problems.join('; ')}`, { variables: unknownNames });
  }

  if (flags.port !== undefined) setPath(raw, 'server.port', scalar('server.port', String(flags.port)));
  if (flags.host !== undefined) setPath(raw, 'server.host', flags.host);
  if (flags.dataDir !== undefined) setPath(raw, 'dataDir', flags.dataDir);
  if (flags.model !== undefined) setPath(raw, 'serving.model', flags.model);
  for (const assignment of flags.set ?? []) {
    const eq = assignment.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--set expects key.path=value, got '${assignment}'`);
    const configPath = assignment.slice(0, eq);
    setPath(raw, configPath, scalar(configPath, assignment.slice(eq + 1)));
  }

  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const relative = file ? path.relative(cwd, file) : '';
    const source = file ? (relative.startsWith('..') ? file : relative) : 'config';
    const problems = result.error.issues.map(describeIssue).join('; ');
    throw new ConfigError(`invalid ${source}: ${problems}`, { file, issues: result.error.issues });
  }
  return { config: resolveConfig(result.data, cwd), file };
}

/** Where Prometheus and Alertmanager on this machine reach Bertha; a wildcard bind is reached on loopback. */
function defaultBerthaUrl(config: Config): string {
  const host = ['0.0.0.0', '::', ''].includes(config.server.host) ? '127.0.0.1' : config.server.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${config.server.port}`;
}

function resolveConfig(config: Config, cwd: string): Config {
  const dataDir = path.resolve(cwd, config.dataDir);
  const databaseUrl =
    config.database.driver === 'sqlite'
      ? path.resolve(dataDir, config.database.url || 'bertha.sqlite')
      : config.database.url;
  if (config.database.driver === 'postgres' && !databaseUrl) {
    throw new ConfigError('invalid config: database.url: required when database.driver is postgres');
  }
  return {
    ...config,
    dataDir,
    database: { ...config.database, url: databaseUrl },
    objects: { ...config.objects, root: path.resolve(dataDir, config.objects.root || 'objects') },
    serving: {
      ...config.serving,
      model: config.serving.model ? path.resolve(cwd, config.serving.model) : '',
      adapters: config.serving.adapters.map((adapter) => ({ ...adapter, path: path.resolve(cwd, adapter.path) })),
    },
    monitor: { ...config.monitor, berthaUrl: config.monitor.berthaUrl || defaultBerthaUrl(config) },
    knowledge: {
      ...config.knowledge,
      lancedbPath: path.resolve(dataDir, config.knowledge.lancedbPath || 'vectors'),
    },
  };
}

const SECRET_KEY = /(password|secret|token|apikey|api_key|key)$/i;

/** A copy safe to print: secret-looking keys and URL passwords are replaced by `***`. */
export function maskSecrets(value: unknown, key = ''): unknown {
  if (Array.isArray(value)) return value.map((item) => maskSecrets(item));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, maskSecrets(v, k)]));
  }
  if (typeof value === 'string') {
    if (value && SECRET_KEY.test(key)) return '***';
    return value.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]+:)[^@]+@/i, '$1***@');
  }
  return value;
}
