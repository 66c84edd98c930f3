import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { Config } from './config/index.ts';
import { createLogger, type Logger } from './core/logger.ts';
import { BERTHA_VERSION } from './core/version.ts';
import type { MetadataDb } from './db/index.ts';
import { createPostgresDb } from './db/postgres.ts';
import { createSqliteDb } from './db/sqlite.ts';
import type { EventBus } from './events/index.ts';
import { createLocalEventBus } from './events/local-bus.ts';
import { createMetricsRegistry } from './monitor/index.ts';
import { createFsObjectStore } from './objects/fs.ts';
import type { ObjectStore } from './objects/index.ts';
import { builtinPipelines } from './pipelines/builtin/index.ts';
import {
  createLocalRunner,
  createPipelineCatalog,
  createRunStore,
  createStepHandlerRegistry,
  type LocalRunner,
  type PipelineCatalog,
  type RunStore,
} from './pipelines/index.ts';
import { createHttpServer } from './server/http.ts';
import { createReadiness, type Readiness } from './server/readiness.ts';
import { registerEventRoutes } from './server/routes/events.ts';
import { registerHealthRoutes } from './server/routes/health.ts';
import { registerMetricsRoute } from './server/routes/metrics.ts';
import { registerPipelineRoutes } from './server/routes/pipelines.ts';

/**
 * The one place that reads the config and wires adapters into ports. Nothing imports
 * this module but the CLI (and tests that start Bertha the way the CLI does).
 */
export interface Bertha {
  config: Config;
  logger: Logger;
  db: MetadataDb;
  bus: EventBus;
  objects: ObjectStore;
  metrics: Registry;
  readiness: Readiness;
  http: FastifyInstance;
  /** Pipeline definitions, their run rows, and the local runner (started by `listen` when enabled). */
  pipelines: { catalog: PipelineCatalog; store: RunStore; runner: LocalRunner };
  /** Base URL once `listen` resolved. */
  url: string | undefined;
  listen(): Promise<string>;
  /** Stops accepting requests, lets in-flight ones finish, then releases everything. */
  close(): Promise<void>;
}

export function openMetadataDb(config: Config): MetadataDb {
  return config.database.driver === 'postgres'
    ? createPostgresDb({ url: config.database.url, schema: config.database.schema, poolSize: config.database.poolSize })
    : createSqliteDb({ path: config.database.url });
}

export function openObjectStore(config: Config): ObjectStore {
  return createFsObjectStore({ root: config.objects.root });
}

export interface CreateBerthaOptions {
  logger?: Logger;
}

export async function createBertha(config: Config, options: CreateBerthaOptions = {}): Promise<Bertha> {
  const logger = options.logger ?? createLogger(config.log.level);
  const db = openMetadataDb(config);
  const applied = await db.migrate();
  if (applied.length > 0) logger.info({ component: 'db', applied }, 'database migrated');

  const bus = createLocalEventBus({ db, logger: logger.child({ component: 'events' }) });
  const objects = openObjectStore(config);
  const metrics = createMetricsRegistry();
  const readiness = createReadiness();
  readiness.register({
    name: 'database',
    check: async () => {
      await db.ping();
      return { ready: true, detail: db.dialect };
    },
  });

  const builtin = builtinPipelines();
  const pipelineCatalog = createPipelineCatalog(builtin.definitions, createStepHandlerRegistry(builtin.handlers));
  const pipelineStore = createRunStore(db);
  const pipelineRunner = createLocalRunner({
    store: pipelineStore,
    objects,
    catalog: pipelineCatalog,
    logger,
    stepConcurrency: config.pipelines.stepConcurrency,
    maxConcurrentRuns: config.pipelines.maxConcurrentRuns,
    pollIntervalMs: config.pipelines.pollIntervalMs,
    leaseMs: config.pipelines.leaseMs,
    schedules: config.pipelines.schedules,
  });

  const http = createHttpServer({ logger, bodyLimitBytes: config.server.bodyLimitBytes });
  registerHealthRoutes(http, readiness, BERTHA_VERSION);
  registerEventRoutes(http, bus);
  registerMetricsRoute(http, metrics);
  registerPipelineRoutes(http, { catalog: pipelineCatalog, store: pipelineStore, runner: pipelineRunner });

  let closing: Promise<void> | undefined;
  const bertha: Bertha = {
    config,
    logger,
    db,
    bus,
    objects,
    metrics,
    readiness,
    http,
    pipelines: { catalog: pipelineCatalog, store: pipelineStore, runner: pipelineRunner },
    url: undefined,
    async listen() {
      const address = await http.listen({ host: config.server.host, port: config.server.port });
      if (config.pipelines.runner) pipelineRunner.start();
      bertha.url = address;
      return address;
    },
    close() {
      closing ??= (async () => {
        await http.close();
        await pipelineRunner.stop();
        await bus.drain();
        await db.close();
      })();
      return closing;
    },
  };
  return bertha;
}
