import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isoNow, newId } from '../src/core/ids.ts';
import { createLogger } from '../src/core/logger.ts';
import { createSqliteDb } from '../src/db/sqlite.ts';
import { createLocalEventBus } from '../src/events/local-bus.ts';
import { createSensors } from '../src/events/sensors.ts';
import { createFsObjectStore } from '../src/objects/fs.ts';
import { definePipeline } from '../src/pipelines/definition.ts';
import {
  createLocalRunner,
  createPipelineCatalog,
  createRunStore,
  createStepHandlerRegistry,
} from '../src/pipelines/index.ts';
import { percentile, reportFigures, round } from './stats.ts';

// The local runner on SQLite. step_overhead_ms: wall time per empty step of a 50-step chain,
// against the floor of what a step must store (one attempt insert + one step update + one
// finish update through Kysely on the same file). event_to_step_ms: from publishing an
// event on the bus, through the real sensors and the pipeline_triggers row, to the first
// step's handler starting (the sensor wakes the runner; the poll interval is shown for scale).
const STEPS = 50;
const RUNS = 10;
const EVENTS = 30;
const POLL_MS = 25;

const dir = mkdtempSync(path.join(tmpdir(), 'bertha-bench-'));
const logger = createLogger('silent');
const db = createSqliteDb({ path: path.join(dir, 'bench.sqlite') });
await db.migrate();

let lastStart = 0;
const chain = definePipeline({
  name: 'empty-chain',
  description: 'empty steps in a line',
  steps: Array.from({ length: STEPS }, (_, i) => ({
    name: `s${i}`,
    handler: i === 0 ? 'first' : 'nothing',
    ...(i > 0 ? { dependsOn: [`s${i - 1}`] } : {}),
  })),
});
const catalog = createPipelineCatalog(
  [chain],
  createStepHandlerRegistry({
    first: async () => {
      lastStart = performance.now();
    },
    nothing: async () => {},
  }),
);
const store = createRunStore(db);
const runner = createLocalRunner({
  store,
  objects: createFsObjectStore({ root: path.join(dir, 'objects') }),
  catalog,
  logger,
  stepConcurrency: 4,
  maxConcurrentRuns: 4,
  pollIntervalMs: POLL_MS,
  leaseMs: 30_000,
});
runner.start();

async function until(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((resolve) => setTimeout(resolve, 1));
}

async function floorPerStep(): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 500; i++) {
    const t0 = performance.now();
    const id = newId('att');
    await db.kysely
      .insertInto('pipeline_attempts')
      .values({
        id,
        run_id: 'floor',
        step: 'x',
        attempt: 1,
        status: 'running',
        owner: 'bench',
        error: null,
        started_at: isoNow(),
        finished_at: null,
      })
      .execute();
    await db.kysely.updateTable('pipeline_attempts').set({ status: 'running' }).where('id', '=', id).execute();
    await db.kysely
      .updateTable('pipeline_attempts')
      .set({ status: 'succeeded', finished_at: isoNow() })
      .where('id', '=', id)
      .execute();
    samples.push(performance.now() - t0);
  }
  return percentile(samples, 50);
}

async function stepOverhead(): Promise<number> {
  const perStep: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const run = await runner.startRun({ pipeline: 'empty-chain', source: 'bench' });
    await until(async () => (await store.getRun(run.id))?.status === 'succeeded');
    perStep.push((performance.now() - t0) / STEPS);
  }
  return percentile(perStep, 50);
}

async function eventToStep(): Promise<{ p50: number; p95: number }> {
  const bus = createLocalEventBus({ db, logger });
  const stop = createSensors({
    triggers: store.triggers,
    bus,
    logger,
    rules: [
      { name: 'bench', event: 'bench.tick', pipeline: 'empty-chain', params: {}, concurrencyKey: '', debounceMs: 0 },
    ],
    onPending: () => runner.wake(),
  }).start();
  const samples: number[] = [];
  for (let i = 0; i < EVENTS; i++) {
    lastStart = 0;
    const t0 = performance.now();
    await bus.publish({ type: 'bench.tick', source: 'bench', payload: { i } });
    await until(async () => lastStart > 0);
    samples.push(lastStart - t0);
    await runner.idle();
  }
  stop();
  return { p50: percentile(samples, 50), p95: percentile(samples, 95) };
}

const floor = await floorPerStep();
const overhead = await stepOverhead();
const event = await eventToStep();
await runner.stop();
await db.close();
rmSync(dir, { recursive: true, force: true });

console.log(`floor (3 Kysely writes per step):  ${round(floor)} ms`);
console.log(`runner overhead per empty step:     ${round(overhead)} ms (${round(overhead / floor)}x the floor)`);
console.log(
  `event -> first step started:        p50 ${round(event.p50)} ms, p95 ${round(event.p95)} ms (poll ${POLL_MS} ms)`,
);
reportFigures({
  step_overhead_ms: round(overhead),
  step_floor_ms: round(floor),
  step_overhead_vs_floor: round(overhead / floor),
  event_to_step_ms: round(event.p50),
  event_to_step_p95_ms: round(event.p95),
  event_to_step_vs_poll: round(event.p50 / POLL_MS),
});
