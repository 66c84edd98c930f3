import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';

/** The NATS with JetStream the dev and CI machines run; override with BERTHA_TEST_NATS_URL. */
export const NATS_TEST_URL = process.env.BERTHA_TEST_NATS_URL ?? 'nats://127.0.0.1:4222';

const INSTALL_HINT =
  `NATS with JetStream is not reachable at ${NATS_TEST_URL}. Install and start it ` +
  '(Debian: apt-get install nats-server, then nats-server -js) or point BERTHA_TEST_NATS_URL at one.';

let reachable: Promise<boolean> | undefined;

async function probe(): Promise<boolean> {
  try {
    const nc = await connect({ servers: NATS_TEST_URL, timeout: 2_000, reconnect: false });
    try {
      await (await jetstreamManager(nc)).getAccountInfo();
      return true;
    } finally {
      await nc.close();
    }
  } catch {
    return false;
  }
}

/**
 * Resolves true when NATS JetStream can be used. Outside CI a missing server skips the suite;
 * in CI (CI=true) it is an error, with what to install.
 */
export async function natsAvailable(): Promise<boolean> {
  reachable ??= probe();
  const ok = await reachable;
  if (!ok && process.env.CI === 'true') throw new Error(INSTALL_HINT);
  if (!ok) console.warn(`skipping NATS tests: ${INSTALL_HINT}`);
  return ok;
}

/** A stream name and subject prefix of their own, so parallel runs never see each other's events. */
export function freshStream(): { stream: string; subjectPrefix: string } {
  const id = randomBytes(6).toString('hex');
  return { stream: `BERTHA_TEST_${id}`, subjectPrefix: `bertha_test_${id}.events` };
}

async function withManager<T>(work: (jsm: JetStreamManager) => Promise<T>): Promise<T> {
  const nc = await connect({ servers: NATS_TEST_URL });
  try {
    return await work(await jetstreamManager(nc));
  } finally {
    await nc.close();
  }
}

export async function deleteStream(stream: string): Promise<void> {
  await withManager((jsm) => jsm.streams.delete(stream));
}

/** How many messages the stream holds. */
export async function streamMessages(stream: string): Promise<number> {
  return withManager(async (jsm) => (await jsm.streams.info(stream)).state.messages);
}

/** The names of the stream's consumers. */
export async function streamConsumers(stream: string): Promise<string[]> {
  return withManager(async (jsm) => (await jsm.consumers.list(stream).next()).map((info) => info.name));
}

/** Resolves once JetStream answers at `url`, polling until `timeoutMs`. */
export async function waitForJetStream(url: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const nc = await connect({ servers: url, timeout: 1_000, reconnect: false });
      try {
        await (await jetstreamManager(nc)).getAccountInfo();
        return;
      } finally {
        await nc.close();
      }
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`JetStream did not answer at ${url} within ${timeoutMs} ms: ${error}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

const NATS_SERVER_HINT =
  'nats-server is needed for tests that restart a NATS of their own: apt-get install nats-server (Debian)';

/**
 * The nats-server binary (on PATH, or Debian's /usr/sbin/nats-server, which a user's PATH may
 * lack), for tests that restart a server of their own. Missing: an error in CI, a skip elsewhere.
 */
export function natsServerBinary(): string | undefined {
  const onPath = spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' }).stdout.trim();
  const binary = onPath || (existsSync('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : undefined);
  if (binary) return binary;
  if (process.env.CI === 'true') throw new Error(NATS_SERVER_HINT);
  console.warn(`skipping: ${NATS_SERVER_HINT}`);
  return undefined;
}
