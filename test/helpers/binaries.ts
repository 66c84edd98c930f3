import { spawnSync } from 'node:child_process';

const INSTALL_HINT: Record<string, string> = {
  prometheus: 'apt-get install prometheus (Debian; or run bash .ci/run)',
  promtool: 'apt-get install prometheus (Debian; promtool comes with it)',
  'prometheus-alertmanager': 'apt-get install prometheus-alertmanager (Debian; or run bash .ci/run)',
  amtool: 'apt-get install prometheus-alertmanager (Debian; amtool comes with it)',
};

/**
 * Whether the named binaries are on PATH. In CI (CI=true) a missing one is an error that
 * says what to install; elsewhere the suite is skipped with a warning.
 */
export function binariesAvailable(...names: string[]): boolean {
  const missing = names.filter((name) => spawnSync('sh', ['-c', `command -v ${name}`]).status !== 0);
  if (missing.length === 0) return true;
  const hint = missing.map((name) => `${name}: ${INSTALL_HINT[name] ?? `install ${name}`}`).join('; ');
  if (process.env.CI === 'true') throw new Error(`missing binaries: ${hint}`);
  console.warn(`skipping: missing binaries: ${hint}`);
  return false;
}
