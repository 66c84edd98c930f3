import { z } from 'zod';

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

export const objectsSchema = z
  .object({
    driver: z.enum(['fs']).default('fs'),
    /** fs: the folder that holds the objects (default `<dataDir>/objects`). */
    root: z.string().default(''),
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
        /** CPU threads; 0 means one per core (node-llama-cpp's own default of 4 ran 17x slower on 2 cores). */
        maxThreads: z.number().int().min(0).default(0),
        gpu: z.enum(['auto', 'cuda', 'vulkan', 'metal', 'off']).default('auto'),
        /** Concurrent generations: one context sequence each. */
        parallel: z.number().int().min(1).max(64).default(2),
        /** Context tokens per sequence. */
        contextSize: z.number().int().min(64).default(4096),
        batchSize: z.number().int().min(1).default(512),
      })
      .strict()
      .default({ maxThreads: 0, gpu: 'auto', parallel: 2, contextSize: 4096, batchSize: 512 }),
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

export const configSchema = z
  .object({
    /** Where embedded state lives: SQLite, vectors, the object folder, model files. */
    dataDir: z.string().min(1).default('./.bertha'),
    server: serverSchema.default(serverSchema.parse({})),
    database: databaseSchema.default(databaseSchema.parse({})),
    log: logSchema.default(logSchema.parse({})),
    objects: objectsSchema.default(objectsSchema.parse({})),
    auth: authSchema.default(authSchema.parse({})),
    serving: servingSchema.default(servingSchema.parse({})),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
