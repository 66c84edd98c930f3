import { spawnSync } from 'node:child_process';

/** Debian packages that bring each tool the deploy tests run; .ci/run installs them. */
const INSTALL_HINT: Record<string, string> = {
  kubectl: 'apt-get install kubernetes-client (Debian; or run bash .ci/run)',
  podman: 'apt-get install podman runc (Debian; or run bash .ci/run)',
  runc: 'apt-get install runc (Debian; crun refuses this sandbox; or run bash .ci/run)',
  debootstrap: 'apt-get install debootstrap (Debian; builds the CI base image; or run bash .ci/run)',
};

/**
 * Whether the tools are on PATH. In CI (CI=true) a missing one is an error that says what to
 * install; elsewhere the suite is skipped with a warning.
 */
export function toolsAvailable(...names: string[]): boolean {
  const missing = names.filter((name) => spawnSync('sh', ['-c', `command -v ${name}`]).status !== 0);
  if (missing.length === 0) return true;
  const hint = missing.map((name) => `${name}: ${INSTALL_HINT[name] ?? `install ${name}`}`).join('; ');
  if (process.env.CI === 'true') throw new Error(`missing tools: ${hint}`);
  console.warn(`skipping: missing tools: ${hint}`);
  return false;
}
