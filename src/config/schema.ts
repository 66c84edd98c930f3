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

export const knowledgeSchema = z
  .object({
    vectorStore: z.enum(['lancedb', 'milvus']).default('lancedb'),
    /** LanceDB folder (default `<dataDir>/vectors`). */
    lancedbPath: z.string().default(''),
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

export const configSchema = z
  .object({
    /** Where embedded state lives: SQLite, vectors, the object folder, model files. */
    dataDir: z.string().min(1).default('./.bertha'),
    server: serverSchema.default(serverSchema.parse({})),
    database: databaseSchema.default(databaseSchema.parse({})),
    log: logSchema.default(logSchema.parse({})),
    objects: objectsSchema.default(objectsSchema.parse({})),
    knowledge: knowledgeSchema.default(knowledgeSchema.parse({})),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
