import { hostname } from 'node:os';
import { Cron } from 'croner';
import { ConflictError, NotFoundError, ValidationError } from '../core/errors.ts';
import { isoNow, newId } from '../core/ids.ts';
import type { Logger } from '../core/logger.ts';
import { isUniqueViolation } from '../db/index.ts';
import type { ObjectStore } from '../objects/index.ts';
import type { PipelineCatalog } from './catalog.ts';
import { type PipelineDefinition, type RunParams, resolveRunParams } from './definition.ts';
import { executeStep } from './execute-step.ts';
import { ACTIVE_RUN_STATUSES, type RunRecord, type RunStore, type StepStatus } from './store.ts';

export interface PipelineSchedule {
  name: string;
  pipeline: string;
  /** Cron expression (croner syntax, seconds optional). */
  cron: string;
  params: Record<string, string | number | boolean>;
  timezone?: string | undefined;
}

export interface LocalRunnerOptions {
  store: RunStore;
  objects: ObjectStore;
  catalog: PipelineCatalog;
  logger: Logger;
  /** Steps of one run that may execute at once. */
  stepConcurrency: number;
  /** Runs this runner executes at once. */
  maxConcurrentRuns: number;
  /**
   * How often the runner looks for queued runs, triggers and cancel requests written by other
   * processes, and renews its leases; work from this process wakes it at once.
   */
  pollIntervalMs: number;
  /** A run whose owner has not renewed its lease for this long is taken over (crash, kill -9). */
  leaseMs: number;
  schedules?: PipelineSchedule[];
  /** Defaults to host:pid:random so two processes never share one. */
  owner?: string;
}

export interface StartRunInput {
  pipeline: string;
  params?: Record<string, unknown>;
  source: string;
}

export interface LocalRunner {
  readonly owner: string;
  start(): void;
  /** Stops claiming, interrupts what runs here and hands its runs back for another runner. */
  stop(): Promise<void>;
  startRun(input: StartRunInput): Promise<RunRecord>;
  cancel(runId: string): Promise<RunRecord>;
  /** Re-queues a failed or cancelled run from `fromStep` (default: every step that did not succeed). */
  retry(runId: string, fromStep?: string): Promise<RunRecord>;
  /** One pass of claiming triggers and runs; the poll loop calls it, tests may too. */
  tick(): Promise<void>;
  /** Claims work now instead of at the next poll (a trigger was written in this process); nothing while stopped. */
  wake(): void;
  /** Resolves once no run is executing here. */
  idle(): Promise<void>;
}

interface HeldRun {
  controller: AbortController;
  done: Promise<void>;
}

const TERMINAL: StepStatus[] = ['succeeded'];

function later(ms: number): string {
  return new Date(Date.now() + ms).toISOString();
}

/** Every step that depends, directly or not, on `name`. */
function downstreamOf(definition: PipelineDefinition, name: string): Set<string> {
  const found = new Set<string>([name]);
  for (const step of definition.steps) {
    if (step.dependsOn.some((dep) => found.has(dep))) found.add(step.name);
  }
  return found;
}

/**
 * The embedded orchestrator. Every state change is a row first: a run is claimed with an
 * atomic conditional update on its lease (one winner on SQLite and PostgreSQL alike), held by
 * renewing the lease, and resumed by whichever runner finds the lease expired.
 */
export function createLocalRunner(options: LocalRunnerOptions): LocalRunner {
  const { store, catalog } = options;
  const db = store.db.kysely;
  const owner = options.owner ?? `${hostname()}:${process.pid}:${newId('rnr').slice(-6)}`;
  const logger = options.logger.child({ component: 'pipelines', owner });
  const held = new Map<string, HeldRun>();
  const crons: Cron[] = [];
  let timer: NodeJS.Timeout | undefined;
  let lastRenew = 0;
  let running = false;
  let ticking: Promise<void> | undefined;
  let again = false;

  async function claimTriggers(): Promise<void> {
    const triggers = await db
      .selectFrom('pipeline_triggers')
      .selectAll()
      .where('status', '=', 'pending')
      .orderBy('created_at')
      .limit(20)
      .execute();
    for (const trigger of triggers) {
      const definition = catalog.find(trigger.pipeline);
      let params: RunParams | undefined;
      let reason: string | undefined;
      if (!definition) reason = `unknown pipeline '${trigger.pipeline}'`;
      else {
        try {
          params = resolveRunParams(definition, JSON.parse(trigger.params_json) as Record<string, unknown>);
        } catch (error) {
          reason = (error as Error).message;
        }
      }
      if (!definition || !params) {
        await db
          .updateTable('pipeline_triggers')
          .set({ status: 'failed', reason: reason ?? 'invalid trigger', updated_at: isoNow() })
          .where('id', '=', trigger.id)
          .where('status', '=', 'pending')
          .execute();
        logger.warn({ triggerId: trigger.id, reason }, 'pipeline trigger rejected');
        continue;
      }
      if (trigger.concurrency_key) {
        const busy = await db
          .selectFrom('pipeline_runs')
          .select('id')
          .where('concurrency_key', '=', trigger.concurrency_key)
          .where('status', 'in', ACTIVE_RUN_STATUSES)
          .executeTakeFirst();
        // Stays pending: the next pass launches it once the run holding the key finishes.
        if (busy) continue;
      }
      const runId = newId('run');
      const launched = await db.transaction().execute(async (trx) => {
        const claimed = await trx
          .updateTable('pipeline_triggers')
          .set({ status: 'launched', run_id: runId, updated_at: isoNow() })
          .where('id', '=', trigger.id)
          .where('status', '=', 'pending')
          .executeTakeFirst();
        if (claimed.numUpdatedRows !== 1n) return false;
        await store.createRun(
          {
            id: runId,
            definition,
            params,
            source: 'trigger',
            triggerId: trigger.id,
            concurrencyKey: trigger.concurrency_key,
          },
          trx,
        );
        return true;
      });
      if (launched) logger.info({ triggerId: trigger.id, runId, pipeline: trigger.pipeline }, 'trigger launched a run');
    }
  }

  async function claimRuns(): Promise<void> {
    while (held.size < options.maxConcurrentRuns) {
      const now = isoNow();
      const candidates = await db
        .selectFrom('pipeline_runs')
        .select(['id'])
        .where('executor', '=', 'local')
        .where('status', 'in', ACTIVE_RUN_STATUSES)
        .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
        .orderBy('created_at')
        .limit(options.maxConcurrentRuns - held.size)
        .execute();
      let claimedAny = false;
      for (const candidate of candidates) {
        if (held.has(candidate.id)) continue;
        // The conditional update is the claim: of two runners racing for the row, the second
        // re-reads it after the first commits, sees a live lease and updates nothing.
        const result = await db
          .updateTable('pipeline_runs')
          .set({ owner, lease_until: later(options.leaseMs), status: 'running', updated_at: isoNow() })
          .where('id', '=', candidate.id)
          .where('status', 'in', ACTIVE_RUN_STATUSES)
          .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', isoNow())]))
          .executeTakeFirst();
        if (result.numUpdatedRows !== 1n) continue;
        const run = await store.getRun(candidate.id);
        if (!run) continue;
        claimedAny = true;
        hold(run);
      }
      if (!claimedAny) return;
    }
  }

  function hold(run: RunRecord): void {
    const controller = new AbortController();
    const entry: HeldRun = { controller, done: Promise.resolve() };
    held.set(run.id, entry);
    entry.done = executeRun(run, controller.signal)
      .catch((error: unknown) => logger.error({ err: error, runId: run.id }, 'run execution failed'))
      .finally(() => {
        held.delete(run.id);
        wake();
      });
  }

  async function finishRun(runId: string, status: 'succeeded' | 'failed' | 'cancelled', error: string | null) {
    await store.updateRun(runId, { status, error, finished_at: isoNow(), lease_until: null });
    await releaseTrigger(runId, status);
    logger.info({ runId, status, error }, 'run finished');
  }

  /** The sensors treat a `launched` trigger as holding its concurrency key; a finished run frees it. */
  async function releaseTrigger(runId: string, status: string) {
    await db
      .updateTable('pipeline_triggers')
      .set({ status: 'finished', reason: `run ${status}`, updated_at: isoNow() })
      .where('run_id', '=', runId)
      .where('status', '=', 'launched')
      .execute();
  }

  async function executeRun(run: RunRecord, signal: AbortSignal): Promise<void> {
    const definition = catalog.find(run.pipeline);
    if (!definition) {
      await finishRun(run.id, 'failed', `unknown pipeline '${run.pipeline}'`);
      return;
    }
    if (!run.startedAt) await store.updateRun(run.id, { started_at: isoNow() });
    await store.interruptOpenAttempts(run.id);
    const status = new Map<string, StepStatus>();
    const attempts = new Map<string, number>();
    for (const step of await store.listSteps(run.id)) {
      attempts.set(step.name, step.attempts);
      // A step that was running (or was interrupted by a stopping runner) when its runner went
      // away starts again; completed ones never do.
      const resumed = step.status === 'running' || step.status === 'cancelled' ? 'pending' : step.status;
      if (resumed !== step.status) await store.updateStep(run.id, step.name, { status: resumed });
      status.set(step.name, resumed);
    }
    if (run.cancelRequested) {
      await markPending(run.id, status, 'cancelled');
      await finishRun(run.id, 'cancelled', null);
      return;
    }
    logger.info({ runId: run.id, pipeline: run.pipeline, resumed: run.startedAt !== null }, 'run claimed');

    const inFlight = new Map<string, Promise<void>>();
    let failure: string | undefined;
    const startStep = (name: string) => {
      const step = definition.steps.find((candidate) => candidate.name === name);
      if (!step) return;
      status.set(name, 'running');
      const work = executeStep({
        store,
        objects: options.objects,
        handlers: catalog.handlers,
        definition,
        run,
        step,
        owner,
        logger,
        signal,
        attemptsSoFar: attempts.get(name) ?? 0,
      }).then(
        (outcome) => {
          status.set(name, outcome.status);
          if (outcome.status === 'failed') failure ??= `step '${name}' failed: ${outcome.error}`;
        },
        (error: unknown) => {
          status.set(name, 'failed');
          failure ??= `step '${name}' failed: ${(error as Error).message}`;
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
          if (step.dependsOn.every((dep) => TERMINAL.includes(status.get(dep) as StepStatus))) startStep(step.name);
        }
      }
      if (inFlight.size === 0) break;
      await Promise.race(inFlight.values());
    }

    if (signal.aborted) {
      const reason = signal.reason as { kind?: string } | undefined;
      if (reason?.kind === 'cancel') {
        await markPending(run.id, status, 'cancelled');
        await finishRun(run.id, 'cancelled', null);
      }
      // Lease lost or runner stopping: the run stays active for whoever claims it next.
      return;
    }
    if (failure !== undefined) {
      await markPending(run.id, status, 'skipped');
      await finishRun(run.id, 'failed', failure);
      return;
    }
    const unfinished = definition.steps.filter((step) => status.get(step.name) !== 'succeeded');
    if (unfinished.length > 0) {
      await finishRun(run.id, 'failed', `steps never ran: ${unfinished.map((step) => step.name).join(', ')}`);
      return;
    }
    await finishRun(run.id, 'succeeded', null);
  }

  async function markPending(runId: string, status: Map<string, StepStatus>, to: StepStatus) {
    for (const [name, current] of status) {
      if (current === 'pending') await store.updateStep(runId, name, { status: to });
    }
  }

  /** Renews the leases of held runs and notices cancel requests written by other processes. */
  async function renew(): Promise<void> {
    if (held.size === 0) return;
    const ids = [...held.keys()];
    const force = Date.now() - lastRenew > options.leaseMs / 3;
    if (force) {
      lastRenew = Date.now();
      for (const id of ids) {
        const result = await db
          .updateTable('pipeline_runs')
          .set({ lease_until: later(options.leaseMs) })
          .where('id', '=', id)
          .where('owner', '=', owner)
          .where('status', 'in', ACTIVE_RUN_STATUSES)
          .executeTakeFirst();
        if (result.numUpdatedRows !== 1n) {
          logger.warn({ runId: id }, 'lost the lease on a run; stopping it here');
          held.get(id)?.controller.abort({ kind: 'lease' });
        }
      }
    }
    const cancelled = await db
      .selectFrom('pipeline_runs')
      .select('id')
      .where('id', 'in', ids)
      .where('cancel_requested', '=', 1)
      .execute();
    for (const row of cancelled) held.get(row.id)?.controller.abort({ kind: 'cancel' });
  }

  async function tickOnce(): Promise<void> {
    try {
      await renew();
      await claimTriggers();
      await claimRuns();
    } catch (error) {
      logger.error({ err: error }, 'pipeline runner pass failed');
    }
  }

  function tick(): Promise<void> {
    if (ticking) {
      again = true;
      return ticking;
    }
    ticking = (async () => {
      do {
        again = false;
        await tickOnce();
      } while (again);
    })().finally(() => {
      ticking = undefined;
    });
    return ticking;
  }

  function wake(): void {
    if (running) void tick();
  }

  function schedule(): void {
    timer = setTimeout(() => {
      void tick().finally(() => {
        if (running) schedule();
      });
    }, options.pollIntervalMs);
    timer.unref();
  }

  function startSchedules(): void {
    for (const entry of options.schedules ?? []) {
      const definition = catalog.get(entry.pipeline);
      resolveRunParams(definition, entry.params);
      const cron = new Cron(
        entry.cron,
        { protect: true, ...(entry.timezone ? { timezone: entry.timezone } : {}) },
        async (self: Cron) => {
          const firedAt = (self.currentRun() ?? new Date()).getTime();
          const now = isoNow();
          try {
            // One id per schedule and firing time: every process with the schedule writes the
            // same row, the primary key keeps exactly one.
            await db
              .insertInto('pipeline_triggers')
              .values({
                id: `trg_schedule_${entry.name}_${firedAt}`,
                sensor: `schedule:${entry.name}`,
                event_id: null,
                pipeline: entry.pipeline,
                params_json: JSON.stringify(entry.params),
                concurrency_key: `schedule:${entry.name}`,
                status: 'pending',
                reason: null,
                run_id: null,
                created_at: now,
                updated_at: now,
              })
              .execute();
            wake();
          } catch (error) {
            if (!isUniqueViolation(error))
              logger.error({ err: error, schedule: entry.name }, 'scheduled trigger failed');
          }
        },
      );
      crons.push(cron);
    }
  }

  return {
    owner,

    start() {
      if (running) return;
      running = true;
      startSchedules();
      schedule();
      void tick();
    },

    async stop() {
      running = false;
      if (timer) clearTimeout(timer);
      for (const cron of crons.splice(0)) cron.stop();
      for (const entry of held.values()) entry.controller.abort({ kind: 'stop' });
      await Promise.allSettled([...held.values()].map((entry) => entry.done));
      await ticking;
      // Hand the runs back at once instead of making the next runner wait for the lease to lapse.
      await db
        .updateTable('pipeline_runs')
        .set({ owner: null, lease_until: null, updated_at: isoNow() })
        .where('owner', '=', owner)
        .where('status', 'in', ACTIVE_RUN_STATUSES)
        .execute();
    },

    async startRun(input) {
      const definition = catalog.get(input.pipeline);
      const params = resolveRunParams(definition, input.params ?? {});
      const run = await store.createRun({ definition, params, source: input.source });
      logger.info({ runId: run.id, pipeline: run.pipeline, source: input.source }, 'run queued');
      wake();
      return run;
    },

    async cancel(runId) {
      const run = await store.getRun(runId);
      if (!run) throw new NotFoundError('run', runId);
      if (!ACTIVE_RUN_STATUSES.includes(run.status)) {
        throw new ConflictError(`run '${runId}' is ${run.status}; only queued or running runs can be cancelled`);
      }
      await store.updateRun(runId, { cancel_requested: 1 });
      const local = held.get(runId);
      if (local) {
        local.controller.abort({ kind: 'cancel' });
        await local.done;
      } else {
        // Nobody holds it: finish it here, unless a runner claims it in between (it then sees the request).
        const result = await db
          .updateTable('pipeline_runs')
          .set({ status: 'cancelled', finished_at: isoNow(), updated_at: isoNow() })
          .where('id', '=', runId)
          .where('status', 'in', ACTIVE_RUN_STATUSES)
          .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', isoNow())]))
          .executeTakeFirst();
        if (result.numUpdatedRows === 1n) {
          await db
            .updateTable('pipeline_steps')
            .set({ status: 'cancelled', updated_at: isoNow() })
            .where('run_id', '=', runId)
            .where('status', 'in', ['pending', 'running'])
            .execute();
          await releaseTrigger(runId, 'cancelled');
        }
      }
      return (await store.getRun(runId)) as RunRecord;
    },

    async retry(runId, fromStep) {
      const run = await store.getRun(runId);
      if (!run) throw new NotFoundError('run', runId);
      if (run.status !== 'failed' && run.status !== 'cancelled') {
        throw new ConflictError(`run '${runId}' is ${run.status}; only failed or cancelled runs can be retried`);
      }
      if (run.executor !== 'local') throw new ConflictError(`run '${runId}' runs on ${run.executor}; retry it there`);
      const definition = catalog.get(run.pipeline);
      const steps = await store.listSteps(runId);
      let reset: Set<string>;
      if (fromStep) {
        if (!definition.steps.some((step) => step.name === fromStep)) {
          throw new ValidationError(`pipeline '${run.pipeline}' has no step '${fromStep}'`, { step: fromStep });
        }
        reset = downstreamOf(definition, fromStep);
      } else {
        reset = new Set(steps.filter((step) => step.status !== 'succeeded').map((step) => step.name));
      }
      await db.transaction().execute(async (trx) => {
        const now = isoNow();
        await trx
          .updateTable('pipeline_steps')
          .set({
            status: 'pending',
            error: null,
            progress: null,
            progress_message: null,
            finished_at: null,
            updated_at: now,
          })
          .where('run_id', '=', runId)
          .where('name', 'in', [...reset])
          .execute();
        await trx
          .updateTable('pipeline_runs')
          .set({
            status: 'queued',
            error: null,
            cancel_requested: 0,
            owner: null,
            lease_until: null,
            finished_at: null,
            updated_at: now,
          })
          .where('id', '=', runId)
          .execute();
      });
      logger.info({ runId, steps: [...reset] }, 'run re-queued');
      wake();
      return (await store.getRun(runId)) as RunRecord;
    },

    tick,
    wake,

    async idle() {
      while (held.size > 0 || ticking) {
        await Promise.allSettled([...held.values()].map((entry) => entry.done));
        await ticking;
      }
    },
  };
}
