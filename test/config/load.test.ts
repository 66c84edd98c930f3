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

  test('a misspelt key in the file names the key it was probably meant to be', () => {
    const { dir } = withFile('server:\n  prot: 80\ntrainer:\n  starter:\n    enable: false\n');
    expect(() => loadConfig({}, {}, dir)).toThrow(
      'invalid bertha.yaml: server.prot: unknown setting (did you mean server.port?); ' +
        'trainer.starter.enable: unknown setting (did you mean trainer.starter.enabled?)',
    );
  });

  test('a mistyped BERTHA_* variable fails in one line naming the closest known variable', () => {
    const error = (() => {
      try {
        loadConfig({}, { BERTHA_TRAINER_STARTER_ENABLE: 'false' }, tempDir());
      } catch (caught) {
        return caught;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toBe(
      'invalid environment: BERTHA_TRAINER_STARTER_ENABLE: unknown setting ' +
        '(did you mean BERTHA_TRAINER_STARTER_ENABLED?)',
    );
    expect(() => loadConfig({}, { BERTHA_LOGLEVEL: 'debug', BERTHA_WHATEVER: '1' }, tempDir())).toThrow(
      'invalid environment: BERTHA_LOGLEVEL: unknown setting (did you mean BERTHA_LOG_LEVEL?); ' +
        'BERTHA_WHATEVER: unknown setting',
    );
  });

  test('every key, the short forms, and the BERTHA_* names that are not settings still load', () => {
    const env = {
      BERTHA_TRAINER_STARTER_ENABLED: 'false',
      BERTHA_SERVING_LLAMA_CPP_PARALLEL: '3',
      BERTHA_DATA_DIR: 'state',
      BERTHA_PORT: '9100',
      BERTHA_HOST: '0.0.0.0',
      BERTHA_LOG_LEVEL: 'warn',
      BERTHA_MODEL: 'models/a.gguf',
      BERTHA_DATABASE_URL: 'meta.sqlite',
      // The test suite's own settings.
      BERTHA_TEST_POSTGRES_URL: 'postgres://postgres@127.0.0.1:5432/test',
      BERTHA_TEST_MILVUS_ADDRESS: '127.0.0.1:19530',
      // What Kubernetes sets in every pod of a namespace with a Service named `bertha`.
      BERTHA_SERVICE_HOST: '10.96.0.11',
      BERTHA_SERVICE_PORT: '8080',
      BERTHA_SERVICE_PORT_HTTP: '8080',
      BERTHA_PORT_8080_TCP: 'tcp://10.96.0.11:8080',
      BERTHA_PORT_8080_TCP_PROTO: 'tcp',
      BERTHA_PORT_8080_TCP_PORT: '8080',
      BERTHA_PORT_8080_TCP_ADDR: '10.96.0.11',
    };
    const dir = tempDir();
    const { config } = loadConfig({}, env, dir);
    expect(config.trainer.starter.enabled).toBe(false);
    expect(config.serving.llamaCpp.parallel).toBe(3);
    expect(config.dataDir).toBe(path.join(dir, 'state'));
    expect(config.server).toMatchObject({ port: 9100, host: '0.0.0.0' });
    expect(config.log.level).toBe('warn');
    expect(config.serving.model).toBe(path.join(dir, 'models/a.gguf'));
    expect(config.database.url).toBe(path.join(dir, 'state', 'meta.sqlite'));
    // Kubernetes's BERTHA_PORT is a URL, never a port number: it is left alone, not an error.
    expect(loadConfig({}, { BERTHA_PORT: 'tcp://10.96.0.11:8080' }, dir).config.server.port).toBe(8080);
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
