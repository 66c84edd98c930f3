import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * The bearer token Alertmanager presents to `/events/alertmanager`: `monitor.gateway.token`
 * when set, otherwise one generated once under the data dir, so `bertha up` and
 * `bertha monitor render` agree on a fresh machine without anyone choosing a secret.
 */
export function gatewayToken(options: { configured: string; dataDir: string }): string {
  if (options.configured) return options.configured;
  const file = path.join(options.dataDir, 'gateway-token');
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  mkdirSync(options.dataDir, { recursive: true });
  const token = randomBytes(32).toString('base64url');
  try {
    writeFileSync(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
    return token;
  } catch (error) {
    // Another process created it first: use theirs.
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return readFileSync(file, 'utf8').trim();
    throw error;
  }
}
