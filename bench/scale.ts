import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { jetstream, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { connect, nanos } from '@nats-io/transport-node';
import YAML from 'yaml';
import { isoNow, newId } from '../src/core/ids.ts';
import { createLogger } from '../src/core/logger.ts';
import type { MetadataDb } from '../src/db/index.ts';
import { createPostgresDb } from '../src/db/postgres.ts';
import { createSqliteDb } from '../src/db/sqlite.ts';
import type { PublishInput } from '../src/events/bus.ts';
import { createLocalEventBus } from '../src/events/local-bus.ts';
import { createNatsEventBus } from '../src/events/nats-bus.ts';
import { type BerthaProcess, startBerthaCommand } from '../test/helpers/bertha-process.ts';
import { startFakeUpstream } from '../test/helpers/fake-upstream.ts';
import { deleteStream, NATS_TEST_URL, natsAvailable } from '../test/helpers/nats.ts';
import { dropSchema, POSTGRES_TEST_URL, postgresAvailable } from '../test/helpers/postgres.ts';
import { percentile, reportFigures, round } from './stats.ts';

/**
 * Scale-out on this machine (issue #22 item 7), against the PostgreSQL and the NATS JetStream
 * the tests use, each run on a schema and streams of its own, removed at the end.
 *
 * 1. Events/s through the NATS EventBus adapter (the events row, the JetStream publish, and
 *    delivery to a grouped subscriber), on a PostgreSQL and on a SQLite metadata DB, against
 *    a raw `js.publish` with ack of the same messages to a stream of the same configuration.
 *    Publishes are awaited one at a time, as a request handler does. After an uncounted
 *    warm-up round, rounds interleave the variants; a rate is the median round, a ratio the
 *    median of each round's own ratio. The in-process bus on the same PostgreSQL schema
 *    (the events row and nothing else) shows how much of the gap is the row.
 * 2. Upload-to-searchable: two `bertha serve` and one `bertha worker` on one schema and one
 *    stream (the scale-out test's setup: chat and embeddings from a fake OpenAI server). A
 *    document uploaded through server A is polled for on both servers; B is the figure, A
 *    the same-run reference (both learn of new chunks from the bus).
 * 3. An alias move through server A's MLflow API, timed until `GET /v1/models` on both
 *    servers names the new champion.
 */
const EVENTS = Number(process.env.BENCH_SCALE_EVENTS ?? 1_000);
const ROUNDS = Number(process.env.BENCH_SCALE_ROUNDS ?? 3);
const UPLOADS = Number(process.env.BENCH_SCALE_UPLOADS ?? 30);
const MOVES = Number(process.env.BENCH_SCALE_MOVES ?? 10);
const SEARCH_POLL_MS = 20;
const MODELS_POLL_MS = 5;
const MODELS = ['fake-a', 'fake-b', 'fake-c'];

const t0 = performance.now();
const loadAvgAtStart = loadavg()[0] ?? Number.NaN;
const log = (line: string) =>
  process.stderr.write(`[scale ${((performance.now() - t0) / 1000).toFixed(1)}s] ${line}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const median = (samples: number[]) => percentile(samples, 50);

async function until<T>(
  what: string,
  check: () => Promise<T | undefined>,
  limitMs: number,
  everyMs: number,
): Promise<T> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

type Cleanup = () => unknown;
const cleanups: Cleanup[] = [];
async function cleanUp(): Promise<void> {
  for (const cleanup of cleanups.splice(0).reverse()) {
    try {
      await cleanup();
    } catch (error) {
      log(`cleanup failed: ${(error as Error).message}`);
    }
  }
}

function tempFolder(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A schema of this run's own, dropped at the end. */
function freshSchema(): string {
  const schema = `bench_scale_${randomBytes(5).toString('hex')}`;
  cleanups.push(() => dropSchema(schema));
  return schema;
}

/** A stream and subject prefix of this run's own, deleted at the end. */
function freshStream(): { stream: string; subjectPrefix: string } {
  const id = randomBytes(5).toString('hex');
  const stream = `BERTHA_BENCH_${id}`;
  cleanups.push(() => deleteStream(stream).catch(() => undefined));
  return { stream, subjectPrefix: `bertha_bench_${id}.events` };
}

// ---- 1. Events/s -------------------------------------------------------------------------

/** An `object.created` event as an upload publishes it. */
function objectCreated(index: number): PublishInput<{ key: string; etag: string; size: number }> {
  const key = `documents/bench-${index}.md`;
  return { type: 'object.created', source: 'api', subject: key, payload: { key, etag: `etag-${index}`, size: 1_024 } };
}

/** Sequential `js.publish` with ack, to a stream configured as the adapter configures its own. */
async function rawJetStream(events: number): Promise<number> {
  const { stream, subjectPrefix } = freshStream();
  const nc = await connect({ servers: NATS_TEST_URL });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({
      name: stream,
      subjects: [`${subjectPrefix}.>`],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      max_age: nanos(7 * 24 * 3_600_000),
      duplicate_window: nanos(120_000),
    });
    const js = jetstream(nc);
    // The message the adapter sends: the stored event as JSON, its id as `Nats-Msg-Id`.
    const message = (index: number) => {
      const input = objectCreated(index);
      const event = { id: newId('evt'), ...input, dedupeKey: null, createdAt: isoNow() };
      return { subject: `${subjectPrefix}.${input.type}`, data: JSON.stringify(event), id: event.id };
    };
    const warm = message(-1);
    await js.publish(warm.subject, warm.data, { msgID: warm.id });
    const start = performance.now();
    for (let i = 0; i < events; i++) {
      const { subject, data, id } = message(i);
      await js.publish(subject, data, { msgID: id });
    }
    return events / ((performance.now() - start) / 1000);
  } finally {
    await nc.close();
  }
}

/** Sequential `bus.publish`, timed until a grouped subscriber has the last event (and until the last publish resolved). */
async function natsBus(db: MetadataDb, events: number): Promise<{ perSecond: number; publishPerSecond: number }> {
  const bus = await createNatsEventBus({
    db,
    logger: createLogger('silent'),
    servers: [NATS_TEST_URL],
    ...freshStream(),
  });
  try {
    let delivered = 0;
    let waiting: { count: number; resolve: () => void } | undefined;
    bus.subscribe(
      'object.created',
      () => {
        delivered++;
        if (waiting && delivered >= waiting.count) waiting.resolve();
      },
      { group: 'bench' },
    );
    const deliveredCount = (count: number) =>
      delivered >= count ? Promise.resolve() : new Promise<void>((resolve) => (waiting = { count, resolve }));
    // The group's durable consumer is created in the background: the warm-up event waits for it.
    await bus.publish(objectCreated(-1));
    await deliveredCount(1);
    const start = performance.now();
    for (let i = 0; i < events; i++) await bus.publish(objectCreated(i));
    const published = performance.now();
    await deliveredCount(events + 1);
    const end = performance.now();
    return { perSecond: events / ((end - start) / 1000), publishPerSecond: events / ((published - start) / 1000) };
  } finally {
    await bus.close();
  }
}

/** Sequential `bus.publish` on the in-process bus: the events row, and a dispatch to no one. */
async function localBus(db: MetadataDb, events: number): Promise<number> {
  const bus = createLocalEventBus({ db, logger: createLogger('silent') });
  try {
    await bus.publish(objectCreated(-1));
    const start = performance.now();
    for (let i = 0; i < events; i++) await bus.publish(objectCreated(i));
    return events / ((performance.now() - start) / 1000);
  } finally {
    await bus.close();
  }
}

async function eventRates() {
  const postgres = createPostgresDb({ url: POSTGRES_TEST_URL, schema: freshSchema(), poolSize: 4 });
  cleanups.push(() => postgres.close());
  await postgres.migrate();
  const sqlite = createSqliteDb({ path: path.join(tempFolder('bertha-bench-scale-'), 'bertha.sqlite') });
  cleanups.push(() => sqlite.close());
  await sqlite.migrate();

  interface Round {
    raw: number;
    bus: { perSecond: number; publishPerSecond: number };
    busOnSqlite: { perSecond: number; publishPerSecond: number };
    localBus: number;
  }
  const measureRound = async (events: number): Promise<Round> => ({
    raw: await rawJetStream(events),
    bus: await natsBus(postgres, events),
    busOnSqlite: await natsBus(sqlite, events),
    localBus: await localBus(postgres, events),
  });
  // Uncounted: the first round of each path runs colder code (JIT, connections, NATS file blocks).
  await measureRound(Math.ceil(EVENTS / 5));
  const rounds: Round[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const measured = await measureRound(EVENTS);
    rounds.push(measured);
    log(
      `events round ${round}/${ROUNDS}: raw ${Math.round(measured.raw)}/s, ` +
        `bus on PostgreSQL ${Math.round(measured.bus.perSecond)}/s, ` +
        `on SQLite ${Math.round(measured.busOnSqlite.perSecond)}/s, ` +
        `in-process bus on PostgreSQL ${Math.round(measured.localBus)}/s (${EVENTS} events each)`,
    );
  }
  // Rates are medians over the rounds; ratios are the median of each round's own ratio.
  const medianOf = (figure: (round: Round) => number) => median(rounds.map(figure));
  return {
    raw: medianOf((r) => r.raw),
    bus: medianOf((r) => r.bus.perSecond),
    busPublish: medianOf((r) => r.bus.publishPerSecond),
    busOnSqlite: medianOf((r) => r.busOnSqlite.perSecond),
    localBus: medianOf((r) => r.localBus),
    busVsRaw: medianOf((r) => r.bus.perSecond / r.raw),
    busOnSqliteVsRaw: medianOf((r) => r.busOnSqlite.perSecond / r.raw),
    busVsLocalBus: medianOf((r) => r.bus.perSecond / r.localBus),
  };
}

// ---- 2 and 3. Replicas --------------------------------------------------------------------

/** The scale-out test's config, less its short leases: only `--data-dir` differs between the processes. */
function writeConfig(upstreamUrl: string): string {
  const { stream, subjectPrefix } = freshStream();
  const settings = {
    log: { level: 'info' },
    database: { driver: 'postgres', url: POSTGRES_TEST_URL, schema: freshSchema(), poolSize: 4 },
    events: { bus: 'nats', nats: { servers: NATS_TEST_URL, stream, subjectPrefix } },
    objects: { root: tempFolder('bertha-bench-objects-'), watch: false },
    knowledge: {
      vectorStore: 'postgres',
      postgres: { poolSize: 2 },
      embedder: { driver: 'openai', baseUrl: upstreamUrl, model: 'lexical' },
    },
    serving: { upstream: { baseUrl: upstreamUrl, model: 'fake-a' }, modelVersion: 'configured' },
    monitor: { rules: { downOverUp: { enabled: false }, downRatio: { enabled: false } } },
    trainer: { starter: { enabled: false } },
  };
  const file = path.join(tempFolder('bertha-bench-scale-'), 'bertha.yaml');
  writeFileSync(file, YAML.stringify(settings));
  return file;
}

/** Resolves when the process has exited or after `ms`, leaving no timer to hold the bench open. */
function exitWithin(bertha: BerthaProcess, ms: number): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  return Promise.race([bertha.exited, timeout]).finally(() => clearTimeout(timer));
}

async function startRole(role: 'serve' | 'worker', configFile: string): Promise<BerthaProcess> {
  const dataDir = tempFolder(`bertha-bench-${role}-`);
  let bertha: BerthaProcess | undefined;
  const started = await startBerthaCommand(role, ['--config', configFile, '--data-dir', dataDir], {
    timeoutMs: 120_000,
    // SIGTERM first, so the process leaves NATS and PostgreSQL before its stream and schema go.
    cleanup: (kill) =>
      cleanups.push(async () => {
        if (bertha?.child.exitCode === null) {
          bertha.child.kill('SIGTERM');
          await exitWithin(bertha, 10_000);
        }
        kill();
      }),
  });
  bertha = started;
  await until(
    `${started.url} to be ready`,
    async () => ((await fetch(`${started.url}/readyz`)).status === 200 ? true : undefined),
    60_000,
    100,
  );
  return started;
}

async function json<T>(response: Response): Promise<T> {
  const text = await response.text();
  if (!response.ok) throw new Error(`${response.status}: ${text}`);
  return JSON.parse(text) as T;
}

function post(url: string, body: unknown): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

/** Words no other document holds, so the document's own question finds it. */
function pseudoWord(seed: number): string {
  const syllables = ['ka', 'lo', 'mi', 'nu', 'pe', 'ro', 'sa', 'ti', 'vu', 'ze', 'bo', 'da', 'fi', 'gu', 'ha', 'je'];
  let word = '';
  for (let n = seed + 17; word.length < 8; n = Math.floor(n / 16) + 3) word += syllables[n % 16];
  return `${word}${String.fromCharCode(97 + (seed % 26))}`;
}

function documentFor(index: number): { name: string; text: string; question: string } {
  const [pump, hall, crew] = [pseudoWord(index * 3), pseudoWord(index * 3 + 1), pseudoWord(index * 3 + 2)];
  return {
    name: `scale-${index}.md`,
    text: `The ${pump} pump in the ${hall} hall is serviced every spring by the ${crew} crew.`,
    question: `Who services the ${pump} pump in the ${hall} hall?`,
  };
}

async function search(url: string, query: string): Promise<string[]> {
  const { data } = await json<{ data: Array<{ documentKey: string }> }>(
    await post(`${url}/v1/knowledge/search`, { query, topK: 3 }),
  );
  return data.map((hit) => hit.documentKey);
}

/** Milliseconds from the upload's request until each server's search returns the document. */
async function uploadToSearchable(a: string, b: string, index: number): Promise<{ onA: number; onB: number }> {
  const document = documentFor(index);
  const form = new FormData();
  form.append('file', new Blob([document.text], { type: 'text/markdown' }), document.name);
  const start = performance.now();
  const { data } = await json<{ data: Array<{ key: string }> }>(
    await fetch(`${a}/v1/documents`, { method: 'POST', body: form }),
  );
  const key = data[0]?.key as string;
  const seen: { onA?: number; onB?: number } = {};
  await until(
    `${key} to be searchable on both servers`,
    async () => {
      await Promise.all(
        (['onA', 'onB'] as const).map(async (server) => {
          if (seen[server] !== undefined) return;
          const keys = await search(server === 'onA' ? a : b, document.question);
          if (keys.includes(key)) seen[server] = performance.now() - start;
        }),
      );
      return seen.onA !== undefined && seen.onB !== undefined ? { onA: seen.onA, onB: seen.onB } : undefined;
    },
    30_000,
    SEARCH_POLL_MS,
  );
  return { onA: seen.onA as number, onB: seen.onB as number };
}

async function servingVersion(url: string): Promise<string | null> {
  const { data } = await json<{ data: Array<{ model_version: string | null }> }>(await fetch(`${url}/v1/models`));
  return data[0]?.model_version ?? null;
}

/** Registers `model` as a version of `bertha-chat` through the MLflow API; returns its number. */
async function registerVersion(url: string, model: string): Promise<string> {
  // Refused from the second version on: the model exists either way.
  await post(`${url}/api/2.0/mlflow/registered-models/create`, { name: 'bertha-chat' });
  const bundle = { base: { kind: 'upstream', model }, retrieval: { enabled: true, topK: 3 } };
  const { model_version } = await json<{ model_version: { version: string } }>(
    await post(`${url}/api/2.0/mlflow/model-versions/create`, {
      name: 'bertha-chat',
      source: `upstream:${model}`,
      tags: [{ key: 'bertha.bundle', value: JSON.stringify(bundle) }],
    }),
  );
  return model_version.version;
}

/** Milliseconds from the alias request to server A until each server's `/v1/models` names the version. */
async function aliasMove(a: string, b: string, version: string): Promise<{ onA: number; both: number }> {
  const expected = `bertha-chat/${version}`;
  const start = performance.now();
  await json(
    await post(`${a}/api/2.0/mlflow/registered-models/alias`, { name: 'bertha-chat', alias: 'champion', version }),
  );
  const seen: { onA?: number; onB?: number } = {};
  await until(
    `both servers to serve ${expected}`,
    async () => {
      await Promise.all(
        (['onA', 'onB'] as const).map(async (server) => {
          if (seen[server] !== undefined) return;
          if ((await servingVersion(server === 'onA' ? a : b)) === expected) seen[server] = performance.now() - start;
        }),
      );
      return seen.onA !== undefined && seen.onB !== undefined ? true : undefined;
    },
    20_000,
    MODELS_POLL_MS,
  );
  return { onA: seen.onA as number, both: Math.max(seen.onA as number, seen.onB as number) };
}

async function replicas() {
  const upstream = await startFakeUpstream(MODELS, (stop) => cleanups.push(stop));
  const configFile = writeConfig(upstream.baseUrl);
  const startedAt = performance.now();
  // The first process migrates the schema; the others start beside it (migrations take a lock).
  const [first, second] = await Promise.all([
    startRole('serve', configFile),
    startRole('serve', configFile),
    startRole('worker', configFile),
  ]);
  const a = (first as BerthaProcess).url;
  const b = (second as BerthaProcess).url;
  log(`2 servers and 1 worker ready in ${((performance.now() - startedAt) / 1000).toFixed(1)} s: A ${a}, B ${b}`);

  // A first upload warms every process's code paths (the worker's pipeline, both servers' search).
  await uploadToSearchable(a, b, UPLOADS);
  const uploads: Array<{ onA: number; onB: number }> = [];
  for (let i = 0; i < UPLOADS; i++) {
    uploads.push(await uploadToSearchable(a, b, i));
    if ((i + 1) % 10 === 0 || i + 1 === UPLOADS) {
      log(`uploads ${i + 1}/${UPLOADS}: last searchable on B after ${Math.round(uploads.at(-1)?.onB ?? 0)} ms`);
    }
  }

  const versions = [await registerVersion(a, 'fake-b'), await registerVersion(a, 'fake-c')];
  // The first move replaces the configured model: a warm-up, not counted.
  await aliasMove(a, b, versions[0] as string);
  const moves: Array<{ onA: number; both: number }> = [];
  for (let i = 1; i <= MOVES; i++) moves.push(await aliasMove(a, b, versions[i % 2] as string));
  log(`alias moves: ${moves.map((move) => Math.round(move.both)).join(', ')} ms until both served the new version`);
  return { uploads, moves };
}

// ---- The run -------------------------------------------------------------------------------

if (!(await postgresAvailable()) || !(await natsAvailable())) {
  process.stderr.write(`bench scale needs PostgreSQL at ${POSTGRES_TEST_URL} and NATS JetStream at ${NATS_TEST_URL}\n`);
  process.exit(2);
}

let events: Awaited<ReturnType<typeof eventRates>>;
let replicated: Awaited<ReturnType<typeof replicas>>;
try {
  log(
    `load average ${loadAvgAtStart.toFixed(1)}; events: a warm-up round, then ${ROUNDS} rounds of ${EVENTS} sequential publishes per variant`,
  );
  events = await eventRates();
  log(`replicas: ${UPLOADS} uploads (after one warm-up), ${MOVES} alias moves (after one warm-up)`);
  replicated = await replicas();
} finally {
  await cleanUp();
}

const onB = replicated.uploads.map((upload) => upload.onB);
const onA = replicated.uploads.map((upload) => upload.onA);
const both = replicated.moves.map((move) => move.both);
const mover = replicated.moves.map((move) => move.onA);
const figures = {
  raw_jetstream_publish_per_s: Math.round(events.raw),
  nats_bus_events_per_s: Math.round(events.bus),
  bus_vs_raw_ratio: round(events.busVsRaw),
  nats_bus_publish_only_per_s: Math.round(events.busPublish),
  nats_bus_sqlite_events_per_s: Math.round(events.busOnSqlite),
  bus_sqlite_vs_raw_ratio: round(events.busOnSqliteVsRaw),
  local_bus_postgres_per_s: Math.round(events.localBus),
  bus_vs_local_postgres_ratio: round(events.busVsLocalBus),
  events_per_round: EVENTS,
  event_rounds: ROUNDS,
  upload_to_searchable_p50_ms: Math.round(median(onB)),
  upload_to_searchable_p99_ms: Math.round(percentile(onB, 99)),
  upload_to_searchable_same_replica_p50_ms: Math.round(median(onA)),
  other_vs_same_replica_p50_ratio: round(median(onB) / median(onA)),
  uploads: UPLOADS,
  alias_move_to_both_p50_ms: Math.round(median(both)),
  alias_move_to_both_max_ms: Math.round(Math.max(...both)),
  alias_move_to_mover_p50_ms: Math.round(median(mover)),
  alias_moves: MOVES,
  load_avg_1m_start: round(loadAvgAtStart, 1),
  total_s: round((performance.now() - t0) / 1000, 1),
};
console.log(
  `events/s, sequential publishes: raw JetStream ${figures.raw_jetstream_publish_per_s}, ` +
    `bus on PostgreSQL ${figures.nats_bus_events_per_s} (${figures.bus_vs_raw_ratio}x), ` +
    `bus on SQLite ${figures.nats_bus_sqlite_events_per_s} (${figures.bus_sqlite_vs_raw_ratio}x); ` +
    `in-process bus on PostgreSQL ${figures.local_bus_postgres_per_s}`,
);
console.log(
  `upload through A to searchable on B: p50 ${figures.upload_to_searchable_p50_ms} ms, ` +
    `p99 ${figures.upload_to_searchable_p99_ms} ms (n=${UPLOADS}${UPLOADS < 100 ? ': the p99 is the max' : ''}); on A p50 ${figures.upload_to_searchable_same_replica_p50_ms} ms`,
);
console.log(
  `alias move through A to both serving: p50 ${figures.alias_move_to_both_p50_ms} ms, ` +
    `max ${figures.alias_move_to_both_max_ms} ms (n=${MOVES}); on A alone p50 ${figures.alias_move_to_mover_p50_ms} ms`,
);
reportFigures(figures);
