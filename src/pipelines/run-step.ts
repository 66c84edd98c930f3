import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ConflictError, NotFoundError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { isUniqueViolation } from '../db/index.ts';
import type { ObjectStore } from '../objects/index.ts';
import type { PipelineCatalog } from './catalog.ts';
import { resolveRunParams, stepOf } from './definition.ts';
import { executeStep, type StepOutcome } from './execute-step.ts';
import { createRunState } from './run-state.ts';
import type { RunRecord, RunStore } from './store.ts';

export interface RunOneStepOptions {
  catalog: PipelineCatalog;
  store: RunStore;
  objects: ObjectStore;
  logger: Logger;
  pipeline: string;
  step: string;
  runId: string;
  /** Run parameters; used to create the run row when it does not exist yet (the first Argo pod). */
  params: Record<string, unknown>;
  inputKeys: Record<string, string>;
  /** Writes one file per output, named for it, holding its object key (Argo output parameters). */
  outputsDir?: string | undefined;
  singleAttempt: boolean;
  owner: string;
  signal: AbortSignal;
}

async function findOrCreateRun(options: RunOneStepOptions): Promise<RunRecord> {
  const existing = await options.store.getRun(options.runId);
  if (existing) return existing;
  const definition = options.catalog.get(options.pipeline);
  const params = resolveRunParams(definition, options.params);
  try {
    // Created running: its pods are already running.
    return await options.store.createRun({ id: options.runId, definition, params, source: 'argo', executor: 'argo' });
  } catch (error) {
    // Parallel first steps of one workflow create the run at once: the first insert wins.
    if (!isUniqueViolation(error)) throw error;
    return (await options.store.getRun(options.runId)) as RunRecord;
  }
}

/**
 * `bertha step`: one step of one run, through the same `executeStep` the local runner uses.
 * Under Argo each pod runs this; the run row is created by the first pod and finished by the
 * step that completes it.
 */
export async function runOneStep(options: RunOneStepOptions): Promise<StepOutcome> {
  const definition = options.catalog.get(options.pipeline);
  const step = stepOf(definition, options.step);
  if (!step) throw new NotFoundError(`step of pipeline '${definition.name}'`, options.step);
  const run = await findOrCreateRun(options);
  if (run.pipeline !== definition.name) {
    throw new ConflictError(`run '${run.id}' belongs to pipeline '${run.pipeline}', not '${definition.name}'`);
  }
  const state = createRunState(options.store);
  const before = await options.store.getStep(run.id, step.name);
  if (before?.status === 'skipped') {
    // An earlier step decided the rest of the run has nothing to do; Argo still starts this pod.
    options.logger.info({ runId: run.id, step: step.name, reason: before.error }, 'step skipped');
    if (options.outputsDir) {
      await mkdir(options.outputsDir, { recursive: true });
      for (const name of step.outputs) await writeFile(path.join(options.outputsDir, name), '');
    }
    return { status: 'succeeded', cachedFrom: null, skipRemaining: before.error ?? 'skipped' };
  }
  const outcome = await executeStep({
    store: options.store,
    objects: options.objects,
    handlers: options.catalog.handlers,
    definition,
    run,
    step,
    owner: options.owner,
    logger: options.logger,
    signal: options.signal,
    singleAttempt: options.singleAttempt,
    inputKeys: options.inputKeys,
    state,
  });
  if (outcome.status === 'succeeded' && options.outputsDir) {
    await mkdir(options.outputsDir, { recursive: true });
    for (const name of step.outputs) {
      const artifact = await options.store.getArtifact(run.id, step.name, name);
      if (artifact) await writeFile(path.join(options.outputsDir, name), artifact.objectKey);
    }
  }
  if (run.executor === 'argo') await state.settleArgo(run.id, step.name, outcome);
  return outcome;
}
