import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { expect } from 'vitest';

/** runc and the machine's rlimits (deploy/image/containers.conf): what podman needs on these machines. */
const ENV = { ...process.env, CONTAINERS_CONF: path.resolve('deploy/image/containers.conf') };

export interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs podman; without a systemd, podman logs an error for every healthcheck timer, which is noise here. */
export function podman(args: string[]): Ran {
  const result = spawnSync('podman', args, { encoding: 'utf8', env: ENV, maxBuffer: 16 * 1024 * 1024 });
  const stderr = result.stderr
    .split('\n')
    .filter((line) => !line.includes('unable to get systemd connection'))
    .join('\n');
  return { status: result.status, stdout: result.stdout, stderr };
}

/** podman that must succeed; returns its stdout. */
export function podmanOk(args: string[]): string {
  const result = podman(args);
  expect(result.status, `podman ${args.join(' ')}:\n${result.stdout}${result.stderr}`).toBe(0);
  return result.stdout.trim();
}

/**
 * Builds the image with deploy/image/build.sh (the CI base, then the Containerfile with cached
 * layers: .ci/run builds it before the tests, so here it is a cache hit) and returns its name.
 */
export function buildImage(): string {
  const result = spawnSync('bash', [path.resolve('deploy/image/build.sh')], {
    encoding: 'utf8',
    env: ENV,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.status !== 0) throw new Error(`deploy/image/build.sh failed:\n${result.stderr.slice(-4000)}`);
  return result.stdout.trim().split('\n').pop() as string;
}

/** Polls `check` until it returns true or the deadline passes. */
export async function until(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** `node -e` inside a running container: Node images have no curl. */
export function fetchInside(container: string, url: string, init?: RequestInit): Ran {
  const script = `fetch(${JSON.stringify(url)}, ${JSON.stringify(init ?? {})}).then(async (r) => { process.stdout.write(JSON.stringify({ status: r.status, body: await r.text() })); }, (e) => { process.stderr.write(String(e)); process.exit(1); })`;
  return podman(['exec', container, 'node', '-e', script]);
}
