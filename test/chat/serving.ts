import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { expect } from 'vitest';
import YAML from 'yaml';
import { type Bertha, createBertha } from '../../src/app.ts';
import { loadConfig } from '../../src/config/index.ts';
import type { Retriever } from '../../src/knowledge/index.ts';

export interface Serving {
  bertha: Bertha;
  url: string;
  client: OpenAI;
  dir: string;
  close(): Promise<void>;
}

/** The request's OpenAI 400, or a failure if it was answered. */
export async function refusal(request: Promise<unknown>): Promise<InstanceType<typeof OpenAI.BadRequestError>> {
  const error = await request.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(OpenAI.BadRequestError);
  return error as InstanceType<typeof OpenAI.BadRequestError>;
}

/** Polls until `check` returns a value, or fails after `timeoutMs`. */
export async function eventually<T>(
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * Bertha in this process, configured through a bertha.yaml as a user would, listening on a
 * loopback port; resolves once the model is loaded (unless `waitForModel` is false).
 */
export async function startServing(
  serving: Record<string, unknown>,
  options: {
    retriever?: Retriever;
    waitForModel?: boolean;
    dir?: string;
    /** Other top-level sections of bertha.yaml (`rollout`, `evaluation` ...). */
    config?: Record<string, unknown>;
  } = {},
): Promise<Serving> {
  const dir = options.dir ?? mkdtempSync(path.join(tmpdir(), 'bertha-serving-'));
  const file = path.join(dir, 'bertha.yaml');
  writeFileSync(
    file,
    YAML.stringify({
      dataDir: dir,
      server: { host: '127.0.0.1', port: 0 },
      log: { level: 'warn' },
      serving: { llamaCpp: { gpu: 'off', contextSize: 512 }, ...serving },
      ...options.config,
    }),
  );
  const { config } = loadConfig({ config: file }, {}, dir);
  const bertha = await createBertha(config, options.retriever ? { retriever: options.retriever } : {});
  const url = await bertha.listen();
  if (options.waitForModel !== false) {
    await eventually(() => {
      const status = bertha.chat.status();
      if (status.detail.includes('failed')) throw new Error(status.detail);
      return status.ready ? true : undefined;
    }, 60_000);
  }
  return {
    bertha,
    url,
    dir,
    client: new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 }),
    async close() {
      await bertha.close();
      if (!options.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Reads one sample of a Prometheus text exposition (`name{labels} value`). */
export function sample(metricsText: string, series: string): number | undefined {
  const line = metricsText.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : undefined;
}
