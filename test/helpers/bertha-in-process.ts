import { onTestFinished } from 'vitest';
import { type Bertha, createBertha } from '../../src/app.ts';
import { loadConfig } from '../../src/config/index.ts';
import { createLogger } from '../../src/core/logger.ts';
import { tempDir } from './temp.ts';

/**
 * A real Bertha (SQLite in a temp data dir, real HTTP on a loopback port) in the test's
 * process, for tests that publish on its event bus or read its stores directly.
 */
export async function startBertha(set: string[] = []): Promise<Bertha & { url: string }> {
  const { config } = loadConfig({ dataDir: tempDir(), port: 0, set }, {}, tempDir());
  const bertha = await createBertha(config, { logger: createLogger('silent') });
  const url = await bertha.listen();
  onTestFinished(() => bertha.close());
  return Object.assign(bertha, { url });
}
