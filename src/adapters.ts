import path from 'node:path';
import type { Config } from './config/index.ts';
import { ConfigError } from './core/errors.ts';
import type { Logger } from './core/logger.ts';
import type { MetadataDb } from './db/index.ts';
import { createPostgresDb } from './db/postgres.ts';
import { createSqliteDb } from './db/sqlite.ts';
import type { EvalJudge } from './eval/index.ts';
import { createOpenAiJudge } from './eval/judge.ts';
import { createDbJudgementCache } from './eval/judge-cache.ts';
import type { EventBus } from './events/index.ts';
import { createLocalEventBus } from './events/local-bus.ts';
import { createNatsEventBus } from './events/nats-bus.ts';
import type { Embedder, VectorStore } from './knowledge/index.ts';
import { createLexicalEmbedder } from './knowledge/lexical-embedder.ts';
import type { LlmRuntime } from './llm/index.ts';
import { createLlamaCppRuntime } from './llm/llama-cpp.ts';
import { createOpenAiRuntime } from './llm/openai.ts';
import type { ModelBundle } from './models/index.ts';
import { createFsObjectStore } from './objects/fs.ts';
import type { ObjectStore } from './objects/index.ts';
import { createS3ObjectStore } from './objects/s3.ts';
import { createEmbeddedRunLog } from './tracking/embedded-run-log.ts';
import { createTrackingClient, type RunLog, type TrackingStore } from './tracking/index.ts';
import { createMlflowRunLog } from './tracking/mlflow-run-log.ts';

// The adapters, chosen from the config: one function per port. Within src/ this is the only
// module that imports adapters; `src/app.ts` wires the ports these functions return.

export function openMetadataDb(config: Config): MetadataDb {
  return config.database.driver === 'postgres'
    ? createPostgresDb({ url: config.database.url, schema: config.database.schema, poolSize: config.database.poolSize })
    : createSqliteDb({ path: config.database.url });
}

/** The event bus, persisted in the metadata DB: in-process, or on NATS JetStream for several processes. */
export async function openEventBus(config: Config, db: MetadataDb, logger: Logger): Promise<EventBus> {
  const events = logger.child({ component: 'events' });
  if (config.events.bus === 'local') return createLocalEventBus({ db, logger: events });
  return createNatsEventBus({
    db,
    logger: events,
    servers: config.events.nats.servers
      .split(',')
      .map((server) => server.trim())
      .filter(Boolean),
    stream: config.events.nats.stream,
    subjectPrefix: config.events.nats.subjectPrefix,
  });
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

/** The LLM judge of hallucination-eval, when `evaluation.judge.baseUrl` names one; its verdicts cached in the metadata DB. */
export function openEvalJudge(config: Config, db: MetadataDb): EvalJudge | undefined {
  const judge = config.evaluation.judge;
  if (!judge.baseUrl) return undefined;
  return {
    judge: createOpenAiJudge({
      baseUrl: judge.baseUrl,
      model: judge.model,
      apiKey: judge.apiKey || undefined,
      timeoutMs: judge.timeoutMs,
    }),
    cache: createDbJudgementCache(db),
    parallel: judge.parallel,
  };
}

/** Where pipeline steps record runs: the remote MLflow `tracking.uri` names, else the embedded tracker. */
export function openRunLog(config: Config, tracking: TrackingStore, objects: ObjectStore, logger: Logger): RunLog {
  if (!config.tracking.uri) return createEmbeddedRunLog(tracking, objects);
  return createMlflowRunLog(
    createTrackingClient({
      uri: config.tracking.uri,
      token: config.tracking.token || undefined,
      logger: logger.child({ component: 'tracking-client' }),
    }),
  );
}

/** The runtime a bundle is served with: an upstream model through the OpenAI-compatible API, a GGUF through llama.cpp. */
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
      threadChoiceFile: path.join(config.dataDir, 'llama-threads.json'),
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
  if (config.knowledge.vectorStore === 'postgres') {
    const settings = config.knowledge.postgres;
    const metadataOnPostgres = config.database.driver === 'postgres';
    const url = settings.url || (metadataOnPostgres ? config.database.url : '');
    if (!url) {
      throw new ConfigError(
        'knowledge.postgres.url: required when vectorStore is postgres and the metadata database is not PostgreSQL',
      );
    }
    const { createPostgresVectorStore } = await import('./knowledge/postgres-vector-store.ts');
    return createPostgresVectorStore({
      url,
      schema: settings.schema || (metadataOnPostgres ? config.database.schema : 'public'),
      // Beside the metadata tables, where `chunks` already names the chunk records.
      table: `vector_chunks_${space}`,
      dimensions: embedder.dimensions,
      language: settings.language,
      poolSize: settings.poolSize,
      logger: logger.child({ component: 'postgres-vectors' }),
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
