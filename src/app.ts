import { mkdir } from 'node:fs/promises';
import path from 'node:path';
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
import { ConfigError } from './core/errors.ts';
import { createLogger, type Logger } from './core/logger.ts';
import { BERTHA_VERSION } from './core/version.ts';
import type { MetadataDb } from './db/index.ts';
import { createPostgresDb } from './db/postgres.ts';
import { createSqliteDb } from './db/sqlite.ts';
import { createSensors, type EventBus } from './events/index.ts';
import { createLocalEventBus } from './events/local-bus.ts';
import {
  createKnowledgeRetriever,
  deferredVectorStore,
  type Embedder,
  type KnowledgeDeps,
  type Retriever,
  type VectorStore,
} from './knowledge/index.ts';
import { createLexicalEmbedder } from './knowledge/lexical-embedder.ts';
import { registerKnowledgeRoutes } from './knowledge/routes.ts';
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
import { createObjectChangeFeed, type ObjectChangeFeed, startObjectWatcher } from './objects/changes.ts';
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
import { registerS3EventRoutes } from './server/routes/s3-events.ts';
import { registerStreamRoute } from './server/routes/stream.ts';
import { registerTriggerRoutes } from './server/routes/triggers.ts';
import {
  CHAMPION,
  createModelRegistry,
  createRegistryStore,
  createTrackingStore,
  followAlias,
  type ModelRegistry,
  registerModelBundleRoutes,
  registerTrackingRoutes,
  type TrackingStore,
} from './tracking/index.ts';
import { prepareStarterModel } from './train/index.ts';
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
  /** What the ingestion steps (`loadDocument` ...) take; the pipeline steps get it from here. */
  knowledge: KnowledgeDeps;
  /** The knowledge base as the chat service searches it. */
  retriever: Retriever;
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

export async function openEmbedder(config: Config): Promise<Embedder> {
  const settings = config.knowledge.embedder;
  if (settings.driver === 'gguf') {
    if (!settings.modelPath) throw new ConfigError('knowledge.embedder.modelPath: required when the driver is gguf');
    // Heavy optional adapters are loaded only when configured, so start-up stays fast.
    const { createGgufEmbedder } = await import('./knowledge/gguf-embedder.ts');
    return createGgufEmbedder({ modelPath: settings.modelPath, threads: settings.threads });
  }
  if (settings.driver === 'openai') {
    if (!settings.baseUrl || !settings.model) {
      throw new ConfigError('knowledge.embedder.baseUrl and .model: required when the driver is openai');
    }
    const { createOpenAiEmbedder } = await import('./knowledge/openai-embedder.ts');
    return createOpenAiEmbedder({
      baseUrl: settings.baseUrl,
      model: settings.model,
      apiKey: settings.apiKey,
      batchSize: settings.batchSize,
    });
  }
  return createLexicalEmbedder({ dimensions: settings.dimensions });
}

export async function openVectorStore(config: Config, embedder: Embedder, logger: Logger): Promise<VectorStore> {
  // One table/collection per vector space: switching embedders never mixes incomparable vectors.
  const space = embedder.id.replace(/[^A-Za-z0-9_]/g, '_');
  if (config.knowledge.vectorStore === 'milvus') {
    const milvus = config.knowledge.milvus;
    if (!milvus.address) throw new ConfigError('knowledge.milvus.address: required when vectorStore is milvus');
    const { createMilvusVectorStore } = await import('./knowledge/milvus.ts');
    return createMilvusVectorStore({
      address: milvus.address,
      token: milvus.token || undefined,
      username: milvus.username || undefined,
      password: milvus.password || undefined,
      database: milvus.database || undefined,
      collection: `${milvus.collection}_${space}`,
      dimensions: embedder.dimensions,
    });
  }
  const { createLanceVectorStore } = await import('./knowledge/lancedb.ts');
  return createLanceVectorStore({
    path: config.knowledge.lancedbPath,
    dimensions: embedder.dimensions,
    table: `chunks_${space}`,
    logger: logger.child({ component: 'lancedb' }),
  });
}

/** The small demonstration model `bertha up` trains when nothing else is configured. */
export function starterBundle(config: Config, modelPath: string): ModelBundle {
  return {
    version: 'starter',
    base: { kind: 'gguf', path: modelPath },
    adapters: [],
    systemPrompt: config.serving.systemPrompt,
    generation: {},
    retrieval: { enabled: true, topK: config.serving.retrievalTopK },
  };
}

export interface CreateBerthaOptions {
  logger?: Logger;
  /** Retrieval for chat answers instead of the knowledge base's own retriever. */
  retriever?: Retriever;
  /** `bertha up`: with no model configured, train (or reuse) the starter model in the background and serve it. */
  prepareStarterModel?: boolean;
}

export async function createBertha(config: Config, options: CreateBerthaOptions = {}): Promise<Bertha> {
  const logger = options.logger ?? createLogger(config.log.level);
  const db = openMetadataDb(config);
  const applied = await db.migrate();
  if (applied.length > 0) logger.info({ component: 'db', applied }, 'database migrated');

  const bus = createLocalEventBus({ db, logger: logger.child({ component: 'events' }) });
  const objects = openObjectStore(config);
  const embedder = await openEmbedder(config);
  const opening = openVectorStore(config, embedder, logger);
  const vectors = deferredVectorStore(opening, config.knowledge.vectorStore, embedder.dimensions);
  const knowledge: KnowledgeDeps = {
    db,
    objects,
    embedder,
    vectors,
    split: { chunkSize: config.knowledge.chunkSize, chunkOverlap: config.knowledge.chunkOverlap },
    batchSize: config.knowledge.embedder.batchSize,
    logger,
  };
  const retriever = createKnowledgeRetriever({ embedder, vectors, mode: config.knowledge.searchMode });
  const watching = (config.objects.driver === 'fs' && config.objects.watch) || config.objects.pollIntervalMs > 0;
  const feed: ObjectChangeFeed | undefined = watching
    ? createObjectChangeFeed({
        store: objects,
        db,
        bus,
        prefix: config.objects.documentsPrefix,
        source: config.objects.driver === 'fs' ? 'fs-watch' : 's3-poll',
        logger: logger.child({ component: 'object-changes' }),
      })
    : undefined;
  let stopObjectWatch: (() => Promise<void>) | undefined;
  const metrics = createMetricsRegistry();
  const readiness = createReadiness();
  readiness.register({
    name: 'database',
    check: async () => {
      await db.ping();
      return { ready: true, detail: db.dialect };
    },
  });

  let vectorState = 'loading the vector store';
  opening.then(
    () => {
      vectorState = 'ready';
    },
    (error: unknown) => {
      vectorState = `vector store failed to open: ${(error as Error).message}`;
      logger.error({ err: error, component: 'knowledge' }, 'vector store failed to open');
    },
  );
  readiness.register({
    name: 'knowledge',
    check: async () =>
      vectorState === 'ready'
        ? { ready: true, detail: `${await vectors.count()} chunks (${vectors.kind})` }
        : { ready: false, detail: vectorState },
  });

  const answers = createAnswerStore(db);
  const chat = createChatService({
    modelName: config.serving.modelName,
    bundle: configuredBundle(config),
    createRuntime: createRuntimeFor(config, logger),
    retriever: options.retriever ?? retriever,
    answers,
    metrics: createServingMetrics(metrics),
    prompt: { systemPrompt: config.serving.systemPrompt, contextTemplate: config.serving.contextTemplate },
    queue: config.serving.queue,
    pricing: config.serving.pricing,
    logger: logger.child({ component: 'chat' }),
  });
  readiness.register({ name: 'model', check: () => chat.status() });
  const builtin = builtinPipelines({
    knowledge: () => knowledge,
    // Called when a step runs, after the tracking store and registry below exist.
    retraining: () => ({
      db,
      objects,
      tracking,
      registry,
      logger: logger.child({ component: 'llm-retraining' }),
      dataDir: config.dataDir,
      model: config.tracking.model,
      servedBundle: configuredBundle(config),
      trainer: {
        threads: config.trainer.threads,
        starterSteps: config.trainer.starter.steps,
        lora: config.trainer.retraining,
        command: config.trainer.command,
      },
    }),
  });
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
  registerKnowledgeRoutes(http, {
    knowledge,
    bus,
    feed,
    documentsPrefix: config.objects.documentsPrefix,
    maxUploadBytes: config.objects.maxUploadBytes,
    searchMode: config.knowledge.searchMode,
  });
  if (config.objects.notificationToken) {
    registerS3EventRoutes(http, {
      bus,
      token: config.objects.notificationToken,
      bucket: config.objects.driver === 's3' ? config.objects.s3.bucket : undefined,
      storePrefix: config.objects.driver === 's3' ? config.objects.s3.prefix : '',
      documentsPrefix: config.objects.documentsPrefix,
      logger: logger.child({ component: 's3-events' }),
    });
  }

  // Loads in the background: /healthz answers at once, /readyz reports the load.
  chat.start();
  const starter =
    options.prepareStarterModel && config.trainer.starter.enabled && !configuredBundle(config)
      ? prepareStarterModel({
          dataDir: config.dataDir,
          threads: config.trainer.threads,
          steps: config.trainer.starter.steps,
          logger,
          register: (check) => readiness.register(check),
          // A registry champion that arrived meanwhile wins over the demonstration model.
          onReady: async (model) => {
            if (!chat.bundle()) await chat.swapBundle(starterBundle(config, model.modelPath));
          },
        })
      : undefined;

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
    onPending: () => pipelineRunner.wake(),
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
  // The registry's champion decides what chat serves; moving the alias swaps the bundle.
  const champion = followAlias({
    registry,
    bus,
    logger: logger.child({ component: 'registry' }),
    model: config.tracking.model,
    alias: CHAMPION,
    onBundle: (bundle) => chat.swapBundle(bundle),
  });
  registerStreamRoute(http, bus);
  await registerUiRoutes(http, { logger: logger.child({ component: 'ui' }) });

  let closing: Promise<void> | undefined;
  const bertha: Bertha = {
    config,
    logger,
    db,
    bus,
    objects,
    knowledge,
    retriever,
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
      if (feed) {
        // A folder is watched (with a periodic rescan as a safety net); S3 is polled.
        const folder =
          config.objects.driver === 'fs' ? path.join(config.objects.root, config.objects.documentsPrefix) : undefined;
        if (folder) await mkdir(folder, { recursive: true });
        stopObjectWatch = startObjectWatcher({
          feed,
          folder,
          intervalMs: config.objects.pollIntervalMs || (folder ? 60_000 : 0),
          logger: logger.child({ component: 'object-changes' }),
        });
      }
      return address;
    },
    close() {
      closing ??= (async () => {
        await starter?.stop();
        await http.close();
        champion.stop();
        await champion.started;
        await chat.close();
        await stopWatcher();
        await stopObjectWatch?.();
        await pipelineRunner.stop();
        await bus.drain();
        stopSensors();
        await vectors.close();
        await embedder.close();
        await db.close();
      })();
      return closing;
    },
  };
  return bertha;
}
