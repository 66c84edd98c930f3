import type { Kysely } from 'kysely';
import { BerthaError, ConflictError, NotFoundError, ValidationError } from '../core/errors.ts';
import { isoNow, newId } from '../core/ids.ts';
import type { Database, PipelineRunsTable, PipelineStepsTable } from '../db/index.ts';
import type { PipelineCatalog } from './catalog.ts';
import type { PipelineDefinition } from './definition.ts';
import type { RunRecord, RunStore } from './store.ts';

export const RUN_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export const STEP_STATUSES = ['pending', 'running', 'succeeded', 'failed', 'cancelled', 'skipped'] as const;
export const ATTEMPT_STATUSES = ['running', 'succeeded', 'failed', 'cancelled', 'interrupted'] as const;
export const TRIGGER_STATUSES = ['pending', 'skipped', 'failed', 'launched', 'finished'] as const;

export type RunStatus = (typeof RUN_STATUSES)[number];
export type StepStatus = (typeof STEP_STATUSES)[number];
export type AttemptStatus = (typeof ATTEMPT_STATUSES)[number];
export type TriggerStatus = (typeof TRIGGER_STATUSES)[number];

interface StatusOf {
  run: RunStatus;
  step: StepStatus;
  attempt: AttemptStatus;
  trigger: TriggerStatus;
}
export type StateKind = keyof StatusOf;

/** from -> to -> what makes that move. A move that is not here is refused. */
type TransitionTable<S extends string> = { readonly [from in S]: { readonly [to in S]?: string } };

export const TRANSITIONS: { readonly [K in StateKind]: TransitionTable<StatusOf[K]> } = {
  run: {
    queued: { running: 'claim: a local runner takes it', cancelled: 'cancel while no runner holds it' },
    running: {
      running: 'claim after the lease lapsed (the holder died); Argo: a step succeeded',
      succeeded: 'finish: every step succeeded or was skipped',
      failed: 'finish: a step failed, or steps could not run',
      cancelled: 'finish after a cancel; cancel after the lease lapsed',
    },
    succeeded: {},
    failed: {
      queued: 'retry',
      running: 'Argo: the retried pod of the failed step succeeded',
      succeeded: 'Argo: the retried pod succeeded and was the last step',
      failed: 'Argo: another step failed',
    },
    cancelled: { queued: 'retry' },
  },
  step: {
    pending: {
      running: 'an attempt starts',
      skipped: 'a step before it failed, or decided the rest has nothing to do',
      cancelled: 'cancel before it ran, or during its retry backoff',
      failed: 'its handler is not registered',
    },
    running: {
      running: 'Argo: the pod running it died and Argo started another',
      succeeded: 'its attempt succeeded',
      failed: 'its last attempt failed',
      cancelled: 'cancel, or a stopping runner interrupted the attempt',
      pending: 'an attempt failed and a retry follows; or its runner went away and it runs again',
    },
    succeeded: {
      pending: 'retry from it or a step before it',
      running: 'Argo: its pod was retried after it succeeded',
    },
    failed: { pending: 'retry', running: 'Argo: the retried pod of the failed step' },
    cancelled: { pending: 'the run resumes, or is retried', running: 'Argo: the retried pod of a stopped step' },
    skipped: { pending: 'retry' },
  },
  attempt: {
    running: {
      succeeded: 'the handler succeeded (or the cache had its outputs)',
      failed: 'the handler failed or timed out',
      cancelled: 'cancel, or the runner stopped or lost its lease',
      interrupted: 'a runner found it open after the one running it went away',
    },
    succeeded: {},
    failed: {},
    cancelled: {},
    interrupted: {},
  },
  trigger: {
    pending: { launched: 'a runner claimed it and created its run', failed: 'unknown pipeline or bad parameters' },
    launched: { finished: 'its run ended, which frees the concurrency key' },
    skipped: {},
    failed: {},
    finished: {},
  },
};

/** The states a row may be created in. */
export const INITIAL_STATUSES: { readonly [K in StateKind]: readonly StatusOf[K][] } = {
  // A local run waits for a runner; an Argo run is created by its first pod, already running.
  run: ['queued', 'running'],
  step: ['pending'],
  attempt: ['running'],
  // Sensors record their decision: pending for a runner, or skipped/failed with the reason.
  trigger: ['pending', 'skipped', 'failed'],
};

/** A run in these states is not finished: a runner holds it or will. */
export const ACTIVE_RUN_STATUSES: RunStatus[] = ['queued', 'running'];
/** A run whose steps all ended in these succeeded; `skipped` ones were skipped by a step's decision. */
export const DONE_STEP_STATUSES: StepStatus[] = ['succeeded', 'skipped'];

export class InvalidTransitionError extends BerthaError {
  constructor(kind: StateKind, id: string, from: string, to: string) {
    super('invalid_transition', `pipeline ${kind} '${id}' cannot move from ${from} to ${to}`, 409, {
      kind,
      id,
      from,
      to,
    });
  }
}

export function canTransition<K extends StateKind>(kind: K, from: StatusOf[K], to: StatusOf[K]): boolean {
  const table = TRANSITIONS[kind] as TransitionTable<StatusOf[K]>;
  return table[from]?.[to] !== undefined;
}

/** Every state the table lets a row of `kind` leave for `to`. */
export function sourcesOf<K extends StateKind>(kind: K, to: StatusOf[K]): StatusOf[K][] {
  const table = TRANSITIONS[kind] as TransitionTable<StatusOf[K]>;
  return (Object.keys(table) as StatusOf[K][]).filter((from) => canTransition(kind, from, to));
}

/**
 * The states a write moves rows from: those asked for, each checked against the table (a move
 * the table does not have is refused before anything is written), or all the table allows.
 */
export function checkedSources<K extends StateKind>(
  kind: K,
  id: string,
  to: StatusOf[K],
  from?: readonly StatusOf[K][],
): StatusOf[K][] {
  if (!from) return sourcesOf(kind, to);
  for (const source of from) {
    if (!canTransition(kind, source, to)) throw new InvalidTransitionError(kind, id, source, to);
  }
  return [...from];
}

/** A row created in a state it may not start in is refused like a move. */
export function checkInitial<K extends StateKind>(kind: K, id: string, status: string): StatusOf[K] {
  if (!(INITIAL_STATUSES[kind] as readonly string[]).includes(status)) {
    throw new InvalidTransitionError(kind, id, '(new)', status);
  }
  return status as StatusOf[K];
}

/**
 * After a conditional update matched no row: refuses when the row's state is why, so a caller
 * that expected to move it learns what it was. Returns when another condition (a lease) held it.
 */
export function refuseMiss(kind: StateKind, id: string, to: string, from: readonly string[], current?: string): void {
  if (current === undefined) throw new NotFoundError(`pipeline ${kind}`, id);
  if (!from.includes(current)) throw new InvalidTransitionError(kind, id, current, to);
}

export type RunVerdict =
  | { status: 'succeeded'; error: null }
  | { status: 'failed'; error: string }
  /** Steps are still to run (Argo starts them as pods). */
  | { status: 'open'; waiting: string[] };

/**
 * The one place that decides whether a run is finished, for the local runner and for Argo pods
 * alike. `settled`: no step can start any more (the local runner has nothing in flight and
 * nothing ready), so steps that never ran fail the run instead of leaving it open.
 */
export function judgeRun(input: {
  steps: Iterable<readonly [string, StepStatus | undefined]>;
  failure?: { step: string; error: string } | undefined;
  settled: boolean;
}): RunVerdict {
  if (input.failure) return { status: 'failed', error: `step '${input.failure.step}' failed: ${input.failure.error}` };
  const waiting = [...input.steps]
    .filter(([, status]) => !DONE_STEP_STATUSES.includes(status as StepStatus))
    .map(([name]) => name);
  if (waiting.length === 0) return { status: 'succeeded', error: null };
  if (input.settled) return { status: 'failed', error: `steps never ran: ${waiting.join(', ')}` };
  return { status: 'open', waiting };
}

/** Every step that depends, directly or not, on `name`, and `name` itself. */
function downstreamOf(definition: PipelineDefinition, name: string): Set<string> {
  const found = new Set<string>([name]);
  for (const step of definition.steps) {
    if (step.dependsOn.some((dep) => found.has(dep))) found.add(step.name);
  }
  return found;
}

function later(ms: number): string {
  return new Date(Date.now() + ms).toISOString();
}

type Db = Kysely<Database>;
type RunChanges = Partial<Omit<PipelineRunsTable, 'id' | 'status' | 'updated_at'>>;
type StepChanges = Partial<Omit<PipelineStepsTable, 'id' | 'run_id' | 'name' | 'status' | 'updated_at'>>;

interface MoveOptions<S> {
  /** Default: every state the table allows. */
  from?: readonly S[];
  trx?: Db;
}

export type TransitionTarget =
  | { kind: 'run'; id: string }
  | { kind: 'step'; runId: string; name: string }
  | { kind: 'attempt'; id: string };

export type RunState = ReturnType<typeof createRunState>;

/**
 * Every status write to runs, steps and attempts (triggers: `triggers.ts`, against the same
 * table). Each write is a conditional update on the states the table allows; one that finds
 * the row in another state is refused with `InvalidTransitionError`, except where losing a
 * race to another process is expected (claim, cancel of a run nobody holds).
 */
export function createRunState(store: RunStore) {
  const k = store.db.kysely;
  const { triggers } = store;

  /**
   * False when nothing moved and that is no error: `mayMiss` (a live lease, or another process
   * got there first) or `orAlready` (the row is in `to` already).
   */
  async function moveRun(
    id: string,
    to: RunStatus,
    changes: RunChanges,
    options: MoveOptions<RunStatus> & { lapsedLease?: boolean; mayMiss?: boolean; orAlready?: boolean } = {},
  ): Promise<boolean> {
    const db = options.trx ?? k;
    const from = checkedSources('run', id, to, options.from);
    if (from.length > 0) {
      let update = db
        .updateTable('pipeline_runs')
        .set({ ...changes, status: to, updated_at: isoNow() })
        .where('id', '=', id)
        .where('status', 'in', from);
      if (options.lapsedLease) {
        const now = isoNow();
        update = update.where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]));
      }
      if ((await update.executeTakeFirst()).numUpdatedRows === 1n) return true;
    }
    if (options.mayMiss) return false;
    const row = await db.selectFrom('pipeline_runs').select('status').where('id', '=', id).executeTakeFirst();
    if (options.orAlready && row?.status === to) return false;
    refuseMiss('run', id, to, from, row?.status);
    return false;
  }

  async function moveStep(
    runId: string,
    name: string,
    to: StepStatus,
    changes: StepChanges,
    options: MoveOptions<StepStatus> = {},
  ): Promise<void> {
    const db = options.trx ?? k;
    const id = `${runId}/${name}`;
    const from = checkedSources('step', id, to, options.from);
    if (from.length > 0) {
      const result = await db
        .updateTable('pipeline_steps')
        .set({ ...changes, status: to, updated_at: isoNow() })
        .where('run_id', '=', runId)
        .where('name', '=', name)
        .where('status', 'in', from)
        .executeTakeFirst();
      if (result.numUpdatedRows === 1n) return;
    }
    const row = await db
      .selectFrom('pipeline_steps')
      .select('status')
      .where('run_id', '=', runId)
      .where('name', '=', name)
      .executeTakeFirst();
    refuseMiss('step', id, to, from, row?.status);
  }

  /** Moves the run's steps that are in one of `from` (all of them, or those named); the others stay. */
  async function moveSteps(
    runId: string,
    to: StepStatus,
    options: { from: readonly StepStatus[]; names?: string[]; changes?: StepChanges; trx?: Db },
  ): Promise<void> {
    const from = checkedSources('step', `${runId}/*`, to, options.from);
    if (options.names?.length === 0) return;
    let update = (options.trx ?? k)
      .updateTable('pipeline_steps')
      .set({ ...options.changes, status: to, updated_at: isoNow() })
      .where('run_id', '=', runId)
      .where('status', 'in', from);
    if (options.names) update = update.where('name', 'in', options.names);
    await update.execute();
  }

  async function moveAttempt(
    id: string,
    to: AttemptStatus,
    changes: { error?: string | null; finished_at?: string | null },
    trx: Db = k,
  ): Promise<void> {
    const from = checkedSources('attempt', id, to);
    if (from.length > 0) {
      const result = await trx
        .updateTable('pipeline_attempts')
        .set({ ...changes, status: to })
        .where('id', '=', id)
        .where('status', 'in', from)
        .executeTakeFirst();
      if (result.numUpdatedRows === 1n) return;
    }
    const row = await trx.selectFrom('pipeline_attempts').select('status').where('id', '=', id).executeTakeFirst();
    refuseMiss('attempt', id, to, from, row?.status);
  }

  return {
    /** Any move the table allows, with no other change (the table's own test drives this). */
    async move(target: TransitionTarget, to: string): Promise<void> {
      if (target.kind === 'run') await moveRun(target.id, to as RunStatus, {});
      else if (target.kind === 'step') await moveStep(target.runId, target.name, to as StepStatus, {});
      else await moveAttempt(target.id, to as AttemptStatus, {});
    },

    // ---- runs held by a local runner

    /** Local runs a runner may claim now: queued, or running with a lapsed lease; oldest first. */
    async claimable(limit: number): Promise<string[]> {
      const now = isoNow();
      const rows = await k
        .selectFrom('pipeline_runs')
        .select('id')
        .where('executor', '=', 'local')
        .where('status', 'in', ACTIVE_RUN_STATUSES)
        .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
        .orderBy('created_at')
        .limit(limit)
        .execute();
      return rows.map((row) => row.id);
    },

    /**
     * The conditional update is the claim: of two runners racing for the row, the second
     * re-reads it after the first commits, sees a live lease and updates nothing.
     */
    async claim(runId: string, owner: string, leaseMs: number): Promise<RunRecord | undefined> {
      const claimed = await moveRun(
        runId,
        'running',
        { owner, lease_until: later(leaseMs) },
        { from: ACTIVE_RUN_STATUSES, lapsedLease: true, mayMiss: true },
      );
      return claimed ? store.getRun(runId) : undefined;
    },

    /** False when the run is no longer this owner's to hold (taken over, or finished elsewhere). */
    async renew(runId: string, owner: string, leaseMs: number): Promise<boolean> {
      const result = await k
        .updateTable('pipeline_runs')
        .set({ lease_until: later(leaseMs) })
        .where('id', '=', runId)
        .where('owner', '=', owner)
        .where('status', 'in', ACTIVE_RUN_STATUSES)
        .executeTakeFirst();
      return result.numUpdatedRows === 1n;
    },

    /** Hands the owner's unfinished runs back at once, instead of making the next runner wait for the lease. */
    async release(owner: string): Promise<void> {
      await k
        .updateTable('pipeline_runs')
        .set({ owner: null, lease_until: null, updated_at: isoNow() })
        .where('owner', '=', owner)
        .where('status', 'in', ACTIVE_RUN_STATUSES)
        .execute();
    },

    /** The start time written, or undefined when the run had started before (a resumed run). */
    async recordStart(runId: string): Promise<string | undefined> {
      const now = isoNow();
      const result = await k
        .updateTable('pipeline_runs')
        .set({ started_at: now, updated_at: now })
        .where('id', '=', runId)
        .where('started_at', 'is', null)
        .executeTakeFirst();
      return result.numUpdatedRows === 1n ? now : undefined;
    },

    /** A held run ends; its trigger, if any, is released in the same transaction. Returns the finish time written. */
    async finish(
      runId: string,
      verdict: { status: 'succeeded' | 'failed' | 'cancelled'; error: string | null },
    ): Promise<string> {
      const finishedAt = isoNow();
      await k.transaction().execute(async (trx) => {
        await moveRun(
          runId,
          verdict.status,
          { error: verdict.error, finished_at: finishedAt, lease_until: null },
          { from: ['running'], trx },
        );
        await triggers.release(runId, verdict.status, trx);
      });
      return finishedAt;
    },

    /** Records the request; the holder (in this process or another) sees it and stops. */
    async requestCancel(run: RunRecord): Promise<void> {
      if (!canTransition('run', run.status, 'cancelled')) {
        const from = sourcesOf('run', 'cancelled').join(' or ');
        throw new ConflictError(`run '${run.id}' is ${run.status}; only ${from} runs can be cancelled`);
      }
      await k
        .updateTable('pipeline_runs')
        .set({ cancel_requested: 1, updated_at: isoNow() })
        .where('id', '=', run.id)
        .where('status', 'in', ACTIVE_RUN_STATUSES)
        .execute();
    },

    /** Cancels a run nobody holds; false when a runner claimed it in between (it then sees the request). */
    async cancelUnheld(runId: string): Promise<boolean> {
      return k.transaction().execute(async (trx) => {
        const cancelled = await moveRun(
          runId,
          'cancelled',
          { finished_at: isoNow() },
          { from: ACTIVE_RUN_STATUSES, lapsedLease: true, mayMiss: true, trx },
        );
        if (!cancelled) return false;
        await moveSteps(runId, 'cancelled', { from: ['pending', 'running'], trx });
        await triggers.release(runId, 'cancelled', trx);
        return true;
      });
    },

    /** Re-queues a failed or cancelled local run from `fromStep` (default: every step that did not succeed). */
    async retry(run: RunRecord, catalog: PipelineCatalog, fromStep?: string): Promise<string[]> {
      if (!canTransition('run', run.status, 'queued')) {
        const from = sourcesOf('run', 'queued').join(' or ');
        throw new ConflictError(`run '${run.id}' is ${run.status}; only ${from} runs can be retried`);
      }
      if (run.executor !== 'local') throw new ConflictError(`run '${run.id}' runs on ${run.executor}; retry it there`);
      const definition = catalog.get(run.pipeline);
      let reset: string[];
      if (fromStep) {
        if (!definition.steps.some((step) => step.name === fromStep)) {
          throw new ValidationError(`pipeline '${run.pipeline}' has no step '${fromStep}'`, { step: fromStep });
        }
        reset = [...downstreamOf(definition, fromStep)];
      } else {
        reset = (await store.listSteps(run.id)).filter((step) => step.status !== 'succeeded').map((step) => step.name);
      }
      await k.transaction().execute(async (trx) => {
        await moveSteps(run.id, 'pending', {
          from: ['succeeded', 'failed', 'cancelled', 'skipped'],
          names: reset,
          changes: { error: null, progress: null, progress_message: null, finished_at: null },
          trx,
        });
        await moveRun(
          run.id,
          'queued',
          { error: null, cancel_requested: 0, owner: null, lease_until: null, finished_at: null },
          { trx },
        );
      });
      return reset;
    },

    // ---- runs whose steps run as Argo pods

    /** What a pod reports after its step, judged like a local run (`judgeRun`) but never settled. */
    async settleArgo(runId: string, step: string, outcome: { status: string; error?: string }): Promise<void> {
      const failure = outcome.status === 'failed' ? { step, error: outcome.error ?? '' } : undefined;
      const steps = (await store.listSteps(runId)).map((row) => [row.name, row.status] as const);
      const verdict = judgeRun({ steps, failure, settled: false });
      const from: RunStatus[] = ['running', 'failed'];
      if (verdict.status === 'failed') await moveRun(runId, 'failed', { error: verdict.error }, { from });
      else if (verdict.status === 'succeeded') {
        // Two pods finishing the last steps at once may both see every step done.
        await moveRun(runId, 'succeeded', { error: null, finished_at: isoNow() }, { from, orAlready: true });
      } else if (outcome.status === 'succeeded') {
        // A retried pod that succeeds after an earlier failure puts the run back on track.
        await moveRun(runId, 'running', { error: null }, { from });
      }
    },

    // ---- steps and attempts

    /** Steps left running or interrupted by a runner that went away start again; completed ones never do. */
    async resumeSteps(runId: string): Promise<void> {
      await moveSteps(runId, 'pending', { from: ['running', 'cancelled'] });
    },

    /** The steps that have not started end as `to`; with a reason, it is stored on them. */
    async settlePendingSteps(runId: string, to: 'skipped' | 'cancelled', reason?: string): Promise<void> {
      const changes = reason === undefined ? {} : { error: reason, finished_at: isoNow() };
      await moveSteps(runId, to, { from: ['pending'], changes });
    },

    /** Attempts a crashed runner left `running` are recorded as interrupted. */
    async interruptOpenAttempts(runId: string): Promise<void> {
      await k
        .updateTable('pipeline_attempts')
        .set({ status: 'interrupted', error: 'the runner stopped during this attempt', finished_at: isoNow() })
        .where('run_id', '=', runId)
        .where('status', 'in', checkedSources('attempt', `${runId}/*`, 'interrupted', ['running']))
        .execute();
    },

    /** The attempt row and the step's `running` state, in one transaction (one commit per step start). */
    async startAttempt(runId: string, step: string, attempt: number, owner: string): Promise<string> {
      const id = newId('att');
      const now = isoNow();
      await k.transaction().execute(async (trx) => {
        await trx
          .insertInto('pipeline_attempts')
          .values({
            id,
            run_id: runId,
            step,
            attempt,
            status: checkInitial('attempt', id, 'running'),
            owner,
            error: null,
            started_at: now,
            finished_at: null,
          })
          .execute();
        await moveStep(
          runId,
          step,
          'running',
          { attempts: attempt, error: null, started_at: now, finished_at: null },
          { trx },
        );
      });
      return id;
    },

    /** Closes an attempt and records the step's resulting state, in one transaction. */
    async finishAttempt(
      attemptId: string,
      attempt: { status: Exclude<AttemptStatus, 'running' | 'interrupted'>; error: string | null },
      step: { runId: string; name: string; status: StepStatus; changes: StepChanges },
    ): Promise<void> {
      await k.transaction().execute(async (trx) => {
        await moveAttempt(attemptId, attempt.status, { error: attempt.error, finished_at: isoNow() }, trx);
        await moveStep(step.runId, step.name, step.status, step.changes, { from: ['running'], trx });
      });
    },

    /** A step that cannot start (no handler), or was cancelled during its retry backoff. */
    async endPendingStep(runId: string, name: string, status: 'failed' | 'cancelled', error: string | null) {
      await moveStep(
        runId,
        name,
        status,
        { ...(error === null ? {} : { error }), finished_at: isoNow() },
        {
          from: ['pending'],
        },
      );
    },
  };
}
