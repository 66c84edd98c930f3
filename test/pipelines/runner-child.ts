import { createLogger } from '../../src/core/logger.ts';
import { createPostgresDb } from '../../src/db/postgres.ts';
import { createSqliteDb } from '../../src/db/sqlite.ts';
import { createFsObjectStore } from '../../src/objects/fs.ts';
import { createLocalRunner, createRunStore } from '../../src/pipelines/index.ts';
import { testCatalog } from './fixtures.ts';

/**
 * A runner in a process of its own, so a test can kill it with SIGKILL mid-run.
 * argv: a JSON object { driver, url, schema?, objects, markers, leaseMs, start? }.
 */
const options = JSON.parse(process.argv[2] as string) as {
  driver: 'sqlite' | 'postgres';
  url: string;
  schema?: string;
  objects: string;
  markers: string;
  leaseMs: number;
  start?: { pipeline: string; params: Record<string, unknown> };
};
const db =
  options.driver === 'sqlite'
    ? createSqliteDb({ path: options.url })
    : createPostgresDb({ url: options.url, schema: options.schema as string, poolSize: 3 });
await db.migrate();
const runner = createLocalRunner({
  store: createRunStore(db),
  objects: createFsObjectStore({ root: options.objects }),
  catalog: testCatalog(options.markers),
  logger: createLogger('silent'),
  stepConcurrency: 2,
  maxConcurrentRuns: 2,
  pollIntervalMs: 20,
  leaseMs: options.leaseMs,
});
runner.start();
if (options.start) {
  const run = await runner.startRun({ ...options.start, source: 'test' });
  process.stdout.write(`run ${run.id}\n`);
}
process.stdout.write('ready\n');
// The runner's poll timer is unref'd (it must not hold a CLI open); this process stands for a
// server, so it lives until it is killed, even when its first pass finds nothing to claim.
setInterval(() => undefined, 60_000);
