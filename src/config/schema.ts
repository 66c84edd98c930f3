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

export const configSchema = z
  .object({
    /** Where embedded state lives: SQLite, vectors, the object folder, model files. */
    dataDir: z.string().min(1).default('./.bertha'),
    server: serverSchema.default(serverSchema.parse({})),
    database: databaseSchema.default(databaseSchema.parse({})),
    log: logSchema.default(logSchema.parse({})),
    objects: objectsSchema.default(objectsSchema.parse({})),
    auth: authSchema.default(authSchema.parse({})),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
