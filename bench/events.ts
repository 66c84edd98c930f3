import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { createLogger } from '../src/core/logger.ts';
import { createSqliteDb } from '../src/db/sqlite.ts';
import { createLocalEventBus } from '../src/events/local-bus.ts';
import { percentile, reportFigures, round } from './stats.ts';

// Publishing through the event bus (Kysely over better-sqlite3, WAL) against the floor:
// the same row inserted with a raw prepared statement on an identically configured file.
const N = 5_000;
const dir = mkdtempSync(path.join(tmpdir(), 'bertha-bench-'));

function rawBaseline(): number {
  const raw = new SqliteDatabase(path.join(dir, 'raw.sqlite'));
  raw.pragma('journal_mode = WAL');
  raw.pragma('synchronous = NORMAL');
  raw.exec(
    'create table events (id text primary key, type text not null, source text not null, subject text, dedupe_key text unique, payload_json text not null, created_at text not null)',
  );
  const insert = raw.prepare('insert into events values (?, ?, ?, ?, ?, ?, ?)');
  const start = performance.now();
  for (let i = 0; i < N; i++) {
    insert.run(
      `evt_${i}`,
      'object.created',
      'bench',
      `doc-${i}.md`,
      null,
      JSON.stringify({ key: `doc-${i}.md` }),
      new Date().toISOString(),
    );
  }
  const seconds = (performance.now() - start) / 1000;
  raw.close();
  return N / seconds;
}

async function busPublish(): Promise<{ perSecond: number; p99: number }> {
  const db = createSqliteDb({ path: path.join(dir, 'bus.sqlite') });
  await db.migrate();
  const bus = createLocalEventBus({ db, logger: createLogger('silent') });
  const latencies: number[] = [];
  const start = performance.now();
  for (let i = 0; i < N; i++) {
    const t0 = performance.now();
    await bus.publish({
      type: 'object.created',
      source: 'bench',
      subject: `doc-${i}.md`,
      payload: { key: `doc-${i}.md` },
    });
    latencies.push(performance.now() - t0);
  }
  const seconds = (performance.now() - start) / 1000;
  await db.close();
  return { perSecond: N / seconds, p99: percentile(latencies, 99) };
}

const baseline = rawBaseline();
const bus = await busPublish();
rmSync(dir, { recursive: true, force: true });
console.log(`raw better-sqlite3 insert: ${Math.round(baseline)} rows/s`);
console.log(`event bus publish:         ${Math.round(bus.perSecond)} events/s (p99 ${round(bus.p99)} ms)`);
console.log(`ratio bus/raw:             ${round(bus.perSecond / baseline)}`);
reportFigures({
  publish_per_s: Math.round(bus.perSecond),
  raw_insert_per_s: Math.round(baseline),
  publish_ratio_vs_raw: round(bus.perSecond / baseline),
  publish_p99_ms: round(bus.p99),
});
