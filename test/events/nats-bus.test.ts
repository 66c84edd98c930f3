import path from 'node:path';
import { afterAll, describe, expect, onTestFinished, test } from 'vitest';
import { DEFAULT_SENSORS, sensorSchema } from '../../src/config/schema.ts';
import { createLogger } from '../../src/core/logger.ts';
import type { MetadataDb } from '../../src/db/index.ts';
import { createPostgresDb } from '../../src/db/postgres.ts';
import { createSqliteDb } from '../../src/db/sqlite.ts';
import { type BerthaEvent, createSensors, type EventBus } from '../../src/events/index.ts';
import { createNatsEventBus } from '../../src/events/nats-bus.ts';
import { createRunStore } from '../../src/pipelines/index.ts';
import { startBertha } from '../helpers/bertha-in-process.ts';
import {
  deleteStream,
  freshStream,
  NATS_TEST_URL,
  natsAvailable,
  streamConsumers,
  streamMessages,
} from '../helpers/nats.ts';
import { dropSchema, freshSchemaName, POSTGRES_TEST_URL, postgresAvailable } from '../helpers/postgres.ts';
import { waitFor } from '../helpers/processes.ts';
import { tempDir } from '../helpers/temp.ts';

const logger = createLogger('silent');

/** One database that several "processes" open connections of their own to. */
interface SharedDb {
  name: 'sqlite' | 'postgres';
  available(): Promise<boolean>;
  /** Returns how a process connects to a new, empty database. */
  create(): () => MetadataDb;
}

const schemas: string[] = [];
afterAll(async () => {
  await Promise.all(schemas.splice(0).map((schema) => dropSchema(schema)));
});

const sharedDbs: SharedDb[] = [
  {
    name: 'sqlite',
    available: async () => true,
    create() {
      const file = path.join(tempDir(), 'bertha.sqlite');
      return () => createSqliteDb({ path: file });
    },
  },
  {
    name: 'postgres',
    available: postgresAvailable,
    create() {
      const schema = freshSchemaName();
      schemas.push(schema);
      return () => createPostgresDb({ url: POSTGRES_TEST_URL, schema, poolSize: 5 });
    },
  },
];

const nats = await natsAvailable();

for (const shared of sharedDbs) {
  const available = nats && (await shared.available());
  describe.skipIf(!available)(`NATS event bus over ${shared.name}`, () => {
    const stream = freshStream();
    afterAll(async () => {
      await deleteStream(stream.stream).catch(() => undefined);
    });

    /** A Bertha process: its own DB connection and bus; `stop` is its shutdown. */
    interface Process {
      db: MetadataDb;
      bus: EventBus;
      stop(): Promise<void>;
    }

    function processes(): () => Promise<Process> {
      const connect = shared.create();
      return async () => {
        const db = connect();
        await db.migrate();
        const bus = await createNatsEventBus({ db, logger, servers: [NATS_TEST_URL], ...stream, retryDelayMs: 50 });
        let stopping: Promise<void> | undefined;
        const stop = () => {
          stopping ??= (async () => {
            await bus.close();
            await db.close();
          })();
          return stopping;
        };
        onTestFinished(stop);
        return { db, bus, stop };
      };
    }

    test('an event runs one grouped handler in the deployment and every process’s own handlers', async () => {
      const start = processes();
      const [a, b] = [await start(), await start()];
      const grouped: string[] = [];
      const own = new Map<EventBus, BerthaEvent[]>([
        [a.bus, []],
        [b.bus, []],
      ]);
      /** What the database held for each event when a handler got it. */
      const storedOnDelivery: Promise<[BerthaEvent, BerthaEvent | undefined]>[] = [];
      for (const { bus } of [a, b]) {
        bus.subscribe('order.placed', (event) => void grouped.push(event.id), { group: 'workers' });
        bus.subscribe('order.placed', (event) => {
          own.get(bus)?.push(event);
          storedOnDelivery.push(bus.get(event.id).then((stored) => [event, stored]));
        });
      }

      const published: string[] = [];
      for (let i = 0; i < 6; i++) {
        const from = i % 2 === 0 ? a : b;
        const { event } = await from.bus.publish({
          type: 'order.placed',
          source: 'test',
          subject: `o${i}`,
          payload: { i },
        });
        published.push(event.id);
      }
      await a.bus.drain();
      await b.bus.drain();

      expect([...grouped].sort()).toEqual(published);
      for (const events of own.values()) expect(events.map((event) => event.id)).toEqual(published);
      for (const [event, stored] of await Promise.all(storedOnDelivery)) expect(stored).toEqual(event);
      expect((await a.bus.list({ type: 'order.placed' })).map((event) => event.id)).toEqual([...published].reverse());
    });

    test('a grouped handler that throws gets the event again, and the second attempt counts', async () => {
      const start = processes();
      const [a, b] = [await start(), await start()];
      const attempts: string[] = [];
      const handler = (event: BerthaEvent) => {
        attempts.push(event.id);
        if (attempts.length === 1) throw new Error('mail server down');
      };
      a.bus.subscribe('mail.requested', handler, { group: 'workers' });
      b.bus.subscribe('mail.requested', handler, { group: 'workers' });

      const { event } = await a.bus.publish({ type: 'mail.requested', source: 'test', payload: { to: 'x@y.z' } });
      await a.bus.drain();

      expect(attempts).toEqual([event.id, event.id]);
    });

    test('a publish with a known dedupe key is one stored event, delivered once', async () => {
      const start = processes();
      const [a, b] = [await start(), await start()];
      const grouped: string[] = [];
      const own: string[] = [];
      a.bus.subscribe('alert.fired', (event) => void grouped.push(event.id), { group: 'workers' });
      b.bus.subscribe('alert.fired', (event) => void own.push(event.id));

      const input = { type: 'alert.fired', source: 'test', dedupeKey: 'group:fingerprint', payload: {} };
      const first = await a.bus.publish(input);
      const again = [await b.bus.publish(input), ...(await Promise.all([a.bus.publish(input), b.bus.publish(input)]))];
      await a.bus.drain();
      await b.bus.drain();

      expect(first.duplicate).toBe(false);
      expect(again.map((result) => [result.duplicate, result.event.id])).toEqual(
        again.map(() => [true, first.event.id]),
      );
      expect(await a.bus.list({ type: 'alert.fired' })).toHaveLength(1);
      expect(grouped).toEqual([first.event.id]);
      expect(own).toEqual([first.event.id]);
    });

    test('an acknowledged event is not delivered again after the process restarts', async () => {
      const start = processes();
      const before = await start();
      const firstRun: string[] = [];
      before.bus.subscribe('job.queued', (event) => void firstRun.push(event.id), { group: 'workers' });
      const { event: handled } = await before.bus.publish({ type: 'job.queued', source: 'test', payload: { n: 1 } });
      await before.bus.drain();
      expect(firstRun).toEqual([handled.id]);
      await before.stop();

      const after = await start();
      const secondRun: string[] = [];
      after.bus.subscribe('job.queued', (event) => void secondRun.push(event.id), { group: 'workers' });
      const { event: next } = await after.bus.publish({ type: 'job.queued', source: 'test', payload: { n: 2 } });
      await after.bus.drain();

      expect(secondRun).toEqual([next.id]);
    });

    test('an event published while the grouped subscriber is down reaches it when it is back', async () => {
      const start = processes();
      const worker = await start();
      worker.bus.subscribe('doc.uploaded', () => undefined, { group: 'workers' });
      // Handling one event shows the group's consumer exists before the worker goes away.
      await worker.bus.publish({ type: 'doc.uploaded', source: 'test', subject: 'a.md', payload: {} });
      await worker.bus.drain();
      await worker.stop();

      const api = await start();
      const { event: missed } = await api.bus.publish({
        type: 'doc.uploaded',
        source: 'test',
        subject: 'b.md',
        payload: {},
      });

      const back = await start();
      const delivered: string[] = [];
      back.bus.subscribe('doc.uploaded', (event) => void delivered.push(event.id), { group: 'workers' });
      await expect.poll(() => delivered, { timeout: 10_000 }).toEqual([missed.id]);
    });

    test('sensors in two processes record one trigger per event', async () => {
      const start = processes();
      const [a, b] = [await start(), await start()];
      const rules = DEFAULT_SENSORS.map((sensor) => sensorSchema.parse(sensor));
      for (const { db, bus } of [a, b]) {
        const sensors = createSensors({ triggers: createRunStore(db).triggers, bus, rules, logger });
        onTestFinished(sensors.start());
      }

      const ids: string[] = [];
      for (const [i, from] of [a, b, a, b].entries()) {
        const key = `docs/${i}.md`;
        const { event } = await from.bus.publish({
          type: 'object.created',
          source: 'test',
          subject: key,
          payload: { key },
        });
        ids.push(event.id);
      }
      await a.bus.drain();
      await b.bus.drain();

      const triggers = await a.db.kysely.selectFrom('pipeline_triggers').selectAll().orderBy('id').execute();
      expect(triggers.map((trigger) => [trigger.event_id, trigger.status])).toEqual(ids.map((id) => [id, 'pending']));
    });
  });
}

test('opening the bus without a reachable NATS fails as unavailable', async () => {
  const db = createSqliteDb({ path: ':memory:' });
  onTestFinished(() => db.close());
  await expect(createNatsEventBus({ db, logger, servers: ['nats://127.0.0.1:1'] })).rejects.toMatchObject({
    code: 'unavailable',
    message: expect.stringContaining('nats://127.0.0.1:1'),
  });
});

test.skipIf(!nats)('a Bertha configured with events.bus nats publishes to the stream and its sensors act', async () => {
  const { stream, subjectPrefix } = freshStream();
  onTestFinished(() => deleteStream(stream));
  const bertha = await startBertha([
    'events.bus=nats',
    `events.nats.servers=${NATS_TEST_URL}`,
    `events.nats.stream=${stream}`,
    `events.nats.subjectPrefix=${subjectPrefix}`,
  ]);
  const { event } = await bertha.bus.publish({
    type: 'object.created',
    source: 'test',
    subject: 'a.md',
    payload: { key: 'a.md' },
  });
  await bertha.bus.drain();
  expect(await streamMessages(stream)).toBe(1);
  expect(await bertha.pipelines.store.triggers.list({ eventId: event.id })).toHaveLength(1);
  await bertha.close();
});

test.skipIf(!nats)(
  'a group none of whose processes comes back within the keeping time loses its consumer',
  {
    timeout: 90_000,
  },
  async () => {
    const { stream, subjectPrefix } = freshStream();
    onTestFinished(() => deleteStream(stream).catch(() => undefined));
    const db = createSqliteDb({ path: ':memory:' });
    await db.migrate();
    onTestFinished(() => db.close());
    const open = () =>
      createNatsEventBus({ db, logger, servers: [NATS_TEST_URL], stream, subjectPrefix, maxAgeMs: 2_000 });
    const bus = await open();
    bus.subscribe('report.filed', () => undefined, { group: 'gone' });
    const stays = await open();
    stays.subscribe('report.filed', () => undefined, { group: 'stays' });
    const durable = async () => (await streamConsumers(stream)).filter((name) => /^(gone|stays)_/.test(name)).sort();
    await waitFor(async () => ((await durable()).length === 2 ? true : undefined), {
      timeoutMs: 20_000,
      what: 'both durable consumers',
    });
    await bus.close();
    // NATS deletes an inactive consumer on its own sweep, a few seconds after the threshold.
    const remaining = await waitFor(
      async () => {
        const names = await durable();
        return names.some((name) => name.startsWith('gone_')) ? undefined : names;
      },
      { timeoutMs: 60_000, what: 'the consumer of the group that left to be deleted' },
    );
    // The group still running keeps its consumer, however long it sees no event.
    expect(remaining).toEqual([expect.stringMatching(/^stays_/)]);
    await stays.close();
  },
);
