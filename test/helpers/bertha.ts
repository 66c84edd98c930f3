import { onTestFinished } from 'vitest';
import { type Bertha, createBertha } from '../../src/app.ts';
import { loadConfig } from '../../src/config/index.ts';
import { tempDir } from './temp.ts';

/**
 * Bertha in-process on a fresh data dir, listening on a loopback port of its own, closed
 * when the test finishes. `set` takes `--set`-style `key.path=value` overrides.
 */
export async function startBertha(set: string[] = [], dataDir = tempDir()): Promise<Bertha> {
  const { config } = loadConfig({ dataDir, port: 0, set: ['log.level=silent', ...set] }, {});
  const bertha = await createBertha(config);
  onTestFinished(() => bertha.close());
  await bertha.listen();
  return bertha;
}
