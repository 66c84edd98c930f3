import type { Logger } from '../core/logger.ts';
import type { ObjectStore } from '../objects/index.ts';
import type { PipelineCatalog } from './catalog.ts';
import { executeStep } from './execute-step.ts';
import type { RunObserver } from './run-observer.ts';
import { judgeRun, type RunState, type StepStatus } from './run-state.ts';
import type { RunRecord, RunStore } from './store.ts';
import type { RunOrigin } from './triggers.ts';

export interface ExecuteRunOptions {
  store: RunStore;
  state: RunState;
  objects: ObjectStore;
  catalog: PipelineCatalog;
  /** The runner holding the run's lease. */
  owner: string;
  logger: Logger;
  /** Steps of the run that may execute at once. */
  stepConcurrency: number;
  observer?: RunObserver | undefined;
}

/** Why a held run's signal was aborted. */
export type StopReason = { kind: 'cancel' } | { kind: 'lease' } | { kind: 'stop' };

/**
 * Runs a claimed run to its end: every step whose dependencies succeeded, `stepConcurrency` at
 * a time, through `executeStep`; then finishes it as `judgeRun` decides. Aborted for a cancel,
 * it finishes cancelled; for a lost lease or a stopping runner, it stays active for whoever
 * claims it next.
 */
export async function executeRun(options: ExecuteRunOptions, run: RunRecord, signal: AbortSignal): Promise<void> {
  const { store, state, catalog, logger, observer } = options;
  // Read once, and only when someone listens: the loop's figures start at the event.
  let origin: Promise<RunOrigin | undefined> | undefined;
  const originOf = () => {
    origin ??= observer && run.triggerId ? store.triggers.origin(run.triggerId) : Promise.resolve(undefined);
    return origin;
  };
  const definition = catalog.find(run.pipeline);
  if (!definition) {
    await finish('failed', `unknown pipeline '${run.pipeline}'`);
    return;
  }
  const startedAt = await state.recordStart(run.id);
  if (startedAt && observer?.started) await notify((from) => observer.started?.(run, startedAt, from));
  await state.interruptOpenAttempts(run.id);
  await state.resumeSteps(run.id);
  const status = new Map<string, StepStatus>();
  const attempts = new Map<string, number>();
  for (const step of await store.listSteps(run.id)) {
    attempts.set(step.name, step.attempts);
    status.set(step.name, step.status);
  }
  if (run.cancelRequested) {
    await state.settlePendingSteps(run.id, 'cancelled');
    await finish('cancelled', null);
    return;
  }
  logger.info({ runId: run.id, pipeline: run.pipeline, resumed: run.startedAt !== null }, 'run claimed');

  const inFlight = new Map<string, Promise<void>>();
  let failure: { step: string; error: string } | undefined;
  const startStep = (name: string) => {
    const step = definition.steps.find((candidate) => candidate.name === name);
    if (!step) return;
    status.set(name, 'running');
    const work = executeStep({
      store,
      state,
      objects: options.objects,
      handlers: catalog.handlers,
      definition,
      run,
      step,
      owner: options.owner,
      logger,
      signal,
      attemptsSoFar: attempts.get(name) ?? 0,
    }).then(
      (outcome) => {
        status.set(name, outcome.status);
        // executeStep stored the pending steps as skipped; this keeps the picture here the same.
        if (outcome.status === 'succeeded' && outcome.skipRemaining) {
          for (const [other, current] of status) if (current === 'pending') status.set(other, 'skipped');
        }
        if (outcome.status === 'failed') failure ??= { step: name, error: outcome.error };
      },
      (error: unknown) => {
        status.set(name, 'failed');
        failure ??= { step: name, error: (error as Error).message };
      },
    );
    inFlight.set(
      name,
      work.finally(() => inFlight.delete(name)),
    );
  };

  for (;;) {
    if (!signal.aborted && failure === undefined) {
      for (const step of definition.steps) {
        if (inFlight.size >= options.stepConcurrency) break;
        if (status.get(step.name) !== 'pending') continue;
        if (step.dependsOn.every((dep) => status.get(dep) === 'succeeded')) startStep(step.name);
      }
    }
    if (inFlight.size === 0) break;
    await Promise.race(inFlight.values());
  }

  if (signal.aborted) {
    if ((signal.reason as StopReason | undefined)?.kind === 'cancel') {
      await state.settlePendingSteps(run.id, 'cancelled');
      await finish('cancelled', null);
    }
    // Lease lost or runner stopping: the run stays active for whoever claims it next.
    return;
  }
  if (failure !== undefined) await state.settlePendingSteps(run.id, 'skipped');
  // Nothing is in flight and nothing more can start: steps still waiting never will.
  const verdict = judgeRun({
    steps: definition.steps.map((step) => [step.name, status.get(step.name)] as const),
    failure,
    settled: true,
  });
  if (verdict.status !== 'open') await finish(verdict.status, verdict.error);

  async function finish(to: 'succeeded' | 'failed' | 'cancelled', error: string | null) {
    const finishedAt = await state.finish(run.id, { status: to, error });
    logger.info({ runId: run.id, status: to, error }, 'run finished');
    if (observer?.finished) await notify((from) => observer.finished?.(run, { status: to, finishedAt }, from));
  }

  /** An observer's failure (its origin query) is logged; the run goes on. */
  async function notify(report: (from: RunOrigin | undefined) => void): Promise<void> {
    try {
      report(await originOf());
    } catch (error) {
      logger.warn({ err: error, runId: run.id }, 'could not report the run to its observer');
    }
  }
}
