import pg from 'pg';
import { afterAll, describe, expect, onTestFinished, test, vi } from 'vitest';
import { createLogger } from '../../src/core/logger.ts';
import { createPostgresDb } from '../../src/db/postgres.ts';
import { createNatsEventBus } from '../../src/events/nats-bus.ts';
import { startBertha } from '../helpers/bertha-in-process.ts';
import { deleteStream, freshStream, NATS_TEST_URL, natsAvailable } from '../helpers/nats.ts';
import { dropSchema, freshSchemaName, POSTGRES_TEST_URL, postgresAvailable } from '../helpers/postgres.ts';

interface Frame {
  id: string;
  event: string;
  data: { id: string; type: string; subject: string | null; createdAt: string };
}

/** Reads SSE frames from a fetch body until `count` events arrived. */
async function readFrames(response: Response, count: number): Promise<Frame[]> {
  const reader = response.body?.getReader();
  if (!reader) throw new Error('no body');
  const decoder = new TextDecoder();
  let buffer = '';
  const frames: Frame[] = [];
  while (frames.length < count) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end = buffer.indexOf('\n\n');
    while (end >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      end = buffer.indexOf('\n\n');
      const fields = Object.fromEntries(
        block
          .split('\n')
          .filter((line) => !line.startsWith(':') && line.includes(': '))
          .map((line) => [line.slice(0, line.indexOf(': ')), line.slice(line.indexOf(': ') + 2)]),
      );
      if (fields.data) frames.push({ id: fields.id ?? '', event: fields.event ?? '', data: JSON.parse(fields.data) });
    }
  }
  await reader.cancel();
  return frames;
}

test('GET /v1/stream relays bus events as SSE, filtered by type prefix', async () => {
  const bertha = await startBertha();
  const response = await fetch(`${bertha.url}/v1/stream?types=pipeline.,model.degraded`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toContain('text/event-stream');
  const frames = readFrames(response, 2);
  await bertha.bus.publish({ type: 'object.created', source: 't', subject: 'skipped.md', payload: {} });
  await bertha.bus.publish({ type: 'pipeline.run.started', source: 't', subject: 'run_1', payload: {} });
  await bertha.bus.publish({ type: 'model.degraded', source: 't', subject: 'm/1', payload: {} });
  const received = await frames;
  expect(received.map((frame) => frame.event)).toEqual(['pipeline.run.started', 'model.degraded']);
  expect(received[0]?.data.subject).toBe('run_1');
  expect(received[0]?.id).toBe(received[0]?.data.id);
});

test('a client reconnecting with Last-Event-ID first receives the events it missed, in order', async () => {
  const bertha = await startBertha();
  const first = await bertha.bus.publish({ type: 'a', source: 't', subject: '1', payload: {} });
  await bertha.bus.publish({ type: 'a', source: 't', subject: '2', payload: {} });
  await bertha.bus.publish({ type: 'a', source: 't', subject: '3', payload: {} });
  const response = await fetch(`${bertha.url}/v1/stream`, { headers: { 'last-event-id': first.event.id } });
  const frames = readFrames(response, 3);
  await bertha.bus.publish({ type: 'a', source: 't', subject: '4', payload: {} });
  expect((await frames).map((frame) => frame.data.subject)).toEqual(['2', '3', '4']);
});

test('shutdown ends open event streams instead of waiting for them', async () => {
  const bertha = await startBertha();
  const response = await fetch(`${bertha.url}/v1/stream`);
  const reader = response.body?.getReader();
  await reader?.read();
  await bertha.close();
  let done = false;
  while (!done) done = (await reader?.read())?.done ?? true;
  expect(done).toBe(true);
});

/** Polls until `check` holds; false when the deadline passed first. */
async function within(ms: number, check: () => Promise<boolean>): Promise<boolean> {
  // performance.now: tests hold Date on one millisecond while they poll.
  const deadline = performance.now() + ms;
  while (performance.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return false;
}

const postgresSchemas: string[] = [];
afterAll(async () => {
  await Promise.all(postgresSchemas.splice(0).map((schema) => dropSchema(schema)));
});

/** `--set` overrides that put Bertha's metadata on each database this machine has. */
const databases: { name: string; available: () => Promise<boolean>; set: () => string[] }[] = [
  { name: 'sqlite', available: async () => true, set: () => [] },
  {
    name: 'postgres',
    available: postgresAvailable,
    set: () => {
      const schema = freshSchemaName();
      postgresSchemas.push(schema);
      return ['database.driver=postgres', `database.url=${POSTGRES_TEST_URL}`, `database.schema=${schema}`];
    },
  },
];

for (const database of databases) {
  const available = await database.available();
  describe.skipIf(!available)(`event stream on ${database.name}`, () => {
    test('events published in the same millisecond reach a live and a reconnecting client exactly once', async () => {
      const bertha = await startBertha(database.set());
      const publish = (subject: string) => bertha.bus.publish({ type: 'same.ms', source: 't', subject, payload: {} });
      const before = await publish('before');
      const rounds = 10;
      const live = await fetch(`${bertha.url}/v1/stream`);
      const received = readFrames(live, 2 * rounds + 1);

      // Each round publishes two events at once, with the clock held on one millisecond.
      vi.useFakeTimers({ toFake: ['Date'] });
      const published: { id: string; subject: string | null; createdAt: string }[] = [];
      try {
        for (let round = 0; round < rounds; round++) {
          vi.setSystemTime(new Date(Date.UTC(2030, 0, 1, 0, 0, 0, round)));
          const pair = await Promise.all([publish(`r${round}a`), publish(`r${round}b`)]);
          expect(pair[0].event.createdAt).toBe(pair[1].event.createdAt);
          published.push(...pair.map((result) => result.event));
        }
      } finally {
        vi.useRealTimers();
      }
      const end = await publish('end');
      const expected = [...published.map((event) => event.id).sort(), end.event.id];
      // Every id is above the ones before it, so a client can resume after any of them.
      expect(published.map((event) => event.id).sort()).toEqual(published.map((event) => event.id));

      const liveFrames = await received;
      expect(liveFrames.map((frame) => frame.id)).toEqual(expected);

      // Resuming after the first of a same-millisecond pair gets its sibling and the rest, once each.
      const resumeAfter = published[4]?.id ?? '';
      const resumed = await fetch(`${bertha.url}/v1/stream`, { headers: { 'last-event-id': resumeAfter } });
      const replayed = readFrames(resumed, expected.filter((id) => id > resumeAfter).length + 1);
      const sentinel = await publish('sentinel');
      expect((await replayed).map((frame) => frame.id)).toEqual([
        ...expected.filter((id) => id > resumeAfter),
        sentinel.event.id,
      ]);

      // Resuming from before the first pair replays every one of them.
      const fromStart = await fetch(`${bertha.url}/v1/stream?types=same.`, {
        headers: { 'last-event-id': before.event.id },
      });
      const all = await readFrames(fromStart, expected.length + 1);
      expect(all.map((frame) => frame.id)).toEqual([...expected, sentinel.event.id]);
    });
  });
}

describe.skipIf(!(await postgresAvailable()))('event stream on postgres, commits out of order', () => {
  test('an event whose insert commits after a later one still reaches the stream, before it', async () => {
    const schema = freshSchemaName();
    postgresSchemas.push(schema);
    const bertha = await startBertha([
      'database.driver=postgres',
      `database.url=${POSTGRES_TEST_URL}`,
      `database.schema=${schema}`,
    ]);
    // Another session holds an uncommitted row with dedupe key `held`: the first publish below
    // passes the duplicate check, then waits on the unique index until that session ends.
    const holder = new pg.Client({ connectionString: POSTGRES_TEST_URL, options: `-c search_path=${schema}` });
    await holder.connect();
    onTestFinished(() => holder.end());
    // pg_stat_activity is read once per transaction: watch from outside the holder's.
    const observer = new pg.Client({ connectionString: POSTGRES_TEST_URL, options: `-c search_path=${schema}` });
    await observer.connect();
    onTestFinished(() => observer.end());
    await holder.query('begin');
    await holder.query(
      "insert into events (id, type, source, subject, dedupe_key, payload_json, created_at) values ('evt_holder', 'held', 't', null, 'held', 'null', '2030-01-01T00:00:00.000Z')",
    );
    const live = await fetch(`${bertha.url}/v1/stream`);
    const received = readFrames(live, 3);

    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2030-01-01T00:00:00.000Z'));
    const first = bertha.bus.publish({
      type: 'same.ms',
      source: 't',
      subject: 'first',
      dedupeKey: 'held',
      payload: {},
    });
    const waiting = await within(10_000, async () => {
      const { rows } = await observer.query(
        "select 1 from pg_stat_activity where wait_event_type = 'Lock' and query like 'insert into \"events\"%'",
      );
      return rows.length > 0;
    });
    expect(waiting).toBe(true);
    const second = bertha.bus.publish({ type: 'same.ms', source: 't', subject: 'second', payload: {} });
    // Give the second publish its chance to commit first (it must not: ids are stored in order).
    await within(500, async () => {
      const { rows } = await observer.query("select 1 from events where subject = 'second'");
      return rows.length > 0;
    });
    await holder.query('rollback');
    const [a, b] = await Promise.all([first, second]);
    vi.useRealTimers();
    expect(a.event.createdAt).toBe(b.event.createdAt);
    expect(a.event.id < b.event.id).toBe(true);
    const end = await bertha.bus.publish({ type: 'same.ms', source: 't', subject: 'end', payload: {} });
    expect((await received).map((frame) => frame.id)).toEqual([a.event.id, b.event.id, end.event.id]);
  });
});

test('a reconnecting client behind by more than one page of stored events gets all of them, in order', async () => {
  const bertha = await startBertha();
  const first = await bertha.bus.publish({ type: 'bulk', source: 't', subject: 'first', payload: {} });
  const ids: string[] = [];
  for (let index = 0; index < 1_100; index++) {
    ids.push((await bertha.bus.publish({ type: 'bulk', source: 't', subject: String(index), payload: {} })).event.id);
  }
  const response = await fetch(`${bertha.url}/v1/stream`, { headers: { 'last-event-id': first.event.id } });
  expect((await readFrames(response, ids.length)).map((frame) => frame.id)).toEqual(ids);
});

const natsAndPostgres = (await natsAvailable()) && (await postgresAvailable());

describe.skipIf(!natsAndPostgres)('event stream on a NATS bus shared by two processes', () => {
  test('a live client gets every event of both publishers once, though their ids interleave out of order', async () => {
    const schema = freshSchemaName();
    postgresSchemas.push(schema);
    const { stream, subjectPrefix } = freshStream();
    onTestFinished(() => deleteStream(stream).catch(() => undefined));
    const bertha = await startBertha([
      'database.driver=postgres',
      `database.url=${POSTGRES_TEST_URL}`,
      `database.schema=${schema}`,
      'events.bus=nats',
      `events.nats.servers=${NATS_TEST_URL}`,
      `events.nats.stream=${stream}`,
      `events.nats.subjectPrefix=${subjectPrefix}`,
    ]);
    // The other process: its own connections to the same schema and stream.
    const db = createPostgresDb({ url: POSTGRES_TEST_URL, schema, poolSize: 4 });
    await db.migrate();
    const other = await createNatsEventBus({
      db,
      logger: createLogger('silent'),
      servers: [NATS_TEST_URL],
      stream,
      subjectPrefix,
    });
    onTestFinished(async () => {
      await other.close();
      await db.close();
    });

    const perProcess = 40;
    const live = await fetch(`${bertha.url}/v1/stream?types=two.`);
    const received = readFrames(live, 2 * perProcess);
    // Both publish at once: ids minted in the same millisecond by two processes reach the
    // stream in whichever order their publishes land.
    const published = await Promise.all(
      Array.from({ length: perProcess }, (_, index) => [
        bertha.bus.publish({ type: 'two.a', source: 't', subject: `a${index}`, payload: {} }),
        other.publish({ type: 'two.b', source: 't', subject: `b${index}`, payload: {} }),
      ]).flat(),
    );
    const frames = await received;
    expect(frames.map((frame) => frame.id).sort()).toEqual(published.map((result) => result.event.id).sort());
  });
});
