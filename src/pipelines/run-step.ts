import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ConflictError, NotFoundError } from '../core/errors.ts';
import { isoNow } from '../core/ids.ts';
import type { Logger } from '../core/logger.ts';
import { isUniqueViolation } from '../db/index.ts';
import type { ObjectStore } from '../objects/index.ts';
import type { PipelineCatalog } from './catalog.ts';
import { resolveRunParams, stepOf } from './definition.ts';
import { executeStep, type StepOutcome } from './execute-step.ts';
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
    const run = await options.store.createRun({
      id: options.runId,
      definition,
      params,
      source: 'argo',
      executor: 'argo',
    });
    await options.store.updateRun(run.id, { status: 'running', started_at: isoNow() });
    return { ...run, status: 'running' };
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
  });
  if (outcome.status === 'succeeded' && options.outputsDir) {
    await mkdir(options.outputsDir, { recursive: true });
    for (const name of step.outputs) {
      const artifact = await options.store.getArtifact(run.id, step.name, name);
      if (artifact) await writeFile(path.join(options.outputsDir, name), artifact.objectKey);
    }
  }
  if (run.executor === 'argo') {
    const steps = await options.store.listSteps(run.id);
    if (outcome.status === 'failed') {
      await options.store.updateRun(run.id, {
        status: 'failed',
        error: `step '${step.name}' failed: ${outcome.error}`,
      });
    } else if (steps.every((candidate) => candidate.status === 'succeeded')) {
      await options.store.updateRun(run.id, { status: 'succeeded', error: null, finished_at: isoNow() });
    } else if (outcome.status === 'succeeded') {
      // A retried pod that succeeds after an earlier failure puts the run back on track.
      await options.store.updateRun(run.id, { status: 'running', error: null });
    }
  }
  return outcome;
}
