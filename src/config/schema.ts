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
    /** How often the runner looks for triggers, queued runs and cancel requests from other processes. */
    pollIntervalMs: z.number().int().positive().default(25),
    /** A run whose runner has not renewed its lease for this long is resumed by another (crash, kill -9). */
    leaseMs: z.number().int().positive().default(15_000),
    schedules: z.array(pipelineScheduleSchema).default([]),
    argo: pipelineArgoSchema.default(pipelineArgoSchema.parse({})),
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
    pipelines: pipelinesSchema.default(pipelinesSchema.parse({})),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
