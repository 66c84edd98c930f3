import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import YAML from 'yaml';
import { servedByChallenger } from '../../src/rollout/index.ts';
import { type BerthaProcess, startBerthaCommand } from '../helpers/bertha-process.ts';
import { type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstream.ts';
import {
  deleteStream,
  freshStream,
  NATS_TEST_URL,
  natsAvailable,
  natsServerBinary,
  waitForJetStream,
} from '../helpers/nats.ts';
import { dropSchema, freshSchemaName, POSTGRES_TEST_URL, postgresAvailable } from '../helpers/postgres.ts';
import { freePort, startService, waitFor } from '../helpers/processes.ts';

// Scale-out on this machine: `bertha serve` and `bertha worker` processes sharing one
// PostgreSQL schema (metadata and vector store) and one NATS JetStream stream. Chat and
// embeddings come from a fake OpenAI-compatible server, so no process loads a model.

const BIN = path.resolve('bin/bertha.js');
const MODELS = ['fake-a', 'fake-b', 'fake-c'];
/** A pipeline run's lease, and the monitor lease: how long a killed worker's work waits for another. */
const LEASE_MS = 3_000;
/** Embedding requests holding this stay unanswered while the test wants a step in flight. */
const HOLD = 'HOLD-THIS-STEP';
const REQUEST_TIMEOUT_MS = 15_000;

const DOCUMENTS = {
  'alpha.md': 'The aurora pump keeps the reactor loop at forty bar of pressure.',
  'beta.md': 'The borealis valve opens when the cooling water passes ninety degrees.',
  'gamma.md': `${HOLD} The cobalt filter is replaced every six months.`,
  'delta.md': 'The delta gauge reads the tank level in litres.',
  'epsilon.md': 'The epsilon relay trips when the motor draws more than twelve amperes.',
  'zeta.md': 'The zeta fan cools the cabinet at night.',
  'eta.md': 'The eta heater warms the oil before a cold start.',
  'theta.md': 'The theta sensor measures humidity in the pump room.',
} as const;
type DocumentName = keyof typeof DOCUMENTS;

type Cleanup = () => unknown;

/** Runs the cleanups registered so far, newest first (processes before the schema they use). */
function cleanupStack(): { add(cleanup: Cleanup): void; run(): Promise<void> } {
  const stack: Cleanup[] = [];
  return {
    add: (cleanup) => void stack.push(cleanup),
    async run() {
      for (const cleanup of stack.splice(0).reverse()) await cleanup();
    },
  };
}

function tempFolder(cleanups: { add(cleanup: Cleanup): void }, prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  cleanups.add(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface Shared {
  schema: string;
  /** Every connection of the test's processes carries it, so the test can find and end them. */
  applicationName: string;
  natsServers: string;
  stream: string;
  subjectPrefix: string;
  objectsRoot: string;
  upstream: FakeUpstream;
}

/** The one config file every process of a test reads: only `--data-dir` differs between them. */
function writeConfig(dir: string, shared: Shared): string {
  const url = new URL(POSTGRES_TEST_URL);
  url.searchParams.set('application_name', shared.applicationName);
  const settings = {
    log: { level: 'info' },
    database: { driver: 'postgres', url: url.href, schema: shared.schema, poolSize: 4 },
    events: {
      bus: 'nats',
      nats: { servers: shared.natsServers, stream: shared.stream, subjectPrefix: shared.subjectPrefix },
    },
    objects: { root: shared.objectsRoot, watch: false },
    knowledge: {
      vectorStore: 'postgres',
      postgres: { poolSize: 2 },
      embedder: { driver: 'openai', baseUrl: shared.upstream.baseUrl, model: 'lexical' },
    },
    serving: { upstream: { baseUrl: shared.upstream.baseUrl, model: 'fake-a' }, modelVersion: 'configured' },
    pipelines: { leaseMs: LEASE_MS, pollIntervalMs: 100 },
    rollout: { steps: [0.5] },
    // The watcher would start llm-retraining on the votes cast here; the path under test is the export.
    monitor: { rules: { downOverUp: { enabled: false }, downRatio: { enabled: false } } },
    trainer: { starter: { enabled: false } },
  };
  const file = path.join(dir, 'bertha.yaml');
  writeFileSync(file, YAML.stringify(settings));
  return file;
}

/** What the test reads and ends in the shared schema, on connections of its own. */
function openSql(schema: string) {
  const pool = new pg.Pool({ connectionString: POSTGRES_TEST_URL, max: 2, options: `-c search_path=${schema}` });
  pool.on('error', () => undefined);
  return {
    pool,
    async rows<T>(text: string, values: unknown[] = []): Promise<T[]> {
      return (await pool.query(text, values)).rows as T[];
    },
  };
}

/**
 * fetch with a deadline: a request that hangs (a process waiting on a connection PostgreSQL
 * ended) fails its probe, so the wait around it retries and reports instead of stalling the test.
 */
function request(url: string, init: RequestInit = {}): Promise<Response> {
  return fetch(url, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
}

async function json<T>(response: Response): Promise<T> {
  const text = await response.text();
  if (!response.ok) throw new Error(`${response.status}: ${text}`);
  return JSON.parse(text) as T;
}

async function upload(url: string, name: DocumentName): Promise<{ key: string; eventId: string }> {
  const form = new FormData();
  form.append('file', new Blob([DOCUMENTS[name]], { type: 'text/markdown' }), name);
  const { data } = await json<{ data: Array<{ key: string; eventId: string }> }>(
    await request(`${url}/v1/documents`, { method: 'POST', body: form }),
  );
  return data[0] as { key: string; eventId: string };
}

interface Answer {
  id: string;
  model_version: string;
  choices: Array<{ message: { content: string } }>;
  sources: Array<{ document_key: string }>;
}

async function ask(url: string, question: string, conversation?: string): Promise<Answer> {
  return json<Answer>(
    await request(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'bertha',
        messages: [{ role: 'user', content: question }],
        ...(conversation ? { conversation_id: conversation } : {}),
      }),
    }),
  );
}

async function vote(url: string, responseId: string, user: string, rating: 'up' | 'down'): Promise<void> {
  await json(
    await request(`${url}/v1/feedback`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-bertha-user': user },
      body: JSON.stringify({ response_id: responseId, rating }),
    }),
  );
}

async function search(url: string, query: string): Promise<string[]> {
  const { data } = await json<{ data: Array<{ documentKey: string }> }>(
    await request(`${url}/v1/knowledge/search`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query, topK: 3 }),
    }),
  );
  return data.map((hit) => hit.documentKey);
}

/** `bertha_feedback_total` samples of one scrape: `<model_version>/<rating>` -> value. */
function feedbackSamples(exposition: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const [, labels = '', value = ''] of exposition.matchAll(/^bertha_feedback_total\{([^}]*)\} (\S+)$/gm)) {
    const label = (name: string) => new RegExp(`${name}="([^"]*)"`).exec(labels)?.[1];
    samples.set(`${label('model_version')}/${label('rating')}`, Number(value));
  }
  return samples;
}

/** Every process's `bertha_feedback_total`, summed as Prometheus's `sum by (model_version, rating)` would. */
async function summedFeedback(processes: BerthaProcess[]): Promise<{ sum: Record<string, number>; exporters: number }> {
  const sum: Record<string, number> = {};
  let exporters = 0;
  for (const bertha of processes) {
    const samples = feedbackSamples(await (await request(`${bertha.url}/metrics`)).text());
    if (samples.size > 0) exporters += 1;
    for (const [key, value] of samples) sum[key] = (sum[key] ?? 0) + value;
  }
  return { sum, exporters };
}

/** Completed chat requests counted by every process's own `bertha_requests_total`, summed. */
async function summedCompletedRequests(processes: BerthaProcess[]): Promise<number> {
  let sum = 0;
  for (const bertha of processes) {
    const exposition = await (await request(`${bertha.url}/metrics`)).text();
    for (const [, labels = '', value = ''] of exposition.matchAll(/^bertha_requests_total\{([^}]*)\} (\S+)$/gm)) {
      if (labels.includes('status="completed"')) sum += Number(value);
    }
  }
  return sum;
}

/** The stored truth: counted votes per model version and rating, both ratings for every version voted on. */
async function storedFeedback(sql: ReturnType<typeof openSql>): Promise<Record<string, number>> {
  const rows = await sql.rows<{ model_version: string; rating: string; count: string }>(
    'select model_version, rating, count(*) as count from feedback_votes where counted = 1 group by model_version, rating',
  );
  const stored: Record<string, number> = {};
  for (const row of rows) {
    stored[`${row.model_version}/up`] ??= 0;
    stored[`${row.model_version}/down`] ??= 0;
    stored[`${row.model_version}/${row.rating}`] = Number(row.count);
  }
  return stored;
}

async function runsFor(sql: ReturnType<typeof openSql>, key: string) {
  const rows = await sql.rows<{ id: string; status: string; params_json: string }>(
    `select id, status, params_json from pipeline_runs where pipeline = 'vector-ingestion' order by created_at`,
  );
  return rows.filter((row) => (JSON.parse(row.params_json) as { key?: string }).key === key);
}

/** Waits until the key is ingested and no run for it is queued or running; returns the runs recorded for it. */
async function ingested(sql: ReturnType<typeof openSql>, key: string, describe: () => string, timeoutMs = 30_000) {
  return waitFor(
    async () => {
      const [document] = await sql.rows<{ status: string }>('select status from documents where key = $1', [key]);
      const runs = await runsFor(sql, key);
      const settled = runs.length > 0 && runs.every((run) => !['queued', 'running'].includes(run.status));
      return document?.status === 'ingested' && settled ? runs : undefined;
    },
    { timeoutMs, what: `${key} to be ingested`, describe },
  );
}

function running(bertha: BerthaProcess): boolean {
  return bertha.child.exitCode === null && bertha.child.signalCode === null;
}

/** Key order aside, the same counts. */
function sameCounts(a: Record<string, number>, b: Record<string, number>): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].every((key) => a[key] === b[key]);
}

function ownerPid(owner: string): number {
  return Number(owner.split(':')[1]);
}

function pidOf(bertha: BerthaProcess): number {
  return bertha.child.pid as number;
}

function startRole(
  role: 'serve' | 'worker',
  configFile: string,
  cleanups: { add(cleanup: Cleanup): void },
): Promise<BerthaProcess> {
  return startBerthaCommand(role, ['--config', configFile, '--data-dir', tempFolder(cleanups, `bertha-${role}-`)], {
    timeoutMs: 120_000,
    cleanup: (stop) => cleanups.add(stop),
  });
}

async function ready(bertha: BerthaProcess): Promise<void> {
  await waitFor(async () => ((await request(`${bertha.url}/readyz`)).status === 200 ? true : undefined), {
    timeoutMs: 60_000,
    what: `${bertha.url} to be ready`,
    describe: () => bertha.output().slice(-4_000),
  });
}

/** `bertha <args>` as a user runs it, against the same config. */
function runCli(configFile: string, args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, '--config', configFile, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.on('exit', (code) => resolve({ code, output }));
  });
}

/** Registers `model` as a new version of `bertha-chat` through the MLflow API; returns its number. */
async function registerVersion(url: string, model: string): Promise<string> {
  const mlflow = (route: string, body: unknown) =>
    request(`${url}/api/2.0/mlflow/${route}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  // Refused from the second version on: the model exists either way.
  await mlflow('registered-models/create', { name: 'bertha-chat' });
  const bundle = { base: { kind: 'upstream', model }, retrieval: { enabled: true, topK: 3 } };
  const { model_version } = await json<{ model_version: { version: string } }>(
    await mlflow('model-versions/create', {
      name: 'bertha-chat',
      source: `upstream:${model}`,
      tags: [{ key: 'bertha.bundle', value: JSON.stringify(bundle) }],
    }),
  );
  return model_version.version;
}

const available = (await postgresAvailable()) && (await natsAvailable());

describe.skipIf(!available)('two serve and two worker processes on one PostgreSQL schema and one NATS stream', () => {
  const cleanups = cleanupStack();
  const schema = freshSchemaName();
  const { stream, subjectPrefix } = freshStream();
  const sql = openSql(schema);
  let configFile: string;
  let upstream: FakeUpstream;
  let servers: BerthaProcess[];
  let workers: BerthaProcess[];
  const all = () => [...servers, ...workers].filter(running);
  const logs = () =>
    all()
      .map((bertha) => `--- ${bertha.url}\n${bertha.output().slice(-3_000)}`)
      .join('\n');

  beforeAll(async () => {
    cleanups.add(() => sql.pool.end());
    cleanups.add(() => dropSchema(schema));
    cleanups.add(() => deleteStream(stream).catch(() => undefined));
    upstream = await startFakeUpstream(MODELS, (stop) => cleanups.add(stop));
    configFile = writeConfig(tempFolder(cleanups, 'bertha-scale-'), {
      schema,
      applicationName: `bertha_${schema}`,
      natsServers: NATS_TEST_URL,
      stream,
      subjectPrefix,
      objectsRoot: tempFolder(cleanups, 'bertha-objects-'),
      upstream,
    });
    // The first process migrates the schema; the others start beside it (migrations take a lock).
    const started = await Promise.all([
      startRole('serve', configFile, cleanups),
      startRole('serve', configFile, cleanups),
      startRole('worker', configFile, cleanups),
      startRole('worker', configFile, cleanups),
    ]);
    servers = started.slice(0, 2);
    workers = started.slice(2);
    await Promise.all(started.map(ready));
  }, 180_000);

  afterAll(() => cleanups.run(), 60_000);

  test('an event published through either server triggers exactly one pipeline run, on a worker', async () => {
    const [first, second] = servers as [BerthaProcess, BerthaProcess];
    const uploads = [await upload(first.url, 'alpha.md'), await upload(second.url, 'beta.md')];
    const workerPids = workers.map(pidOf);
    for (const { key, eventId } of uploads) {
      const runs = await ingested(sql, key, logs);
      expect(runs.map((run) => run.status)).toEqual(['succeeded']);
      const triggers = await sql.rows<{ status: string; run_id: string }>(
        'select status, run_id from pipeline_triggers where event_id = $1',
        [eventId],
      );
      expect(triggers).toEqual([{ status: 'finished', run_id: runs[0]?.id }]);
      const owners = await sql.rows<{ owner: string }>('select owner from pipeline_attempts where run_id = $1', [
        runs[0]?.id,
      ]);
      expect(owners.length).toBeGreaterThan(0);
      for (const { owner } of owners) expect(workerPids).toContain(ownerPid(owner));
    }
  });

  test('an upload through one server is searchable and answered with sources through the other', async () => {
    const [first, second] = servers as [BerthaProcess, BerthaProcess];
    for (const [server, key, question] of [
      [second, 'documents/alpha.md', 'At what pressure does the aurora pump keep the reactor loop?'],
      [first, 'documents/beta.md', 'When does the borealis valve open?'],
    ] as const) {
      await waitFor(async () => ((await search(server.url, question))[0] === key ? true : undefined), {
        timeoutMs: 10_000,
        what: `${key} to be searchable through ${server.url}`,
      });
      const answer = await ask(server.url, question);
      expect(answer.sources.map((source) => source.document_key)).toContain(key);
      expect(answer.choices[0]?.message.content).toBe('answer from fake-a');
    }
  });

  test('an alias move changes the model both servers answer with, and both put a conversation on the same canary arm', async () => {
    const [first, second] = servers as [BerthaProcess, BerthaProcess];
    const question = 'When does the borealis valve open?';
    const servedEverywhere = (version: string) =>
      waitFor(
        async () => {
          const answers = await Promise.all(servers.map((server) => ask(server.url, question)));
          return answers.every((answer) => answer.model_version === version) ? answers : undefined;
        },
        { timeoutMs: 20_000, what: `both servers to answer with ${version}`, describe: logs },
      );
    const one = await registerVersion(first.url, 'fake-b');
    const two = await registerVersion(first.url, 'fake-c');

    // By the CLI, through the first server.
    const promoted = await runCli(configFile, ['--port', new URL(first.url).port, 'models', 'promote', one]);
    expect(promoted, promoted.output).toMatchObject({ code: 0 });
    const onOne = await servedEverywhere(`bertha-chat/${one}`);
    expect(onOne.map((answer) => answer.choices[0]?.message.content)).toEqual([
      'answer from fake-b',
      'answer from fake-b',
    ]);

    // By the MLflow API, through the second.
    await json(
      await request(`${second.url}/api/2.0/mlflow/registered-models/alias`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'bertha-chat', alias: 'champion', version: two }),
      }),
    );
    await servedEverywhere(`bertha-chat/${two}`);

    // A canary of version one at half the traffic: the same arm for a conversation on either server.
    await json(
      await request(`${first.url}/v1/rollouts`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ challenger_version: `bertha-chat/${one}` }),
      }),
    );
    const conversations = Array.from({ length: 12 }, (_, index) => `conv-scale-${index}`);
    const expected = conversations.map((conversation) =>
      servedByChallenger(conversation, 0.5) ? `bertha-chat/${one}` : `bertha-chat/${two}`,
    );
    expect(new Set(expected).size).toBe(2);
    for (const server of servers) {
      await waitFor(
        async () => {
          const versions = [];
          for (const conversation of conversations) {
            versions.push((await ask(server.url, question, conversation)).model_version);
          }
          return JSON.stringify(versions) === JSON.stringify(expected) ? true : undefined;
        },
        { timeoutMs: 20_000, what: `${server.url} to serve the canary to its conversations`, describe: logs },
      );
    }
    await json(await request(`${second.url}/v1/rollouts/rollback`, { method: 'POST' }));
  });

  test('/metrics summed over every process equals the stored feedback counts', async () => {
    const [first, second] = servers as [BerthaProcess, BerthaProcess];
    const question = 'At what pressure does the aurora pump keep the reactor loop?';
    const answers = [await ask(first.url, question), await ask(second.url, question), await ask(first.url, question)];
    await vote(first.url, answers[0]?.id as string, 'ada', 'down');
    await vote(second.url, answers[0]?.id as string, 'bob', 'down');
    await vote(second.url, answers[1]?.id as string, 'ada', 'up');
    await vote(first.url, answers[2]?.id as string, 'cy', 'up');
    // A changed vote counts again, whichever server it reaches.
    await vote(second.url, answers[2]?.id as string, 'cy', 'down');

    const stored = await storedFeedback(sql);
    expect(Object.values(stored).reduce((total, count) => total + count, 0)).toBe(5);
    const scraped = await summedFeedback(all());
    expect(scraped.sum).toEqual(stored);
    // One exporter, a worker: the others have no feedback samples to add.
    expect(scraped.exporters).toBe(1);
    for (const server of servers) {
      expect(feedbackSamples(await (await request(`${server.url}/metrics`)).text()).size).toBe(0);
    }
    // What each process counted itself adds up to every answer stored.
    const [answered] = await sql.rows<{ count: string }>('select count(*) as count from answers');
    expect(await summedCompletedRequests(all())).toBe(Number(answered?.count));
  });

  test('SIGKILL of a worker mid-step hands the step to the other worker', async () => {
    const [first] = servers as [BerthaProcess];
    upstream.holdEmbeddings(HOLD);
    const { key } = await upload(first.url, 'gamma.md');
    const attempt = await waitFor(
      async () => {
        const [run] = await runsFor(sql, key);
        if (!run || upstream.held() === 0) return undefined;
        const [running] = await sql.rows<{ owner: string }>(
          `select owner from pipeline_attempts where run_id = $1 and step = 'create-vectors' and status = 'running'`,
          [run.id],
        );
        return running ? { runId: run.id, owner: running.owner } : undefined;
      },
      { timeoutMs: 20_000, what: 'the create-vectors step to be in flight', describe: logs },
    );
    const victim = workers.find((worker) => pidOf(worker) === ownerPid(attempt.owner));
    const survivor = workers.find((worker) => worker !== victim);
    expect(victim, `attempt owner ${attempt.owner}`).toBeDefined();
    victim?.child.kill('SIGKILL');
    await victim?.exited;
    upstream.release();

    await ingested(sql, key, logs, 30_000);
    const [run] = await sql.rows<{ status: string }>('select status from pipeline_runs where id = $1', [attempt.runId]);
    expect(run?.status).toBe('succeeded');
    const attempts = await sql.rows<{ owner: string; status: string }>(
      `select owner, status from pipeline_attempts where run_id = $1 and step = 'create-vectors' order by attempt`,
      [attempt.runId],
    );
    expect(ownerPid(attempts[0]?.owner as string)).toBe(pidOf(victim as BerthaProcess));
    expect(attempts.at(-1)).toMatchObject({ status: 'succeeded' });
    expect(ownerPid(attempts.at(-1)?.owner as string)).toBe(pidOf(survivor as BerthaProcess));
    await waitFor(
      async () => ((await search(first.url, 'When is the cobalt filter replaced?'))[0] === key ? true : undefined),
      {
        timeoutMs: 10_000,
        what: 'the document to be searchable',
      },
    );

    // Whichever worker held the monitor lease, the survivor exports the stored counts once it lapsed.
    const stored = await storedFeedback(sql);
    await waitFor(
      async () => {
        const scraped = await summedFeedback(all());
        return scraped.exporters === 1 && sameCounts(scraped.sum, stored) ? true : undefined;
      },
      { timeoutMs: 4 * LEASE_MS, what: 'the surviving worker to export the feedback series', describe: logs },
    );
  });

  // Every wait below is bounded; together they may take longer than the default on a loaded machine.
  test('every process keeps serving after PostgreSQL ends all their connections (a restart)', {
    timeout: 150_000,
  }, async () => {
    const [first, second] = servers as [BerthaProcess, BerthaProcess];
    const ended = await sql.rows<{ pid: number }>(
      'select pg_terminate_backend(pid) as ended, pid from pg_stat_activity where application_name = $1',
      [`bertha_${schema}`],
    );
    expect(ended.length).toBeGreaterThan(0);

    // No manual step: each check is retried until the process has reconnected.
    await Promise.all(all().map(ready));
    const answer = await waitFor(
      async () => ask(second.url, 'At what pressure does the aurora pump keep the reactor loop?'),
      { timeoutMs: 20_000, what: 'a chat answer after the restart', describe: logs },
    );
    expect(answer.sources.map((source) => source.document_key)).toContain('documents/alpha.md');
    await waitFor(async () => vote(first.url, answer.id, 'dee', 'up').then(() => true), {
      timeoutMs: 20_000,
      what: 'a vote after the restart',
    });
    const { key } = await waitFor(async () => upload(second.url, 'delta.md'), {
      timeoutMs: 20_000,
      what: 'an upload after the restart',
    });
    const runs = await ingested(sql, key, logs);
    expect(runs.map((run) => run.status)).toEqual(['succeeded']);
    await waitFor(
      async () => ((await search(first.url, 'What does the delta gauge read?'))[0] === key ? true : undefined),
      {
        timeoutMs: 20_000,
        what: 'the new document to be searchable through the other server (its LISTEN connection was ended too)',
        describe: logs,
      },
    );
    const stored = await storedFeedback(sql);
    expect((await summedFeedback(all())).sum).toEqual(stored);
    // Only the worker the test killed is gone.
    expect([...servers, ...workers].filter((bertha) => !running(bertha))).toHaveLength(1);
  });
});

const natsServer = available ? natsServerBinary() : undefined;

describe.skipIf(!natsServer)('a NATS restart', () => {
  test('loses no acknowledged event: what a server published while no worker ran is handled after the restart', {
    timeout: 180_000,
  }, async () => {
    const cleanups = cleanupStack();
    try {
      const schema = freshSchemaName();
      cleanups.add(() => dropSchema(schema));
      const sql = openSql(schema);
      cleanups.add(() => sql.pool.end());
      const port = await freePort();
      const storeDir = tempFolder(cleanups, 'bertha-nats-');
      const natsArgs = ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', storeDir];
      let nats = startService(natsServer as string, natsArgs);
      const natsUrl = `nats://127.0.0.1:${port}`;
      await waitForJetStream(natsUrl);
      const upstream = await startFakeUpstream(MODELS, (stop) => cleanups.add(stop));
      const { stream, subjectPrefix } = freshStream();
      const configFile = writeConfig(tempFolder(cleanups, 'bertha-scale-'), {
        schema,
        applicationName: `bertha_${schema}`,
        natsServers: natsUrl,
        stream,
        subjectPrefix,
        objectsRoot: tempFolder(cleanups, 'bertha-objects-'),
        upstream,
      });
      const [server, firstWorker] = await Promise.all([
        startRole('serve', configFile, cleanups),
        startRole('worker', configFile, cleanups),
      ]);
      await Promise.all([ready(server as BerthaProcess), ready(firstWorker as BerthaProcess)]);
      const logs = () => [server, firstWorker].map((bertha) => bertha?.output().slice(-3_000)).join('\n---\n');
      const serverUrl = (server as BerthaProcess).url;

      // The worker's sensors have their durable consumer; then no worker runs.
      const before = await upload(serverUrl, 'epsilon.md');
      await ingested(sql, before.key, logs);
      firstWorker?.child.kill('SIGTERM');
      expect(await firstWorker?.exited).toBe(0);

      // Acknowledged by JetStream (the 201 comes after the publish), not yet handled by anyone.
      const waiting = [await upload(serverUrl, 'zeta.md'), await upload(serverUrl, 'eta.md')];

      nats.child.kill('SIGTERM');
      await new Promise((resolve) => nats.child.once('exit', resolve));
      nats = startService(natsServer as string, natsArgs);
      await waitForJetStream(natsUrl);

      // The server publishes again once its connection is back.
      await waitFor(
        async () => ((server as BerthaProcess).output().includes('"msg":"nats reconnect"') ? true : undefined),
        {
          timeoutMs: 30_000,
          what: 'the server to reconnect to NATS',
          describe: logs,
        },
      );
      const after = await waitFor(async () => upload(serverUrl, 'theta.md'), {
        timeoutMs: 30_000,
        what: 'an upload once NATS is back',
        describe: logs,
      });
      const worker = await startRole('worker', configFile, cleanups);
      await ready(worker);
      for (const { key } of [...waiting, after]) {
        const runs = await ingested(sql, key, () => `${logs()}\n---\n${worker.output().slice(-3_000)}`);
        expect(runs.map((run) => run.status)).toEqual(['succeeded']);
      }
      expect((await runsFor(sql, before.key)).map((run) => run.status)).toEqual(['succeeded']);
    } finally {
      await cleanups.run();
    }
  });
});
