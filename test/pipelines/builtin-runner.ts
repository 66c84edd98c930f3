import { onTestFinished } from 'vitest';
import type { Logger } from '../../src/core/logger.ts';
import type { MetadataDb } from '../../src/db/index.ts';
import type { ObjectStore } from '../../src/objects/index.ts';
import type { builtinPipelines } from '../../src/pipelines/builtin/index.ts';
import type { RetrainingDeps } from '../../src/pipelines/builtin/llm-retraining.ts';
import {
  createLocalRunner,
  createPipelineCatalog,
  createRunStore,
  createStepHandlerRegistry,
  type RunRecord,
} from '../../src/pipelines/index.ts';
import { waitFor } from './wait.ts';

/** A tiny starter (4 steps) and a 4-step LoRA: a retraining run in seconds. */
export const QUICK_TRAINER: RetrainingDeps['trainer'] = {
  threads: 1,
  starterSteps: 4,
  lora: {
    steps: 4,
    rank: 4,
    alpha: 8,
    learningRate: 1e-2,
    batchSize: 2,
    sequenceLength: 256,
    validationFraction: 0.1,
  },
};

export interface BuiltinRunnerOptions {
  db: MetadataDb;
  objects: ObjectStore;
  logger: Logger;
  builtin: ReturnType<typeof builtinPipelines>;
  /** Steps and runs at once. */
  concurrency: number;
  leaseMs: number;
  /** How long `finished` waits for a run. */
  runTimeoutMs?: number;
}

/** A started local runner over the built-in pipelines, stopped when the test finishes. */
export function startBuiltinRunner(options: BuiltinRunnerOptions) {
  const { db, objects, logger, builtin } = options;
  const catalog = createPipelineCatalog(builtin.definitions, createStepHandlerRegistry(builtin.handlers));
  const store = createRunStore(db);
  const runner = createLocalRunner({
    store,
    objects,
    catalog,
    logger,
    stepConcurrency: options.concurrency,
    maxConcurrentRuns: options.concurrency,
    pollIntervalMs: 20,
    leaseMs: options.leaseMs,
  });
  runner.start();
  onTestFinished(() => runner.stop());
  /** Resolves with the run once it has ended, whichever way. */
  const finished = (id: string) =>
    waitFor<RunRecord>(
      `run ${id}`,
      async () => {
        const run = await store.getRun(id);
        return run && run.status !== 'queued' && run.status !== 'running' ? run : undefined;
      },
      options.runTimeoutMs,
    );
  return { catalog, store, runner, finished };
}
