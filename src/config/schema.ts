import { z } from 'zod';
import { commandTrainerSchema } from './command-trainer.ts';

/**
 * The one schema of `bertha.yaml`. Every section is strict so that a misspelt key fails
 * at start-up instead of being silently ignored. Paths that are left empty are derived
 * from `dataDir` by `resolveConfig`.
 */
export const serverSchema = z
  .object({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(8080),
    /** How long SIGTERM waits for in-flight requests before closing them. */
    shutdownTimeoutMs: z.number().int().positive().default(10_000),
    /** Largest JSON body accepted by the API routes, in bytes. */
    bodyLimitBytes: z.number().int().positive().default(1_048_576),
  })
  .strict();

export const databaseSchema = z
  .object({
    driver: z.enum(['sqlite', 'postgres']).default('sqlite'),
    /** SQLite: file path (default `<dataDir>/bertha.sqlite`). PostgreSQL: a connection URL. */
    url: z.string().default(''),
    /** PostgreSQL schema that holds Bertha's tables; lets several deployments share one database. */
    schema: z
      .string()
      .regex(/^[a-z_][a-z0-9_]*$/, 'a lower-case SQL identifier')
      .default('public'),
    poolSize: z.number().int().positive().default(10),
  })
  .strict();

export const logSchema = z
  .object({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .strict();

export const s3Schema = z
  .object({
    bucket: z.string().default('bertha'),
    /** MinIO or another S3-protocol server, e.g. `http://127.0.0.1:9000`; empty for AWS S3. */
    endpoint: z.string().default(''),
    region: z.string().min(1).default('us-east-1'),
    /** MinIO needs path-style URLs; AWS S3 accepts both. */
    forcePathStyle: z.boolean().default(true),
    /** Empty: the AWS SDK's default credential chain (env, profile, instance role). */
    accessKeyId: z.string().default(''),
    secretAccessKey: z.string().default(''),
    /** Bertha's objects live under this key prefix in the bucket. */
    prefix: z.string().default(''),
  })
  .strict();

export const authSchema = z
  .object({
    /** When true the dashboard and admin APIs need an API key (`bertha auth create-key`). */
    enabled: z.boolean().default(false),
    /** `public`: chat, models and feedback need no key; `keyed`: they need a key of any role. */
    chat: z.enum(['public', 'keyed']).default('public'),
  })
  .strict();

/** Serving: which model answers `/v1/chat/completions`, on which runtime, at what price. */
export const servingSchema = z
  .object({
    /** The model id clients send in `model` and `GET /v1/models` lists. */
    modelName: z.string().min(1).default('bertha'),
    /** GGUF file served by the llama-cpp runtime (`bertha up --model`, env BERTHA_MODEL). Empty: no local model. */
    model: z.string().default(''),
    /** Version recorded on answers for a model that is not in the registry. */
    modelVersion: z.string().min(1).default('local'),
    /** LoRA adapters applied on top of the GGUF base. */
    adapters: z.array(z.object({ path: z.string().min(1), scale: z.number().default(1) }).strict()).default([]),
    /** Jinja chat template used when the GGUF carries none of its own. */
    chatTemplate: z.string().default(''),
    systemPrompt: z.string().default('You are a helpful assistant.'),
    /** How retrieved passages enter the system prompt; `{context}` is replaced by the numbered passages. */
    contextTemplate: z
      .string()
      .default('Answer using the passages below when they are relevant, and cite them as [n].\n\n{context}'),
    retrievalTopK: z.number().int().min(1).max(50).default(4),
    generation: z
      .object({
        temperature: z.number().min(0).max(2).default(0.7),
        topP: z.number().gt(0).max(1).default(0.95),
        maxTokens: z.number().int().positive().default(512),
      })
      .strict()
      .default({ temperature: 0.7, topP: 0.95, maxTokens: 512 }),
    llamaCpp: z
      .object({
        /**
         * CPU threads. `auto`: the fastest of 1, 2, half and all cores, timed at a model's first
         * load and stored under the data dir (one thread beat two on a 27M model on 2 cores, two
         * beat one on a 309M model). 0: one per core (node-llama-cpp's own default of 4 ran 17x
         * slower on 2 cores).
         */
        maxThreads: z.union([z.literal('auto'), z.number().int().min(0)]).default('auto'),
        gpu: z.enum(['auto', 'cuda', 'vulkan', 'metal', 'off']).default('auto'),
        /** Concurrent generations: one context sequence each. */
        parallel: z.number().int().min(1).max(64).default(2),
        /**
         * Context tokens per sequence. 0: the model's training context, at most 4096. A value
         * above the training context is honoured, with a warning at load.
         */
        contextSize: z.union([z.literal(0), z.number().int().min(64)]).default(0),
        batchSize: z.number().int().min(1).default(512),
      })
      .strict()
      .default({ maxThreads: 'auto', gpu: 'auto', parallel: 2, contextSize: 0, batchSize: 512 }),
    /** Any OpenAI-compatible server (vLLM, llama.cpp server, Ollama, OpenAI); used when `model` is empty and `model` here is set. */
    upstream: z
      .object({
        baseUrl: z.string().default(''),
        apiKey: z.string().default(''),
        model: z.string().default(''),
        /** Concurrent requests sent upstream. */
        parallel: z.number().int().min(1).max(1024).default(16),
        timeoutMs: z.number().int().positive().default(120_000),
      })
      .strict()
      .default({ baseUrl: '', apiKey: '', model: '', parallel: 16, timeoutMs: 120_000 }),
    queue: z
      .object({
        /** Requests waiting for a free slot beyond this get 429 with Retry-After. */
        maxWaiting: z.number().int().min(0).default(32),
        /** A request that waited this long for a slot gets 503 with Retry-After. */
        maxWaitMs: z.number().int().positive().default(30_000),
      })
      .strict()
      .default({ maxWaiting: 32, maxWaitMs: 30_000 }),
    /** Cost per answer: upstream models by tokens, local models by compute time (seconds of generation). */
    pricing: z
      .object({
        promptPer1k: z.number().min(0).default(0),
        completionPer1k: z.number().min(0).default(0),
        perComputeSecond: z.number().min(0).default(0),
      })
      .strict()
      .default({ promptPer1k: 0, completionPer1k: 0, perComputeSecond: 0 }),
  })
  .strict();

/** Prometheus duration, e.g. `30s`, `5m`, `1h` (the subset both Prometheus and Bertha's watcher read). */
const duration = z.string().regex(/^[0-9]+(ms|s|m|h|d)$/, 'a duration such as 30s, 5m or 1h');

export const monitorSchema = z
  .object({
    /**
     * `embedded`: Bertha evaluates the degradation rules itself (no other software needed).
     * `prometheus`: Prometheus evaluates the rendered rules and Alertmanager calls the gateway.
     */
    mode: z.enum(['embedded', 'prometheus']).default('embedded'),
    /** How Prometheus and Alertmanager reach Bertha (default `http://<server.host>:<server.port>`). */
    berthaUrl: z.string().default(''),
    rules: z
      .object({
        /** The seed's rule: more thumbs-down than thumbs-up votes on a model version, held for `for`. */
        downOverUp: z
          .object({ enabled: z.boolean().default(true), for: duration.default('60s') })
          .strict()
          .default({ enabled: true, for: '60s' }),
        /** Share of thumbs-down over `window` above `threshold`, once at least `minVotes` votes came in. */
        downRatio: z
          .object({
            enabled: z.boolean().default(true),
            window: duration.default('1h'),
            threshold: z.number().min(0).max(1).default(0.3),
            minVotes: z.number().int().positive().default(20),
            for: duration.default('5m'),
          })
          .strict()
          .default({ enabled: true, window: '1h', threshold: 0.3, minVotes: 20, for: '5m' }),
      })
      .strict()
      .default({
        downOverUp: { enabled: true, for: '60s' },
        downRatio: { enabled: true, window: '1h', threshold: 0.3, minVotes: 20, for: '5m' },
      }),
    /**
     * The loop's own objectives (docs/architecture.md, loop SLOs): how long each timed hop may take
     * before its `BerthaLoop*Slow` alert fires. Each must be a bound of the loop histograms' buckets
     * (5m, 10m, 15m, 30m, 1h, 2h, 4h, 8h, 1d, 2d, 7d ...); unset hops keep their defaults. Raise
     * `dataset_to_candidate` when the base is a 7B fine-tuned on CPU (hours per run).
     */
    loopObjectives: z
      .object({
        feedback_to_alert: duration.optional(),
        alert_to_run_started: duration.optional(),
        dataset_to_candidate: duration.optional(),
        candidate_to_verdict: duration.optional(),
        verdict_to_full_traffic: duration.optional(),
        time_to_rollback: duration.optional(),
        upload_to_searchable: duration.optional(),
      })
      .strict()
      .default({}),
    /** The embedded watcher's evaluation interval (mode `embedded`). */
    watcherIntervalMs: z.number().int().positive().default(5_000),
    gateway: z
      .object({
        /** Bearer token Alertmanager sends to `/events/alertmanager` (default: generated under dataDir). */
        token: z.string().default(''),
      })
      .strict()
      .default({ token: '' }),
    prometheus: z
      .object({
        scrapeInterval: duration.default('15s'),
        evaluationInterval: duration.default('15s'),
        /** host:port of the Alertmanager Prometheus sends alerts to. */
        alertmanagerAddress: z.string().min(1).default('127.0.0.1:9093'),
      })
      .strict()
      .default({ scrapeInterval: '15s', evaluationInterval: '15s', alertmanagerAddress: '127.0.0.1:9093' }),
    alertmanager: z
      .object({
        groupWait: duration.default('30s'),
        groupInterval: duration.default('5m'),
        repeatInterval: duration.default('4h'),
      })
      .strict()
      .default({ groupWait: '30s', groupInterval: '5m', repeatInterval: '4h' }),
    kubernetes: z
      .object({
        namespace: z.string().min(1).default('bertha'),
        /** Label on Bertha's Service that the ServiceMonitor selects. */
        serviceLabel: z.string().min(1).default('bertha'),
        /** Named port of Bertha's Service that serves /metrics. */
        portName: z.string().min(1).default('http'),
        /** Secret holding the gateway token (key `token`) for the AlertmanagerConfig. */
        tokenSecret: z.string().min(1).default('bertha-gateway'),
      })
      .strict()
      .default({ namespace: 'bertha', serviceLabel: 'bertha', portName: 'http', tokenSecret: 'bertha-gateway' }),
  })
  .strict();

/**
 * A sensor maps an event type to a pipeline trigger. Templates (`params`, `concurrencyKey`)
 * take `{{subject}}`, `{{type}}`, `{{id}}` and `{{payload.<field>}}` from the event.
 */
export const sensorSchema = z
  .object({
    name: z.string().min(1),
    event: z.string().min(1),
    pipeline: z.string().min(1),
    params: z.record(z.string(), z.string()).default({}),
    /** Triggers with the same key never run concurrently; empty: no concurrency limit. */
    concurrencyKey: z.string().default(''),
    /** A second event for the same concurrency key within this window is recorded as skipped. */
    debounceMs: z.number().int().min(0).default(0),
  })
  .strict();

/**
 * Retraining is debounced and limited to one at a time per model version; every object
 * change triggers ingestion (a removal right after an upload must not be dropped).
 */
export const DEFAULT_SENSORS: z.input<typeof sensorSchema>[] = [
  {
    name: 'retrain-on-degradation',
    event: 'model.degraded',
    pipeline: 'llm-retraining',
    params: { model_version: '{{payload.model_version}}' },
    concurrencyKey: 'llm-retraining:{{payload.model_version}}',
    debounceMs: 600_000,
  },
  {
    name: 'ingest-created-object',
    event: 'object.created',
    pipeline: 'vector-ingestion',
    params: { key: '{{payload.key}}', change: 'created' },
  },
  {
    name: 'ingest-removed-object',
    event: 'object.removed',
    pipeline: 'vector-ingestion',
    params: { key: '{{payload.key}}', change: 'removed' },
  },
];

export const pipelineScheduleSchema = z
  .object({
    name: z.string().regex(/^[a-z][a-z0-9-]*$/, 'lower-case letters, digits and dashes'),
    pipeline: z.string().min(1),
    /** Cron expression (croner syntax; an optional leading seconds field). */
    cron: z.string().min(1),
    params: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).default({}),
    timezone: z.string().optional(),
  })
  .strict();

export const pipelineArgoSchema = z
  .object({
    namespace: z.string().default('bertha'),
    image: z.string().default('ghcr.io/bertha/bertha:latest'),
    /** How the image starts the CLI; each step pod runs `<command> step <pipeline> <step> ...`. */
    command: z.array(z.string().min(1)).min(1).default(['bertha']),
    serviceAccount: z.string().default('bertha-pipelines'),
    /** Secret with BERTHA_* variables (database URL, object store credentials) for step pods. */
    configSecret: z.string().default('bertha-config'),
    /** MinIO endpoint and bucket that Argo Events watches for uploads. */
    minioEndpoint: z.string().default('minio.bertha.svc:9000'),
    uploadsBucket: z.string().default('documents'),
    minioSecret: z.string().default('minio-credentials'),
    webhookPort: z.number().int().min(1).max(65535).default(12000),
  })
  .strict();

export const pipelinesSchema = z
  .object({
    /** Run pipelines in this process; turn off in a process that only serves. */
    runner: z.boolean().default(true),
    stepConcurrency: z.number().int().positive().default(4),
    maxConcurrentRuns: z.number().int().positive().default(4),
    /**
     * How often the runner looks for triggers, queued runs and cancel requests from other
     * processes; triggers written in this process wake it at once.
     */
    pollIntervalMs: z.number().int().positive().default(250),
    /** A run whose runner has not renewed its lease for this long is resumed by another (crash, kill -9). */
    leaseMs: z.number().int().positive().default(15_000),
    schedules: z.array(pipelineScheduleSchema).default([]),
    argo: pipelineArgoSchema.default(pipelineArgoSchema.parse({})),
  })
  .strict();

export const trackingSchema = z
  .object({
    /**
     * A remote MLflow server where pipeline steps record their runs (params, metrics, datasets,
     * artifacts) and the CLI's `runs` commands read; empty = Bertha's own embedded server. The
     * registry whose aliases decide what is served stays Bertha's own.
     */
    uri: z.string().default(''),
    /** Bearer token for the remote MLflow (`MLFLOW_TRACKING_TOKEN`). */
    token: z.string().default(''),
    /** Registered model whose `champion`/`challenger` aliases decide what is served. */
    model: z.string().min(1).default('bertha-chat'),
  })
  .strict();

export const objectsSchema = z
  .object({
    driver: z.enum(['fs', 's3']).default('fs'),
    /** fs: the folder that holds the objects (default `<dataDir>/objects`). */
    root: z.string().default(''),
    s3: s3Schema.default(s3Schema.parse({})),
    /** Largest document `POST /v1/documents` accepts, in bytes (413 past it). */
    maxUploadBytes: z.number().int().positive().default(52_428_800),
    /** Key prefix where uploaded and watched documents live (the knowledge base's source). */
    documentsPrefix: z.string().default('documents/'),
    /** fs: watch the folder and publish object.created/object.removed for changes made behind Bertha's back. */
    watch: z.boolean().default(true),
    /**
     * s3: poll ListObjectsV2 every this many ms and publish changes by ETag, for stores that
     * cannot send bucket notifications. 0 disables polling.
     */
    pollIntervalMs: z.number().int().min(0).default(0),
    /** Bearer token MinIO/S3 bucket notifications must send to `POST /events/s3`; empty disables the route. */
    notificationToken: z.string().default(''),
  })
  .strict();

export const eventsSchema = z
  .object({
    /**
     * `local`: in-process, for one Bertha process. `nats`: NATS JetStream, so every process of
     * a deployment sees every event and shares the work of the sensors.
     */
    bus: z.enum(['local', 'nats']).default('local'),
    nats: z
      .object({
        /** Comma-separated NATS URLs. */
        servers: z.string().min(1).default('nats://127.0.0.1:4222'),
        /** The JetStream stream that holds the events; created or updated at start. */
        stream: z
          .string()
          .regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, `_` and `-`')
          .default('BERTHA_EVENTS'),
        /**
         * Events of type `t` go to subject `<subjectPrefix>.t`. Streams on one NATS may not share
         * subjects: deployments sharing a server each need their own stream and prefix.
         */
        subjectPrefix: z
          .string()
          .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, 'dot-separated letters, digits, `_` and `-`')
          .default('bertha.events'),
      })
      .strict()
      .default({ servers: 'nats://127.0.0.1:4222', stream: 'BERTHA_EVENTS', subjectPrefix: 'bertha.events' }),
  })
  .strict();

export const embedderSchema = z
  .object({
    /**
     * `lexical`: built in, no download; hashed word and character n-grams (matches words,
     * not meaning). `gguf`: an embedding model through node-llama-cpp. `openai`: any
     * OpenAI-compatible `/v1/embeddings` server.
     */
    driver: z.enum(['lexical', 'gguf', 'openai']).default('lexical'),
    /** lexical: vector size. */
    dimensions: z.number().int().min(16).max(8192).default(384),
    /** gguf: path to the GGUF embedding model. */
    modelPath: z.string().default(''),
    /** openai: e.g. `http://127.0.0.1:8000/v1`. */
    baseUrl: z.string().default(''),
    /** openai: model name sent to the server. */
    model: z.string().default(''),
    apiKey: z.string().default(''),
    /** Texts per embedding request / batch. */
    batchSize: z.number().int().positive().default(64),
    /** gguf: CPU threads (2 cores here: more threads ran slower). */
    threads: z.number().int().positive().default(2),
  })
  .strict();

export const milvusSchema = z
  .object({
    /** e.g. `127.0.0.1:19530`; empty means Milvus is not configured. */
    address: z.string().default(''),
    token: z.string().default(''),
    username: z.string().default(''),
    password: z.string().default(''),
    database: z.string().default(''),
    collection: z.string().default('bertha_chunks'),
  })
  .strict();

/** The knowledge base in PostgreSQL, shared by every replica (vectorStore: postgres). */
export const postgresVectorsSchema = z
  .object({
    /** Connection URL; empty: `database.url` when the metadata database is PostgreSQL. */
    url: z.string().default(''),
    /** Schema of the chunk tables; empty: `database.schema` when the metadata database is PostgreSQL, else `public`. */
    schema: z
      .string()
      .regex(/^([a-z_][a-z0-9_]*)?$/, 'a lower-case SQL identifier')
      .default(''),
    /** Text search configuration of full-text search: `simple` (no stemming, any language), `english`, ... */
    language: z
      .string()
      .regex(/^[a-z_][a-z0-9_]*$/, 'a lower-case SQL identifier')
      .default('simple'),
    poolSize: z.number().int().positive().default(4),
  })
  .strict();

export const knowledgeSchema = z
  .object({
    /** lancedb: embedded, one process. postgres: shared by replicas. milvus: large scale. */
    vectorStore: z.enum(['lancedb', 'postgres', 'milvus']).default('lancedb'),
    /** LanceDB folder (default `<dataDir>/vectors`). */
    lancedbPath: z.string().default(''),
    postgres: postgresVectorsSchema.default(postgresVectorsSchema.parse({})),
    milvus: milvusSchema.default(milvusSchema.parse({})),
    embedder: embedderSchema.default(embedderSchema.parse({})),
    /** Largest chunk in characters; sentences are kept whole where they fit. */
    chunkSize: z.number().int().min(64).default(1000),
    /** Characters of trailing sentences repeated at the start of the next chunk. */
    chunkOverlap: z.number().int().min(0).default(150),
    /** How the retriever searches: vector, full-text, or both fused by reciprocal rank. */
    searchMode: z.enum(['vector', 'fulltext', 'hybrid']).default('hybrid'),
  })
  .strict()
  .refine((value) => value.chunkOverlap < value.chunkSize, {
    message: 'chunkOverlap must be smaller than chunkSize',
    path: ['chunkOverlap'],
  });

/** Training on this machine (ggml through node-llama-cpp's libraries) and the starter model. */
export const trainerSchema = z
  .object({
    /** CPU threads a training process uses. */
    threads: z.number().int().min(1).max(256).default(2),
    starter: z
      .object({
        /** With no model configured, `bertha up` trains the small demonstration model in the background. */
        enabled: z.boolean().default(true),
        /** Optimizer steps of its recipe (fewer: faster and worse); a change trains a new one. */
        steps: z.number().int().min(1).max(100_000).default(240),
      })
      .strict()
      .default({ enabled: true, steps: 240 }),
    /** The `retrain-model` step of the `llm-retraining` pipeline. */
    retraining: z
      .object({
        /**
         * LoRA on the served model (ignored when `command` is set): on its Bertha checkpoint when Bertha
         * trained it, else on its GGUF, frozen in its stored type (docs/training.md).
         */
        steps: z.number().int().min(1).max(1_000_000).default(100),
        rank: z.number().int().min(1).max(256).default(8),
        alpha: z.number().positive().default(16),
        learningRate: z.number().positive().max(1).default(1e-2),
        batchSize: z.number().int().min(1).max(256).default(4),
        /** Longest training window in tokens; also capped by the model's context and the dataset's size. Memory grows with it. */
        sequenceLength: z.number().int().min(2).max(8192).default(256),
        /**
         * Share of the dataset held out (by a hash of each example's id) for the gate's domain,
         * perplexity and generative suites; a small knowledge base may need more than 0.1 to
         * reach `evaluation.gate.minItems`.
         */
        validationFraction: z.number().min(0).lt(1).default(0.1),
      })
      .strict()
      .default({
        steps: 100,
        rank: 8,
        alpha: 16,
        learningRate: 1e-2,
        batchSize: 4,
        sequenceLength: 256,
        validationFraction: 0.1,
      }),
    /**
     * An external trainer (`CommandTrainerSpec`, ./command-trainer.ts; contract in
     * docs/training.md): when set, retraining runs it instead of the built-in LoRA: a GPU job,
     * full fine-tuning, or an architecture other than llama.
     */
    command: commandTrainerSchema.optional(),
  })
  .strict();

/** Suites the gate can decide on: the benchmarks and the generative evaluations (docs/loop.md). */
const GATE_SUITES = [
  'benchmark-domain',
  'benchmark-gold',
  'hallucination-eval',
  'factcheck-eval',
  'subject-matter-eval',
] as const;

const evaluationSchema = z
  .object({
    /** The promotion gate over champion and challenger scored on the same items (docs/loop.md). */
    gate: z
      .object({
        /** Suite the challenger must win on; never perplexity. */
        primary: z.enum(GATE_SUITES).default('benchmark-domain'),
        /** Mean per-item accuracy gain the interval's lower bound must exceed. */
        margin: z.number().min(-1).max(1).default(0),
        /** Suites that must not get worse beyond their tolerance. */
        guards: z
          .array(
            z
              .object({
                suite: z.enum([...GATE_SUITES, 'heldout-perplexity']),
                tolerance: z.number().min(0).max(1),
              })
              .strict(),
          )
          .default([{ suite: 'benchmark-gold', tolerance: 0.05 }]),
        minItems: z.number().int().min(1).default(20),
        confidence: z.number().gt(0.5).lt(1).default(0.95),
        resamples: z.number().int().min(100).max(100_000).default(2000),
        seed: z.number().int().default(1),
      })
      .strict()
      .default({
        primary: 'benchmark-domain',
        margin: 0,
        guards: [{ suite: 'benchmark-gold', tolerance: 0.05 }],
        minItems: 20,
        confidence: 0.95,
        resamples: 2000,
        seed: 1,
      }),
    /** Most cloze items benchmark-domain builds from held-out knowledge. */
    domainItems: z.number().int().min(1).max(10_000).default(200),
    /**
     * The in-context challenger: the base model with this many approved answers from the
     * training feedback in its system prompt, gated beside the retrained model; 0: no prompt arm.
     */
    promptArm: z
      .object({ examples: z.number().int().min(0).max(32).default(4) })
      .strict()
      .default({ examples: 4 }),
    /** Most questions the generative suites (hallucination-, factcheck-, subject-matter-eval) answer; 0: none. */
    generativeItems: z.number().int().min(0).max(10_000).default(50),
    /** Tokens a generated answer may have (greedy, temperature 0). */
    maxAnswerTokens: z.number().int().min(1).max(8192).default(128),
    /** Lexical faithfulness: share of a statement's content words a passage sentence must hold to support it. */
    supportThreshold: z.number().gt(0).max(1).default(0.6),
    /** subject-matter-eval: an answer is correct when its token F1 against the reference reaches this. */
    correctF1: z.number().gt(0).max(1).default(0.5),
    /**
     * An LLM judge for faithfulness (any OpenAI-compatible server); when `baseUrl` is set it
     * replaces the lexical proxy in hallucination-eval. Verdicts are cached in the database.
     */
    judge: z
      .object({
        /** e.g. `http://127.0.0.1:8000/v1`; empty: no judge. */
        baseUrl: z.string().default(''),
        model: z.string().default(''),
        apiKey: z.string().default(''),
        timeoutMs: z.number().int().positive().default(60_000),
        /** Judge requests at once. */
        parallel: z.number().int().min(1).max(64).default(4),
      })
      .strict()
      .default({ baseUrl: '', model: '', apiKey: '', timeoutMs: 60_000, parallel: 4 }),
  })
  .strict();

const rolloutSchema = z
  .object({
    /** Challenger shares of new conversations, increasing; after the last the challenger is promoted. */
    steps: z.array(z.number().gt(0).lt(1)).min(1).default([0.1, 0.5]),
    minVotes: z.number().int().min(1).default(20),
    minAnswers: z.number().int().min(1).default(20),
    confidence: z.number().gt(0.5).lt(1).default(0.95),
    downRateTolerance: z.number().min(0).max(1).default(0.05),
    errorRateTolerance: z.number().min(0).max(1).default(0.05),
    /** How often the controller looks at the running canary. */
    intervalMs: z.number().int().min(100).default(10_000),
  })
  .strict();

export const configSchema = z
  .object({
    /** Where embedded state lives: SQLite, vectors, the object folder, model files. */
    dataDir: z.string().min(1).default('./.bertha'),
    server: serverSchema.default(serverSchema.parse({})),
    database: databaseSchema.default(databaseSchema.parse({})),
    log: logSchema.default(logSchema.parse({})),
    objects: objectsSchema.default(objectsSchema.parse({})),
    events: eventsSchema.default(eventsSchema.parse({})),
    auth: authSchema.default(authSchema.parse({})),
    serving: servingSchema.default(servingSchema.parse({})),
    monitor: monitorSchema.default(monitorSchema.parse({})),
    sensors: z.array(sensorSchema).default(DEFAULT_SENSORS.map((sensor) => sensorSchema.parse(sensor))),
    pipelines: pipelinesSchema.default(pipelinesSchema.parse({})),
    tracking: trackingSchema.default(trackingSchema.parse({})),
    knowledge: knowledgeSchema.default(knowledgeSchema.parse({})),
    trainer: trainerSchema.default(trainerSchema.parse({})),
    evaluation: evaluationSchema.default(evaluationSchema.parse({})),
    rollout: rolloutSchema.default(rolloutSchema.parse({})),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
