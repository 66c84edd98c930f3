import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { BerthaError } from '../core/errors.ts';
import { isoNow, newId } from '../core/ids.ts';
import type { Logger } from '../core/logger.ts';
import type { PipelineLogsTable } from '../db/index.ts';
import { type ObjectBody, type ObjectStore, readObject } from '../objects/index.ts';
import { backoffFor, type PipelineDefinition, type ResolvedStep, type RunParams } from './definition.ts';
import type { StepContext, StepHandlerRegistry, StepLogger, StepResult } from './handlers.ts';
import { createRunState, type RunState, type StepStatus } from './run-state.ts';
import { createStepAttemptLineage, type StepAttemptLineage } from './step-lineage.ts';
import type { ArtifactRecord, RunRecord, RunStore } from './store.ts';

export type StepOutcome =
  | { status: 'succeeded'; cachedFrom: string | null; skipRemaining?: string }
  | { status: 'failed'; error: string }
  | { status: 'cancelled' };

export interface ExecuteStepOptions {
  store: RunStore;
  objects: ObjectStore;
  handlers: StepHandlerRegistry;
  definition: PipelineDefinition;
  run: RunRecord;
  step: ResolvedStep;
  /** Who runs the attempt: a runner id, or `argo:<pod>`. */
  owner: string;
  logger: Logger;
  /** Cancel or lease loss. */
  signal: AbortSignal;
  /** Under Argo the retries are the template's retryStrategy: run one attempt and report. */
  singleAttempt?: boolean;
  /** Input name -> object key, when the caller already knows them (Argo passes them as parameters). */
  inputKeys?: Record<string, string>;
  /** Attempts already made, when the caller has just read the step (saves a query per step). */
  attemptsSoFar?: number;
  /** The caller's; by default one over `store`. */
  state?: RunState;
}

export class StepTimeoutError extends BerthaError {
  constructor(step: string, timeoutMs: number) {
    super('step_timeout', `step '${step}' timed out after ${timeoutMs} ms`, 500, { step, timeoutMs });
  }
}

/** Where a step's output lives in the ObjectStore. */
export function artifactKey(pipeline: string, runId: string, step: string, name: string): string {
  return `pipelines/${pipeline}/${runId}/${step}/${name}`;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Persists log lines in order, in batches, without making the handler wait on the database. */
function createStepLog(store: RunStore, logger: Logger, runId: string, step: string, attempt: number) {
  let pending: PipelineLogsTable[] = [];
  let chain: Promise<void> = Promise.resolve();
  const flushNow = async () => {
    const rows = pending;
    pending = [];
    try {
      await store.appendLogs(rows);
    } catch (error) {
      logger.error({ err: error, runId, step, lines: rows.length }, 'could not store step log lines');
    }
  };
  const write = (level: 'debug' | 'info' | 'warn' | 'error') => (message: string, fields?: Record<string, unknown>) => {
    logger[level]({ runId, step, attempt, ...fields }, message);
    pending.push({
      id: newId('log'),
      run_id: runId,
      step,
      attempt,
      level,
      message,
      fields_json: fields ? JSON.stringify(fields) : null,
      created_at: isoNow(),
    });
    if (pending.length === 1) chain = chain.then(flushNow);
  };
  const log: StepLogger = { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
  return {
    log,
    flush: async () => {
      await chain;
      if (pending.length > 0) await flushNow();
    },
  };
}

function renderTemplate(template: string, params: RunParams): string {
  return template.replace(/\{\{\s*params\.([^}\s]+)\s*\}\}/g, (_, name: string) => String(params[name] ?? ''));
}

async function resolveInputs(
  options: ExecuteStepOptions,
): Promise<Map<string, ArtifactRecord | { objectKey: string; etag: string }>> {
  const { store, run, step, objects } = options;
  const resolved = new Map<string, ArtifactRecord | { objectKey: string; etag: string }>();
  for (const [name, ref] of Object.entries(step.inputs)) {
    const given = options.inputKeys?.[name];
    if (given) {
      const info = await objects.head(given);
      if (!info) throw new BerthaError('artifact_missing', `input '${name}' object '${given}' does not exist`, 500);
      resolved.set(name, { objectKey: given, etag: info.etag });
      continue;
    }
    const artifact = await store.getArtifact(run.id, ref.from, ref.artifact);
    if (!artifact) {
      throw new BerthaError('artifact_missing', `input '${name}' (${ref.from}.${ref.artifact}) was never written`, 500);
    }
    resolved.set(name, artifact);
  }
  return resolved;
}

/** Reuses an earlier step's artifacts when the cache key matches and every object still exists. */
async function reuseFromCache(options: ExecuteStepOptions, cacheKey: string): Promise<string | null> {
  const { store, run, step, objects, definition } = options;
  const hit = await store.findCached(definition.name, cacheKey, run.id);
  if (!hit) return null;
  const artifacts = (await store.listArtifacts(hit.runId)).filter((artifact) => artifact.step === hit.step);
  for (const name of step.outputs) {
    const artifact = artifacts.find((candidate) => candidate.name === name);
    if (!artifact || !(await objects.head(artifact.objectKey))) return null;
  }
  for (const artifact of artifacts) await store.putArtifact(run.id, step.name, artifact);
  return hit.runId;
}

/**
 * Runs one step of a run: resolves its inputs, runs the handler with a timeout, stores its
 * artifacts and logs, retries per policy. The local runner and `bertha step` both call this.
 */
export async function executeStep(options: ExecuteStepOptions): Promise<StepOutcome> {
  const { store, objects, handlers, definition, run, step, owner, signal } = options;
  const state = options.state ?? createRunState(store);
  const logger = options.logger.child({ pipeline: definition.name });
  const handler = handlers.get(step.handler);
  if (!handler) {
    const error = `no handler '${step.handler}' is registered for step '${step.name}'`;
    await state.endPendingStep(run.id, step.name, 'failed', error);
    return { status: 'failed', error };
  }
  const params: RunParams = Object.fromEntries(
    step.params.filter((name) => name in run.params).map((name) => [name, run.params[name] as RunParams[string]]),
  );

  let attempt = options.attemptsSoFar ?? (await store.getStep(run.id, step.name))?.attempts ?? 0;
  let failures = 0;
  for (;;) {
    if (signal.aborted) return { status: 'cancelled' };
    attempt += 1;
    const attemptId = await state.startAttempt(run.id, step.name, attempt, owner);
    const stepLog = createStepLog(store, logger, run.id, step.name, attempt);
    const lineage = createStepAttemptLineage({
      db: store.db,
      pipeline: definition.name,
      runId: run.id,
      step: step.name,
      attempt,
      inputs: Object.values(step.inputs).map((ref) => artifactKey(definition.name, run.id, ref.from, ref.artifact)),
      outputs: step.outputs.map((name) => artifactKey(definition.name, run.id, step.name, name)),
      logger,
    });
    await lineage.started();
    let outcome: StepOutcome;
    try {
      outcome = await runAttempt(options, { handler, params, attempt, log: stepLog.log, lineage });
    } catch (error) {
      outcome = { status: 'failed', error: messageOf(error) };
      stepLog.log.error(`attempt ${attempt} failed: ${messageOf(error)}`);
    }
    await stepLog.flush();
    await lineage.ended(signal.aborted ? { status: 'cancelled' } : outcome);
    const now = isoNow();
    const stepRow = (status: StepStatus, changes: Parameters<RunState['finishAttempt']>[2]['changes']) => ({
      runId: run.id,
      name: step.name,
      status,
      changes,
    });
    if (outcome.status === 'succeeded') {
      await state.finishAttempt(
        attemptId,
        { status: 'succeeded', error: null },
        stepRow('succeeded', { progress: 1, cached_from: outcome.cachedFrom, finished_at: now }),
      );
      return outcome;
    }
    if (outcome.status === 'cancelled' || signal.aborted) {
      await state.finishAttempt(
        attemptId,
        { status: 'cancelled', error: 'cancelled' },
        stepRow('cancelled', { error: 'cancelled', finished_at: now }),
      );
      return { status: 'cancelled' };
    }
    failures += 1;
    if (options.singleAttempt || failures > step.retry.limit) {
      await state.finishAttempt(
        attemptId,
        { status: 'failed', error: outcome.error },
        stepRow('failed', { error: outcome.error, finished_at: now }),
      );
      return outcome;
    }
    const wait = backoffFor(step.retry, failures);
    await state.finishAttempt(
      attemptId,
      { status: 'failed', error: outcome.error },
      stepRow('pending', { error: outcome.error }),
    );
    logger.info({ runId: run.id, step: step.name, attempt, waitMs: wait }, 'step failed; retrying after backoff');
    try {
      await sleep(wait, undefined, { signal });
    } catch {
      await state.endPendingStep(run.id, step.name, 'cancelled', null);
      return { status: 'cancelled' };
    }
  }

  async function runAttempt(
    options: ExecuteStepOptions,
    attemptState: {
      handler: NonNullable<ReturnType<StepHandlerRegistry['get']>>;
      params: RunParams;
      attempt: number;
      log: StepLogger;
      lineage: StepAttemptLineage;
    },
  ): Promise<StepOutcome> {
    const inputs = await resolveInputs(options);
    let cacheKey: string | null = null;
    if (step.cacheKey !== undefined) {
      const etags = [...inputs.entries()]
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([name, input]) => `${name}=${input.etag}`);
      const digest = createHash('sha256').update(etags.join('\n')).digest('hex').slice(0, 16);
      cacheKey = `${step.name}:${renderTemplate(step.cacheKey, attemptState.params)}:${digest}`;
      await store.setStepCacheKey(run.id, step.name, cacheKey);
      const cachedFrom = await reuseFromCache(options, cacheKey);
      if (cachedFrom) {
        attemptState.log.info(`reused the artifacts of run ${cachedFrom} (cache key ${cacheKey})`);
        return { status: 'succeeded', cachedFrom };
      }
    }

    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(new StepTimeoutError(step.name, step.timeoutMs)), step.timeoutMs);
    const attemptSignal = AbortSignal.any([signal, timeout.signal]);
    const written = new Set<string>();
    const writeArtifact = async (name: string, body: ObjectBody) => {
      if (!step.outputs.includes(name)) {
        throw new BerthaError('artifact_undeclared', `step '${step.name}' does not declare output '${name}'`, 500);
      }
      const key = artifactKey(definition.name, run.id, step.name, name);
      const info = await objects.put(key, body);
      await store.putArtifact(run.id, step.name, { name, objectKey: key, size: info.size, etag: info.etag });
      written.add(name);
      return info;
    };
    let result: StepResult | undefined;
    const context: StepContext = {
      runId: run.id,
      pipeline: definition.name,
      step: step.name,
      attempt: attemptState.attempt,
      params: attemptState.params,
      inputs: {
        names: [...inputs.keys()],
        read: async (name) => {
          const input = inputs.get(name);
          if (!input) throw new BerthaError('artifact_undeclared', `step '${step.name}' has no input '${name}'`, 500);
          return readObject(objects, input.objectKey);
        },
        json: async <T>(name: string) => JSON.parse((await context.inputs.read(name)).toString('utf8')) as T,
      },
      artifacts: {
        write: writeArtifact,
        writeJson: (name, value) => writeArtifact(name, JSON.stringify(value)),
      },
      log: attemptState.log,
      progress: async (fraction, message) => {
        await store.setStepProgress(run.id, step.name, Math.max(0, Math.min(1, fraction)), message ?? null);
      },
      signal: attemptSignal,
      lineage: attemptState.lineage.context,
    };
    try {
      // A handler that ignores its signal still loses the race against the abort.
      const aborted = new Promise<never>((_, reject) => {
        const onAbort = () => reject(attemptSignal.reason);
        if (attemptSignal.aborted) onAbort();
        else attemptSignal.addEventListener('abort', onAbort, { once: true });
      });
      aborted.catch(() => undefined);
      result = (await Promise.race([attemptState.handler(context), aborted])) ?? undefined;
    } catch (error) {
      if (signal.aborted) return { status: 'cancelled' };
      const message = messageOf(error);
      attemptState.log.error(`attempt ${attemptState.attempt} failed: ${message}`);
      return { status: 'failed', error: message };
    } finally {
      clearTimeout(timer);
    }
    const missing = step.outputs.filter((name) => !written.has(name));
    if (missing.length > 0) {
      const error = `step '${step.name}' finished without writing ${missing.join(', ')}`;
      attemptState.log.error(error);
      return { status: 'failed', error };
    }
    if (result?.skipRemaining) {
      const reason = result.skipRemaining;
      attemptState.log.info(`the remaining steps are skipped: ${reason}`);
      // Stored before the step counts as done, so a resumed run skips them too.
      await state.settlePendingSteps(run.id, 'skipped', reason);
      return { status: 'succeeded', cachedFrom: null, skipRemaining: reason };
    }
    return { status: 'succeeded', cachedFrom: null };
  }
}
