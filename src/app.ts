import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { type ApiKeyStore, createApiKeyStore, registerAuthGuard, registerAuthRoutes } from './auth/index.ts';
import {
  type AnswerStore,
  type ChatService,
  createAnswerStore,
  createChatService,
  createServingMetrics,
} from './chat/index.ts';
import type { Config } from './config/index.ts';
import { createLogger, type Logger } from './core/logger.ts';
import { BERTHA_VERSION } from './core/version.ts';
import type { MetadataDb } from './db/index.ts';
import { createPostgresDb } from './db/postgres.ts';
import { createSqliteDb } from './db/sqlite.ts';
import { createSensors, type EventBus } from './events/index.ts';
import { createLocalEventBus } from './events/local-bus.ts';
import type { Retriever } from './knowledge/index.ts';
import type { LlmRuntime } from './llm/index.ts';
import { createLlamaCppRuntime } from './llm/llama-cpp.ts';
import { createOpenAiRuntime } from './llm/openai.ts';
import type { ModelBundle } from './models/index.ts';
import {
  createFeedbackMetrics,
  createFeedbackStore,
  createMetricsRegistry,
  createQualityWatcher,
  type FeedbackStore,
  gatewayToken,
} from './monitor/index.ts';
import { createFsObjectStore } from './objects/fs.ts';
import type { ObjectStore } from './objects/index.ts';
import { createS3ObjectStore } from './objects/s3.ts';
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
import { registerAlertmanagerGateway } from './server/routes/alertmanager.ts';
import { registerAnswerRoutes } from './server/routes/answers.ts';
import { registerEventRoutes } from './server/routes/events.ts';
import { registerFeedbackRoutes } from './server/routes/feedback.ts';
import { registerHealthRoutes } from './server/routes/health.ts';
import { registerMetricsRoute } from './server/routes/metrics.ts';
import { registerOpenAiRoutes } from './server/routes/openai.ts';
import { registerPipelineRoutes } from './server/routes/pipelines.ts';
import { registerStreamRoute } from './server/routes/stream.ts';
import { registerTriggerRoutes } from './server/routes/triggers.ts';
import {
  createModelRegistry,
  createRegistryStore,
  createTrackingStore,
  type ModelRegistry,
  registerModelBundleRoutes,
  registerTrackingRoutes,
  type TrackingStore,
} from './tracking/index.ts';
import { registerUiRoutes } from './ui/index.ts';

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
  feedback: FeedbackStore;
  readiness: Readiness;
  apiKeys: ApiKeyStore;
  /** Experiment tracking (MLflow's tracking service, embedded). */
  tracking: TrackingStore;
  /** Model registry: versions, aliases, and the bundle an alias serves (`resolveAlias`). */
  registry: ModelRegistry;
  http: FastifyInstance;
  /** Answers `/v1/chat/completions`; `chat.swapBundle` moves serving to another model bundle. */
  chat: ChatService;
  answers: AnswerStore;
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
  if (config.objects.driver === 's3') {
    const s3 = config.objects.s3;
    return createS3ObjectStore({
      bucket: s3.bucket,
      endpoint: s3.endpoint || undefined,
      region: s3.region,
      forcePathStyle: s3.forcePathStyle,
      accessKeyId: s3.accessKeyId || undefined,
      secretAccessKey: s3.secretAccessKey || undefined,
      prefix: s3.prefix,
    });
  }
  return createFsObjectStore({ root: config.objects.root });
}

/** The bundle `bertha up` serves before any registry alias says otherwise: a GGUF file, or an upstream model. */
export function configuredBundle(config: Config): ModelBundle | undefined {
  const serving = config.serving;
  const base: ModelBundle['base'] | undefined = serving.model
    ? { kind: 'gguf', path: serving.model }
    : serving.upstream.baseUrl && serving.upstream.model
      ? { kind: 'upstream', model: serving.upstream.model }
      : undefined;
  if (!base) return undefined;
  return {
    version: serving.modelVersion,
    base,
    adapters: serving.adapters,
    systemPrompt: serving.systemPrompt,
    ...(serving.chatTemplate ? { chatTemplate: serving.chatTemplate } : {}),
    generation: {},
    retrieval: { enabled: true, topK: serving.retrievalTopK },
  };
}

export function createRuntimeFor(config: Config, logger: Logger): (bundle: ModelBundle) => LlmRuntime {
  const serving = config.serving;
  return (bundle) => {
    const runtimeLogger = logger.child({ component: 'llm', version: bundle.version });
    if (bundle.base.kind === 'upstream') {
      return createOpenAiRuntime({
        baseUrl: serving.upstream.baseUrl,
        apiKey: serving.upstream.apiKey,
        model: bundle.base.model,
        parallel: serving.upstream.parallel,
        timeoutMs: serving.upstream.timeoutMs,
        defaults: serving.generation,
        logger: runtimeLogger,
      });
    }
    const template = bundle.chatTemplate ?? serving.chatTemplate;
    return createLlamaCppRuntime({
      modelPath: bundle.base.path,
      adapters: bundle.adapters,
      ...(template ? { fallbackChatTemplate: template } : {}),
      ...serving.llamaCpp,
      defaults: serving.generation,
      logger: runtimeLogger,
    });
  };
}

export interface CreateBerthaOptions {
  logger?: Logger;
  /** Retrieval for chat answers; without one, answers use no retrieved context. */
  retriever?: Retriever;
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

  const answers = createAnswerStore(db);
  const chat = createChatService({
    modelName: config.serving.modelName,
    bundle: configuredBundle(config),
    createRuntime: createRuntimeFor(config, logger),
    retriever: options.retriever,
    answers,
    metrics: createServingMetrics(metrics),
    prompt: { systemPrompt: config.serving.systemPrompt, contextTemplate: config.serving.contextTemplate },
    queue: config.serving.queue,
    pricing: config.serving.pricing,
    logger: logger.child({ component: 'chat' }),
  });
  readiness.register({ name: 'model', check: () => chat.status() });
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
  // The guard goes first so that it covers every route registered after it.
  const apiKeys = createApiKeyStore(db);
  registerAuthGuard(http, apiKeys, config.auth);
  registerAuthRoutes(http, apiKeys, config.auth);
  registerHealthRoutes(http, readiness, BERTHA_VERSION);
  registerEventRoutes(http, bus);
  registerMetricsRoute(http, metrics);
  registerOpenAiRoutes(http, chat);
  registerAnswerRoutes(http, answers);
  // Loads in the background: /healthz answers at once, /readyz reports the load.
  chat.start();

  const feedback = createFeedbackStore(db);
  const feedbackMetrics = await createFeedbackMetrics(metrics, feedback);
  registerFeedbackRoutes(http, { store: feedback, metrics: feedbackMetrics });
  registerAlertmanagerGateway(http, {
    bus,
    token: gatewayToken({ configured: config.monitor.gateway.token, dataDir: config.dataDir }),
    logger: logger.child({ component: 'gateway' }),
  });
  const stopSensors = createSensors({
    db,
    bus,
    rules: config.sensors,
    logger: logger.child({ component: 'sensors' }),
  }).start();
  registerTriggerRoutes(http, db);
  // With Prometheus configured, its rules fire through Alertmanager and the gateway instead.
  const stopWatcher =
    config.monitor.mode === 'embedded'
      ? createQualityWatcher({
          rules: config.monitor.rules,
          metrics: feedbackMetrics,
          store: feedback,
          bus,
          logger: logger.child({ component: 'watcher' }),
        }).start(config.monitor.watcherIntervalMs)
      : async () => undefined;
  registerPipelineRoutes(http, { catalog: pipelineCatalog, store: pipelineStore, runner: pipelineRunner });
  const tracking = createTrackingStore(db);
  const registry = createModelRegistry({
    store: createRegistryStore(db),
    bus,
    logger: logger.child({ component: 'registry' }),
  });
  registerTrackingRoutes(http, { tracking, registry, objects });
  registerModelBundleRoutes(http, registry);
  registerStreamRoute(http, bus);
  await registerUiRoutes(http, { logger: logger.child({ component: 'ui' }) });

  let closing: Promise<void> | undefined;
  const bertha: Bertha = {
    config,
    logger,
    db,
    bus,
    objects,
    metrics,
    feedback,
    readiness,
    apiKeys,
    tracking,
    registry,
    http,
    chat,
    answers,
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
        await chat.close();
        await stopWatcher();
        await pipelineRunner.stop();
        await bus.drain();
        stopSensors();
        await db.close();
      })();
      return closing;
    },
  };
  return bertha;
}
