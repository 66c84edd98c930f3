import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect, onTestFinished, test } from 'vitest';
import { createLogger } from '../../src/core/logger.ts';
import { createSqliteDb } from '../../src/db/sqlite.ts';
import type { BerthaEvent } from '../../src/events/index.ts';
import { createNatsEventBus } from '../../src/events/nats-bus.ts';
import { freshStream, natsServerBinary, waitForJetStream } from '../helpers/nats.ts';
import { freePort, startService, waitFor } from '../helpers/processes.ts';
import { tempDir } from '../helpers/temp.ts';

const natsServer = natsServerBinary();

test.skipIf(!natsServer)(
  'an event stored while NATS is down is sent by the outbox once NATS is back, and handled once',
  {
    timeout: 120_000,
  },
  async () => {
    const storeDir = mkdtempSync(path.join(tmpdir(), 'bertha-nats-outbox-'));
    onTestFinished(() => rmSync(storeDir, { recursive: true, force: true }));
    const port = await freePort();
    const natsArgs = ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', storeDir];
    const natsUrl = `nats://127.0.0.1:${port}`;
    let nats = startService(natsServer as string, natsArgs);
    await waitForJetStream(natsUrl);

    const db = createSqliteDb({ path: path.join(tempDir(), 'bertha.sqlite') });
    await db.migrate();
    const bus = await createNatsEventBus({
      db,
      logger: createLogger(process.env.DBG ? 'debug' : 'silent'),
      servers: [natsUrl],
      ...freshStream(),
      retryDelayMs: 50,
      outboxIntervalMs: 300,
    });
    onTestFinished(async () => {
      await bus.close();
      await db.close();
    });
    const handled: BerthaEvent[] = [];
    bus.subscribe('report.filed', (event) => void handled.push(event), { group: 'outbox-test' });
    const sentMark = async (id: string) =>
      (await db.kysely.selectFrom('events').select('sent').where('id', '=', id).executeTakeFirstOrThrow()).sent;

    const first = await bus.publish({ type: 'report.filed', source: 'test', subject: 'first', payload: { n: 1 } });
    await waitFor(async () => (handled.length === 1 ? true : undefined), {
      timeoutMs: 20_000,
      what: 'the first event',
    });
    expect(await sentMark(first.event.id)).toBe(1);

    nats.child.kill('SIGTERM');
    await new Promise((resolve) => nats.child.once('exit', resolve));
    // No dedupe key: a retry by the caller could not find it again. The publish still resolves,
    // because the event is stored; it waits in the outbox.
    const stored = await bus.publish({
      type: 'report.filed',
      source: 'test',
      subject: 'while-down',
      payload: { n: 2 },
    });
    expect(stored.duplicate).toBe(false);
    expect(await bus.get(stored.event.id)).toMatchObject({ subject: 'while-down' });
    expect(await sentMark(stored.event.id)).toBe(0);

    nats = startService(natsServer as string, natsArgs);
    await waitForJetStream(natsUrl);
    await waitFor(async () => (handled.length === 2 ? true : undefined), {
      timeoutMs: 60_000,
      what: 'the event stored while NATS was down to be handled',
      describe: () => nats.output().slice(-2_000),
    });
    expect(handled.map((event) => event.subject)).toEqual(['first', 'while-down']);
    expect(await sentMark(stored.event.id)).toBe(1);
    await bus.drain();
    expect(handled).toHaveLength(2);
  },
);
