import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { createLogger } from '../src/core/logger.ts';
import { createSqliteDb } from '../src/db/sqlite.ts';
import { createLocalEventBus } from '../src/events/local-bus.ts';
import { createFsObjectStore } from '../src/objects/fs.ts';
import { createHttpServer } from '../src/server/http.ts';
import {
  createModelRegistry,
  createRegistryStore,
  createTrackingStore,
  registerTrackingRoutes,
} from '../src/tracking/index.ts';
import { percentile, reportFigures, round } from './stats.ts';

// 1. log-batch over HTTP (MLflow's JSON, 1000 metrics a call, SQLite) against the floor: the
//    same metric rows inserted by raw better-sqlite3 prepared statements, one transaction a batch.
// 2. runs/search over 10,000 runs (metric + param filter, metric order) against the floor: the
//    equivalent SQL run directly on the same file, without MLflow's run hydration.
const BATCHES = 100;
const PER_BATCH = 1000;
const RUNS = 10_000;
const SEARCHES = 200;
const dir = mkdtempSync(path.join(tmpdir(), 'bertha-bench-tracking-'));

function batchBody(runId: string, batch: number): string {
  const metrics = Array.from({ length: PER_BATCH }, (_, i) => ({
    key: `metric_${i % 20}`,
    value: Math.random(),
    timestamp: 1_700_000_000_000 + batch,
    step: batch * PER_BATCH + i,
  }));
  return JSON.stringify({ run_id: runId, metrics });
}

function rawBaseline(): number {
  const raw = new SqliteDatabase(path.join(dir, 'raw.sqlite'));
  raw.pragma('journal_mode = WAL');
  raw.pragma('synchronous = NORMAL');
  raw.exec(
    'create table metrics (run_id text not null, key text not null, value real not null, timestamp integer not null, step integer not null, is_nan integer not null)',
  );
  raw.exec('create index metrics_run_key on metrics (run_id, key)');
  const insert = raw.prepare('insert into metrics values (?, ?, ?, ?, ?, ?)');
  const insertBatch = raw.transaction((batch: number) => {
    for (let i = 0; i < PER_BATCH; i++)
      insert.run('run', `metric_${i % 20}`, Math.random(), 1_700_000_000_000 + batch, batch * PER_BATCH + i, 0);
  });
  const start = performance.now();
  for (let batch = 0; batch < BATCHES; batch++) insertBatch(batch);
  const seconds = (performance.now() - start) / 1000;
  raw.close();
  return (BATCHES * PER_BATCH) / seconds;
}

const dbFile = path.join(dir, 'bertha.sqlite');
const db = createSqliteDb({ path: dbFile });
await db.migrate();
const logger = createLogger('silent');
const bus = createLocalEventBus({ db, logger });
const tracking = createTrackingStore(db);
const http = createHttpServer({ logger, bodyLimitBytes: 16 * 1024 * 1024 });
registerTrackingRoutes(http, {
  tracking,
  registry: createModelRegistry({ store: createRegistryStore(db), bus, logger }),
  objects: createFsObjectStore({ root: path.join(dir, 'objects') }),
});
const url = await http.listen({ host: '127.0.0.1', port: 0 });

async function post(endpoint: string, body: string): Promise<unknown> {
  const response = await fetch(`${url}/api/2.0/mlflow/${endpoint}`, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json' },
  });
  const parsed = await response.json();
  if (!response.ok) throw new Error(`${endpoint}: ${JSON.stringify(parsed)}`);
  return parsed;
}

async function logBatchThroughput(): Promise<number> {
  const run = (await post('runs/create', JSON.stringify({ experiment_id: '0' }))) as {
    run: { info: { run_id: string } };
  };
  const bodies = Array.from({ length: BATCHES }, (_, batch) => batchBody(run.run.info.run_id, batch));
  await post('runs/log-batch', bodies[0] as string);
  const start = performance.now();
  for (let batch = 1; batch < BATCHES; batch++) await post('runs/log-batch', bodies[batch] as string);
  const seconds = (performance.now() - start) / 1000;
  return ((BATCHES - 1) * PER_BATCH) / seconds;
}

/** The same batches through the store directly: what HTTP and JSON cost on top. */
async function storeThroughput(): Promise<number> {
  const run = await tracking.createRun({ experimentId: '0' });
  const batches = Array.from(
    { length: BATCHES },
    (_, batch) =>
      (
        JSON.parse(batchBody(run.info.run_id, batch)) as {
          metrics: { key: string; value: number; timestamp: number; step: number }[];
        }
      ).metrics,
  );
  const start = performance.now();
  for (const metrics of batches) await tracking.logBatch(run.info.run_id, { metrics });
  return (BATCHES * PER_BATCH) / ((performance.now() - start) / 1000);
}

async function seedRuns(): Promise<string> {
  const experimentId = await tracking.createExperiment({ name: 'search-bench' });
  const k = db.kysely;
  for (let offset = 0; offset < RUNS; offset += 500) {
    const ids = Array.from({ length: Math.min(500, RUNS - offset) }, () => randomUUID().replaceAll('-', ''));
    await k
      .insertInto('tracking_runs')
      .values(
        ids.map((runId, i) => ({
          run_id: runId,
          experiment_id: Number(experimentId),
          name: `run-${offset + i}`,
          user_id: 'bench',
          status: 'FINISHED',
          start_time: 1_700_000_000_000 + offset + i,
          end_time: null,
          lifecycle_stage: 'active',
          artifact_uri: `mlflow-artifacts:/${experimentId}/${runId}/artifacts`,
          deleted_time: null,
        })),
      )
      .execute();
    for (const runId of ids) {
      await tracking.logBatch(runId, {
        metrics: ['accuracy', 'loss', 'latency_ms'].map((key) => ({
          key,
          value: Math.random(),
          timestamp: 1,
          step: 0,
        })),
        params: [
          { key: 'lr', value: Math.random() < 0.5 ? '0.01' : '0.001' },
          { key: 'epochs', value: String(1 + Math.floor(Math.random() * 5)) },
        ],
        tags: [{ key: 'team', value: Math.random() < 0.5 ? 'alpha' : 'beta' }],
      });
    }
  }
  return experimentId;
}

const FILTER = "metrics.accuracy > 0.5 and params.lr = '0.01'";

async function searchLatencies(experimentId: string): Promise<number[]> {
  const body = JSON.stringify({
    experiment_ids: [experimentId],
    filter: FILTER,
    order_by: ['metrics.accuracy DESC'],
    max_results: 100,
  });
  await post('runs/search', body);
  const latencies: number[] = [];
  for (let i = 0; i < SEARCHES; i++) {
    const t0 = performance.now();
    const answer = (await post('runs/search', body)) as { runs: unknown[] };
    latencies.push(performance.now() - t0);
    if (answer.runs.length !== 100) throw new Error(`expected 100 runs, got ${answer.runs.length}`);
  }
  return latencies;
}

function rawSearchLatencies(experimentId: string): number[] {
  const raw = new SqliteDatabase(dbFile, { readonly: true });
  const query = raw.prepare(`SELECT r.* FROM tracking_runs r
    LEFT JOIN tracking_latest_metrics o ON o.run_id = r.run_id AND o.key = 'accuracy'
    WHERE r.experiment_id = ? AND r.lifecycle_stage = 'active'
      AND EXISTS (SELECT 1 FROM tracking_latest_metrics m WHERE m.run_id = r.run_id AND m.key = 'accuracy' AND m.value > 0.5)
      AND EXISTS (SELECT 1 FROM tracking_params p WHERE p.run_id = r.run_id AND p.key = 'lr' AND p.value = '0.01')
    ORDER BY o.value DESC, r.start_time DESC, r.run_id ASC LIMIT 100`);
  const latencies: number[] = [];
  for (let i = 0; i < SEARCHES; i++) {
    const t0 = performance.now();
    query.all(Number(experimentId));
    latencies.push(performance.now() - t0);
  }
  raw.close();
  return latencies;
}

const baseline = rawBaseline();
const perSecond = await logBatchThroughput();
const storePerSecond = await storeThroughput();
console.log(`raw better-sqlite3 metric insert: ${Math.round(baseline)} metrics/s`);
console.log(
  `log-batch over HTTP:              ${Math.round(perSecond)} metrics/s (${PER_BATCH} per call, ${BATCHES - 1} calls)`,
);
console.log(`log-batch in the store (no HTTP): ${Math.round(storePerSecond)} metrics/s`);
const seedStart = performance.now();
const experimentId = await seedRuns();
console.log(`seeded ${RUNS} runs in ${round((performance.now() - seedStart) / 1000, 1)} s`);
const search = await searchLatencies(experimentId);
const rawSearch = rawSearchLatencies(experimentId);
console.log(
  `runs/search over ${RUNS} runs: p50 ${round(percentile(search, 50))} ms, p99 ${round(percentile(search, 99))} ms`,
);
console.log(
  `raw SQL of the same search:    p50 ${round(percentile(rawSearch, 50))} ms, p99 ${round(percentile(rawSearch, 99))} ms`,
);
await http.close();
await bus.drain();
await db.close();
rmSync(dir, { recursive: true, force: true });
reportFigures({
  log_batch_metrics_per_s: Math.round(perSecond),
  raw_insert_metrics_per_s: Math.round(baseline),
  log_batch_ratio_vs_raw: round(perSecond / baseline),
  store_log_batch_metrics_per_s: Math.round(storePerSecond),
  store_log_batch_ratio_vs_raw: round(storePerSecond / baseline),
  search_p50_ms: round(percentile(search, 50)),
  search_p99_ms: round(percentile(search, 99)),
  raw_search_p99_ms: round(percentile(rawSearch, 99)),
  search_p99_ratio_vs_raw: round(percentile(search, 99) / percentile(rawSearch, 99)),
});
