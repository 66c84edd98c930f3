import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import {
  createRuntimeFor,
  openEmbedder,
  openEvalJudge,
  openEventBus,
  openMetadataDb,
  openObjectStore,
  openRunLog,
  openVectorStore,
} from './adapters.ts';
import { type ApiKeyStore, createApiKeyStore, registerAuthGuard, registerAuthRoutes } from './auth/index.ts';
import {
  type AnswerStore,
  type ChatService,
  createAnswerStore,
  createChatService,
  createServingMetrics,
} from './chat/index.ts';
import { registerOpenAiRoutes } from './chat/openai-routes.ts';
import { registerAnswerRoutes } from './chat/routes.ts';
import type { Config } from './config/index.ts';
import { ConfigError } from './core/errors.ts';
import { createLogger, type Logger } from './core/logger.ts';
import { createReadiness, type Readiness } from './core/readiness.ts';
import { BERTHA_VERSION } from './core/version.ts';
import type { MetadataDb } from './db/index.ts';
import { createRuntimeEvaluator, GATE_REFUSAL_REASONS } from './eval/index.ts';
import { createSensors, type EventBus } from './events/index.ts';
import { createObjectChangeFeed, type ObjectChangeFeed, startObjectWatcher } from './events/object-changes.ts';
import { registerEventRoutes, registerStreamRoute } from './events/routes.ts';
import { registerAlertmanagerGateway, registerS3EventRoutes } from './events/webhook-routes.ts';
import {
  createKnowledgeRetriever,
  deferredVectorStore,
  type Embedder,
  type KnowledgeDeps,
  type Retriever,
  type VectorStore,
} from './knowledge/index.ts';
import { registerKnowledgeRoutes } from './knowledge/routes.ts';
import { registerLineageRoutes } from './lineage/index.ts';
import { configuredBundle, createFileDigests, type ModelBundle, starterBundle } from './models/index.ts';
import {
  createFeedbackMetrics,
  createFeedbackStore,
  createLoopMetrics,
  createMetricsRegistry,
  createMonitorLease,
  createQualityWatcher,
  type FeedbackStore,
  gatewayToken,
  loopObjectives,
  timeGatewayAlerts,
} from './monitor/index.ts';
import { registerFeedbackRoutes, registerMetricsRoute } from './monitor/routes.ts';
import type { ObjectStore } from './objects/index.ts';
import { builtinPipelines, loopRunTiming } from './pipelines/builtin/index.ts';
import {
  createLocalRunner,
  createPipelineCatalog,
  createRunStore,
  createStepHandlerRegistry,
  type LocalRunner,
  type PipelineCatalog,
  type RunStore,
} from './pipelines/index.ts';
import { registerPipelineRoutes, registerTriggerRoutes } from './pipelines/routes.ts';
import {
  createRolloutController,
  createRolloutStore,
  ROLLOUT_CHANGED,
  type RolloutStore,
  registerRolloutRoutes,
} from './rollout/index.ts';
import { registerHealthRoutes } from './server/health.ts';
import { createHttpServer } from './server/http.ts';
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
 * What one process runs. `all` (`bertha up`, and the CLI commands): everything. `serve`: the
 * HTTP API (chat, feedback, uploads, tracking, rollouts), as many replicas as the traffic
 * needs. `worker`: the pipeline runner, sensors, quality watcher, rollout loop and object change
 * feeds, with only /healthz, /readyz and /metrics on HTTP. Serve and worker processes share
 * the work through the database and the NATS event bus.
 */
export type BerthaRole = 'all' | 'serve' | 'worker';

/**
 * The one place that reads the config and wires the ports (`src/adapters.ts` opens the
 * adapters) into one running Bertha. Nothing imports this module but the CLI (and tests that
 * start Bertha the way the CLI does).
 */
export interface Bertha {
  config: Config;
  role: BerthaRole;
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

export interface CreateBerthaOptions {
  logger?: Logger;
  /** Retrieval for chat answers instead of the knowledge base's own retriever. */
  retriever?: Retriever;
  /** `bertha up`: with no model configured, train (or reuse) the starter model in the background and serve it. */
  prepareStarterModel?: boolean;
  /**
   * False for CLI commands that never answer a chat (ingest, pipeline, step, deploy): no model
   * is loaded and the registry's champion is not followed. Default true; a worker serves none.
   */
  serveChat?: boolean;
  /** Default `all`. */
  role?: BerthaRole;
}

/**
 * Builds every capability in the order they depend on one another (each section uses only
 * what the sections above it declared), registers the HTTP routes, and only then starts the
 * background work (model load, alias and rollout following, sensors, quality watcher, starter
 * training), so a builder that refuses the config leaves none of it running.
 */
export async function createBertha(config: Config, options: CreateBerthaOptions = {}): Promise<Bertha> {
  const role = options.role ?? 'all';
  if (role !== 'all' && config.events.bus === 'local') {
    throw new ConfigError(
      `events.bus: 'bertha ${role}' needs 'nats': the local bus reaches only its own process, so the other role would never see its events (one process: 'bertha up')`,
    );
  }
  // Rendered only in Prometheus mode or by `bertha monitor render`: a bad objective fails here, at start.
  loopObjectives(config.monitor.loopObjectives);
  const serves = role !== 'worker';
  const works = role !== 'serve';
  const rootLogger = options.logger ?? createLogger(config.log.level);
  const logger = role === 'all' ? rootLogger : rootLogger.child({ role });
  const serveChat = serves && (options.serveChat ?? true);
  const readiness = createReadiness();
  const metrics = createMetricsRegistry();

  // Storage: the metadata DB, the event bus stored in it, the object store.
  const { db, bus, objects } = await openStorage(config, logger, readiness);

  // Knowledge: embedder, vector store (opening in the background), retriever, change feed.
  const { embedder, vectors, knowledge, retriever, feed } = await openKnowledge(config, {
    db,
    bus,
    objects,
    logger,
    readiness,
  });

  // Serving: the chat service, on the configured bundle until the registry says otherwise.
  const configured = configuredBundle(config);
  const createRuntime = createRuntimeFor(config, logger);
  const answers = createAnswerStore(db);
  const fileDigests = createFileDigests({ cacheFile: path.join(config.dataDir, 'file-digests.json') });
  const chat = createChatService({
    modelName: config.serving.modelName,
    fileDigests,
    bundle: configured,
    createRuntime,
    retriever: options.retriever ?? retriever,
    answers,
    metrics: createServingMetrics(metrics),
    prompt: { systemPrompt: config.serving.systemPrompt, contextTemplate: config.serving.contextTemplate },
    defaultMaxTokens: config.serving.generation.maxTokens,
    generationDefaults: config.serving.generation,
    provenance: {
      chatTemplate: config.serving.chatTemplate,
      upstreamBaseUrl: config.serving.upstream.baseUrl,
      // A retriever given from outside searches in ways the config does not describe.
      search: options.retriever ? undefined : { mode: config.knowledge.searchMode, embedder: embedder.id },
    },
    queue: config.serving.queue,
    pricing: config.serving.pricing,
    logger: logger.child({ component: 'chat' }),
  });
  if (serveChat) readiness.register({ name: 'model', check: () => chat.status() });

  // Monitoring: feedback votes and the metrics read from them. Of the processes that do the
  // background work, the one holding the monitor lease exports those series and watches them.
  const feedback = createFeedbackStore(db);
  const monitorLease = createMonitorLease({
    db,
    ttlMs: config.pipelines.leaseMs,
    logger: logger.child({ component: 'monitor' }),
  });
  const feedbackMetrics = createFeedbackMetrics(metrics, feedback, {
    exported: () => monitorLease.held(),
    logger: logger.child({ component: 'monitor' }),
  });
  // The loop's own SLO figures, each observed by the process that ends the interval.
  const loop = createLoopMetrics(metrics, { gateRefusalReasons: GATE_REFUSAL_REASONS });

  // Tracking and model registry (MLflow's two services, embedded).
  const tracking = createTrackingStore(db);
  const registry = createModelRegistry({
    store: createRegistryStore(db),
    bus,
    logger: logger.child({ component: 'registry' }),
  });
  // A rollout names versions as `<model>/<n>`; the registry numbers them `<n>`.
  const versionNumber = (version: string) => version.slice(version.lastIndexOf('/') + 1);
  const bundleOf = (version: string) => registry.getBundle(config.tracking.model, versionNumber(version));

  // Rollout: canaries of a challenger, promoted to champion or rolled back on live feedback.
  const rolloutStore = createRolloutStore(db);
  const rollout = createRolloutController({
    store: rolloutStore,
    bus,
    logger: logger.child({ component: 'rollout' }),
    model: config.tracking.model,
    promote: async (version) => {
      await registry.setAlias(config.tracking.model, CHAMPION, versionNumber(version));
    },
    steps: config.rollout.steps,
    policy: config.rollout,
    loop,
  });

  // Pipelines: the built-in definitions, their run rows, and the local runner.
  // Scores bundles through the runtime factory chat serves them with.
  const evaluator = createRuntimeEvaluator({
    createRuntime,
    prompt: { systemPrompt: config.serving.systemPrompt, contextTemplate: config.serving.contextTemplate },
    judge: openEvalJudge(config, db),
  });
  const runs = openRunLog(config, tracking, objects, logger);
  const builtin = builtinPipelines({
    knowledge: () => knowledge,
    retraining: () => ({
      db,
      bus,
      evaluator,
      evaluation: config.evaluation,
      systemPrompt: config.serving.systemPrompt,
      retriever: options.retriever ?? retriever,
      rollout,
      objects,
      runs,
      registry,
      logger: logger.child({ component: 'llm-retraining' }),
      dataDir: config.dataDir,
      model: config.tracking.model,
      servedBundle: configured,
      retrievalTopK: config.serving.retrievalTopK,
      loop,
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
    observer: loopRunTiming(loop),
  });

  // HTTP routes. The guard goes first so that it covers every route registered after it. A
  // worker answers only probes and scrapes.
  const http = createHttpServer({ logger, bodyLimitBytes: config.server.bodyLimitBytes });
  const apiKeys = createApiKeyStore(db);
  registerAuthGuard(http, apiKeys, config.auth);
  registerHealthRoutes(http, readiness, BERTHA_VERSION);
  registerMetricsRoute(http, metrics);
  if (serves) {
    registerAuthRoutes(http, apiKeys, config.auth);
    registerEventRoutes(http, bus);
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
    registerFeedbackRoutes(http, { store: feedback, metrics: feedbackMetrics });
    registerAlertmanagerGateway(http, {
      bus,
      token: gatewayToken({ configured: config.monitor.gateway.token, dataDir: config.dataDir }),
      logger: logger.child({ component: 'gateway' }),
      afterStored: timeGatewayAlerts(feedback, loop),
    });
    registerTriggerRoutes(http, pipelineStore.triggers);
    registerPipelineRoutes(http, { catalog: pipelineCatalog, store: pipelineStore, runner: pipelineRunner });
    registerTrackingRoutes(http, { tracking, registry, objects });
    registerModelBundleRoutes(http, registry);
    registerStreamRoute(http, bus);
    registerRolloutRoutes(http, {
      store: rolloutStore,
      controller: rollout,
      championVersion: () => chat.bundle()?.version,
      checkVersion: async (version) => {
        await bundleOf(version);
      },
    });
    registerLineageRoutes(http, { db, dataDir: config.dataDir });
    await registerUiRoutes(http, { logger: logger.child({ component: 'ui' }) });
  }

  // Background work. The model loads in the background: /healthz answers at once, /readyz reports the load.
  if (serveChat) chat.start();
  // The registry's champion decides what chat serves; moving the alias swaps the bundle.
  const champion = serveChat
    ? followAlias({
        registry,
        bus,
        logger: logger.child({ component: 'registry' }),
        model: config.tracking.model,
        alias: CHAMPION,
        onBundle: (bundle) => chat.swapBundle(bundle),
      })
    : { stop: () => undefined, started: Promise.resolve() };
  // The running rollout decides which bundle serves the canary share; its events reach chat.
  const stopFollowingRollout = serveChat
    ? followRolloutCanary({ chat, bus, rolloutStore, bundleOf, model: config.tracking.model, logger })
    : () => undefined;
  // Sensors also run in CLI commands (`bertha ingest` waits for the trigger of its own event).
  const stopSensors = works
    ? createSensors({
        triggers: pipelineStore.triggers,
        bus,
        rules: config.sensors,
        logger: logger.child({ component: 'sensors' }),
        onPending: () => pipelineRunner.wake(),
        metrics: loop,
      }).start()
    : () => undefined;
  // With Prometheus configured, its rules fire through Alertmanager and the gateway instead.
  // It evaluates only while this process holds the monitor lease, taken in `listen`.
  const stopWatcher =
    works && config.monitor.mode === 'embedded'
      ? createQualityWatcher({
          rules: config.monitor.rules,
          store: feedback,
          bus,
          logger: logger.child({ component: 'watcher' }),
          loop,
        }).start(config.monitor.watcherIntervalMs, () => monitorLease.held())
      : async () => undefined;
  const starter =
    options.prepareStarterModel && serveChat && config.trainer.starter.enabled && !configured
      ? prepareStarterModel({
          dataDir: config.dataDir,
          threads: config.trainer.threads,
          steps: config.trainer.starter.steps,
          logger,
          register: (check) => readiness.register(check),
          // What the registry says is served wins over the demonstration model: the champion
          // found at start-up is loaded first (a reused starter is ready within milliseconds, so
          // the check must wait for that load, not only look at what chat serves now).
          onReady: async (model) => {
            await champion.started;
            if (!chat.bundle()) {
              await chat.swapBundle(
                starterBundle(model.modelPath, {
                  retrievalTopK: config.serving.retrievalTopK,
                  systemPrompt: config.serving.systemPrompt,
                }),
              );
            }
          },
        })
      : undefined;

  // Lifecycle: `listen` takes the monitor lease and starts the runner, the rollout loop and the
  // document watch (not in serve); `close` stops all of it.
  let stopMonitorLease: (() => Promise<void>) | undefined;
  let stopRollout: (() => Promise<void>) | undefined;
  let stopObjectWatch: (() => Promise<void>) | undefined;
  let closing: Promise<void> | undefined;
  const bertha: Bertha = {
    config,
    role,
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
      // Taken before the first scrape can arrive, so a lone process exports the feedback series from the start.
      if (works) stopMonitorLease = await monitorLease.start();
      const address = await http.listen({ host: config.server.host, port: config.server.port });
      if (works && config.pipelines.runner) {
        pipelineRunner.start();
        stopRollout = rollout.run(config.rollout.intervalMs);
      }
      bertha.url = address;
      if (works && feed) stopObjectWatch = await watchDocuments(config, feed, logger);
      return address;
    },
    close() {
      closing ??= (async () => {
        await starter?.stop();
        await http.close();
        champion.stop();
        await champion.started;
        await chat.close();
        await fileDigests.flush();
        await stopWatcher();
        await stopMonitorLease?.();
        await stopObjectWatch?.();
        await pipelineRunner.stop();
        await stopRollout?.();
        stopFollowingRollout();
        await bus.drain();
        stopSensors();
        await bus.close();
        await vectors.close();
        await embedder.close();
        await db.close();
      })();
      return closing;
    },
  };
  return bertha;
}

/** The metadata DB (migrated), the event bus stored in it, and the object store. */
async function openStorage(
  config: Config,
  logger: Logger,
  readiness: Readiness,
): Promise<{ db: MetadataDb; bus: EventBus; objects: ObjectStore }> {
  const db = openMetadataDb(config);
  const applied = await db.migrate();
  if (applied.length > 0) logger.info({ component: 'db', applied }, 'database migrated');
  readiness.register({
    name: 'database',
    check: async () => {
      await db.ping();
      return { ready: true, detail: db.dialect };
    },
  });
  const bus = await openEventBus(config, db, logger).catch(async (error: unknown) => {
    await db.close();
    throw error;
  });
  return { db, bus, objects: openObjectStore(config) };
}

interface KnowledgeBase {
  embedder: Embedder;
  /** Usable at once; calls wait until the store has opened. */
  vectors: VectorStore;
  knowledge: KnowledgeDeps;
  retriever: Retriever;
  /** Announces documents dropped into the folder or bucket, when watching or polling is configured. */
  feed: ObjectChangeFeed | undefined;
}

/** The knowledge base. The vector store opens in the background; /readyz reports it. */
async function openKnowledge(
  config: Config,
  deps: { db: MetadataDb; bus: EventBus; objects: ObjectStore; logger: Logger; readiness: Readiness },
): Promise<KnowledgeBase> {
  const { db, bus, objects, logger, readiness } = deps;
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
  const feed = watching
    ? createObjectChangeFeed({
        store: objects,
        db,
        bus,
        prefix: config.objects.documentsPrefix,
        source: config.objects.driver === 'fs' ? 'fs-watch' : 's3-poll',
        logger: logger.child({ component: 'object-changes' }),
      })
    : undefined;

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
  return { embedder, vectors, knowledge, retriever, feed };
}

/** Keeps chat's canary on the running rollout's challenger and share; returns the unsubscribe. */
function followRolloutCanary(deps: {
  chat: ChatService;
  bus: EventBus;
  rolloutStore: RolloutStore;
  bundleOf(version: string): Promise<ModelBundle>;
  model: string;
  logger: Logger;
}): () => void {
  const { chat, bus, rolloutStore, bundleOf, model, logger } = deps;
  const follow = async () => {
    const active = await rolloutStore.active(model);
    if (!active) return chat.setCanary(undefined, 0);
    await chat.setCanary(await bundleOf(active.challengerVersion), active.share);
  };
  const onError = (error: unknown) =>
    logger.error({ err: error, component: 'rollout' }, 'could not serve the rollout canary');
  const unsubscribe = bus.subscribe(ROLLOUT_CHANGED, () => follow().catch(onError));
  void follow().catch(onError);
  return unsubscribe;
}

/** A folder is watched (with a periodic rescan as a safety net); S3 is polled. */
async function watchDocuments(config: Config, feed: ObjectChangeFeed, logger: Logger): Promise<() => Promise<void>> {
  const folder =
    config.objects.driver === 'fs' ? path.join(config.objects.root, config.objects.documentsPrefix) : undefined;
  if (folder) await mkdir(folder, { recursive: true });
  return startObjectWatcher({
    feed,
    folder,
    intervalMs: config.objects.pollIntervalMs || (folder ? 60_000 : 0),
    logger: logger.child({ component: 'object-changes' }),
  });
}
