import { spawn } from 'node:child_process';
import path from 'node:path';
import { onTestFinished } from 'vitest';
import { createLogger } from '../../src/core/logger.ts';
import { createReadiness } from '../../src/core/readiness.ts';
import { BERTHA_VERSION } from '../../src/core/version.ts';
import type { MetadataDb } from '../../src/db/index.ts';
import { registerLineageRoutes } from '../../src/lineage/index.ts';
import { registerHealthRoutes } from '../../src/server/health.ts';
import { createHttpServer } from '../../src/server/http.ts';

/** The lineage API over `db` on a loopback port, with the health route the CLI probes. */
export async function startLineageServer(db: MetadataDb, dataDir: string) {
  const http = createHttpServer({ logger: createLogger('silent'), bodyLimitBytes: 1_000_000 });
  registerHealthRoutes(http, createReadiness(), BERTHA_VERSION);
  registerLineageRoutes(http, { db, dataDir });
  const url = await http.listen({ host: '127.0.0.1', port: 0 });
  onTestFinished(() => http.close());
  const get = async <T>(pathAndQuery: string): Promise<{ status: number; body: T; text: string }> => {
    const response = await fetch(`${url}${pathAndQuery}`);
    const text = await response.text();
    const json = response.headers.get('content-type')?.includes('application/json');
    return { status: response.status, body: (json ? JSON.parse(text) : undefined) as T, text };
  };
  return { url, port: new URL(url).port, get };
}

/** `bertha <args>` as a user runs it, against `dataDir` and the server on `port`. */
export function bertha(
  args: string[],
  options: { dataDir: string; port: string },
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [path.resolve('bin/bertha.js'), ...args, '--data-dir', options.dataDir, '--port', options.port],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}
