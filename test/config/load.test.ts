import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { envNameFor, loadConfig, maskSecrets } from '../../src/config/index.ts';
import { ConfigError } from '../../src/core/errors.ts';
import { tempDir } from '../helpers/temp.ts';

function withFile(yaml: string): { dir: string; file: string } {
  const dir = tempDir();
  const file = path.join(dir, 'bertha.yaml');
  writeFileSync(file, yaml);
  return { dir, file };
}

describe('loadConfig', () => {
  test('embedded defaults put all data under ./.bertha', () => {
    const dir = tempDir();
    const { config, file } = loadConfig({}, {}, dir);
    expect(file).toBeUndefined();
    expect(config.dataDir).toBe(path.join(dir, '.bertha'));
    expect(config.database).toMatchObject({ driver: 'sqlite', url: path.join(dir, '.bertha', 'bertha.sqlite') });
    expect(config.server).toMatchObject({ host: '127.0.0.1', port: 8080 });
  });

  test('./bertha.yaml is read when present; env overrides it; flags override env', () => {
    const { dir } = withFile('server:\n  port: 9000\n  host: 0.0.0.0\nlog:\n  level: debug\n');
    expect(loadConfig({}, {}, dir).config.server).toMatchObject({ port: 9000, host: '0.0.0.0' });
    const env = { BERTHA_PORT: '9100', BERTHA_SERVER_SHUTDOWN_TIMEOUT_MS: '250', BERTHA_LOG_LEVEL: 'warn' };
    const fromEnv = loadConfig({}, env, dir).config;
    expect(fromEnv.server).toMatchObject({ port: 9100, shutdownTimeoutMs: 250 });
    expect(fromEnv.log.level).toBe('warn');
    const fromFlags = loadConfig(
      { port: '9200', host: '::1', dataDir: 'state', set: ['log.level=error'] },
      env,
      dir,
    ).config;
    expect(fromFlags.server).toMatchObject({ port: 9200, host: '::1' });
    expect(fromFlags.dataDir).toBe(path.join(dir, 'state'));
    expect(fromFlags.log.level).toBe('error');
  });

  test('--config and BERTHA_CONFIG name another file', () => {
    const { file } = withFile('server:\n  port: 7000\n');
    expect(loadConfig({ config: file }, {}).config.server.port).toBe(7000);
    expect(loadConfig({}, { BERTHA_CONFIG: file }).config.server.port).toBe(7000);
    expect(() => loadConfig({ config: '/nonexistent/bertha.yaml' }, {})).toThrow(/does not exist/);
  });

  test('a bad value fails with one line naming the key and what was expected', () => {
    const { dir } = withFile('server:\n  port: eighty\n');
    const error = (() => {
      try {
        loadConfig({}, {}, dir);
      } catch (caught) {
        return caught;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as ConfigError).message;
    expect(message).not.toContain('\n');
    expect(message).toMatch(/^invalid bertha\.yaml: server\.port: .*expected number/);
  });

  test('a misspelt key is rejected with its full path', () => {
    const { dir } = withFile('server:\n  prot: 80\n');
    expect(() => loadConfig({}, {}, dir)).toThrow(/server\.prot: unknown setting/);
  });

  test('invalid YAML and an out-of-range env value are clear errors', () => {
    const { dir } = withFile('server: [unclosed\n');
    expect(() => loadConfig({}, {}, dir)).toThrow(/not valid YAML/);
    expect(() => loadConfig({}, { BERTHA_PORT: '70000' }, tempDir())).toThrow(/server\.port/);
  });

  test('postgres needs a url', () => {
    expect(() => loadConfig({ set: ['database.driver=postgres'] }, {}, tempDir())).toThrow(/database\.url: required/);
  });

  test('env names are derived from the config path', () => {
    expect(envNameFor('server.shutdownTimeoutMs')).toBe('BERTHA_SERVER_SHUTDOWN_TIMEOUT_MS');
    expect(envNameFor('dataDir')).toBe('BERTHA_DATA_DIR');
  });
});

describe('maskSecrets', () => {
  test('hides secret-looking keys and URL passwords, keeps the rest', () => {
    expect(
      maskSecrets({
        database: { url: 'postgres://bertha:hunter2@db:5432/bertha', driver: 'postgres' },
        upstream: { apiKey: 'sk-123', baseUrl: 'https://api.example.com/v1' },
        webhook: { token: 'abc' },
      }),
    ).toEqual({
      database: { url: 'postgres://bertha:***@db:5432/bertha', driver: 'postgres' },
      upstream: { apiKey: '***', baseUrl: 'https://api.example.com/v1' },
      webhook: { token: '***' },
    });
  });
});
