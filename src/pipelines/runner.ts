import { hostname } from 'node:os';
import { NotFoundError } from '../core/errors.ts';
import { newId } from '../core/ids.ts';
import type { Logger } from '../core/logger.ts';
import type { ObjectStore } from '../objects/index.ts';
import type { PipelineCatalog } from './catalog.ts';
import { claimTriggers } from './claim-triggers.ts';
import { resolveRunParams } from './definition.ts';
import { executeRun, type StopReason } from './execute-run.ts';
import type { RunObserver } from './run-observer.ts';
import { createRunState } from './run-state.ts';
import { type PipelineSchedule, startSchedules } from './schedules.ts';
import type { RunRecord, RunStore } from './store.ts';

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
  /** Told when a run first starts and when it ends here (the loop's figures). */
  observer?: RunObserver;
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

/**
 * The embedded orchestrator's loop: each pass renews the leases of the runs held here (and
 * notices cancel requests), launches pending triggers (`claim-triggers.ts`) and claims runs up
 * to `maxConcurrentRuns`, each executed by `executeRun`. Every state change is a row written
 * by `run-state.ts`; a run is held by renewing its lease and resumed by whichever runner finds
 * the lease expired.
 */
export function createLocalRunner(options: LocalRunnerOptions): LocalRunner {
  const { store, catalog } = options;
  const state = createRunState(store);
  const owner = options.owner ?? `${hostname()}:${process.pid}:${newId('rnr').slice(-6)}`;
  const logger = options.logger.child({ component: 'pipelines', owner });
  const held = new Map<string, HeldRun>();
  let stopSchedules: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  let lastRenew = 0;
  let running = false;
  let ticking: Promise<void> | undefined;
  let again = false;

  const abort = (runId: string, reason: StopReason) => held.get(runId)?.controller.abort(reason);

  async function claimRuns(): Promise<void> {
    while (held.size < options.maxConcurrentRuns) {
      let claimedAny = false;
      for (const id of await state.claimable(options.maxConcurrentRuns - held.size)) {
        if (held.has(id)) continue;
        const run = await state.claim(id, owner, options.leaseMs);
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
    entry.done = executeRun(
      {
        store,
        state,
        objects: options.objects,
        catalog,
        owner,
        logger,
        stepConcurrency: options.stepConcurrency,
        observer: options.observer,
      },
      run,
      controller.signal,
    )
      .catch((error: unknown) => logger.error({ err: error, runId: run.id }, 'run execution failed'))
      .finally(() => {
        held.delete(run.id);
        wake();
      });
  }

  /** Renews the leases of held runs and notices cancel requests written by other processes. */
  async function renew(): Promise<void> {
    if (held.size === 0) return;
    const ids = [...held.keys()];
    if (Date.now() - lastRenew > options.leaseMs / 3) {
      lastRenew = Date.now();
      for (const id of ids) {
        if (!(await state.renew(id, owner, options.leaseMs))) {
          logger.warn({ runId: id }, 'lost the lease on a run; stopping it here');
          abort(id, { kind: 'lease' });
        }
      }
    }
    for (const id of await store.listCancelRequested(ids)) abort(id, { kind: 'cancel' });
  }

  async function tickOnce(): Promise<void> {
    try {
      await renew();
      await claimTriggers({ store, catalog, logger });
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

  return {
    owner,

    start() {
      if (running) return;
      running = true;
      stopSchedules = startSchedules({
        schedules: options.schedules ?? [],
        catalog,
        triggers: store.triggers,
        logger,
        onPending: wake,
      });
      schedule();
      void tick();
    },

    async stop() {
      running = false;
      if (timer) clearTimeout(timer);
      stopSchedules?.();
      stopSchedules = undefined;
      for (const entry of held.values()) entry.controller.abort({ kind: 'stop' } satisfies StopReason);
      await Promise.allSettled([...held.values()].map((entry) => entry.done));
      await ticking;
      await state.release(owner);
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
      await state.requestCancel(run);
      const local = held.get(runId);
      if (local) {
        local.controller.abort({ kind: 'cancel' } satisfies StopReason);
        await local.done;
      } else {
        // Nobody holds it: finish it here, unless a runner claims it in between (it then sees the request).
        await state.cancelUnheld(runId);
      }
      return (await store.getRun(runId)) as RunRecord;
    },

    async retry(runId, fromStep) {
      const run = await store.getRun(runId);
      if (!run) throw new NotFoundError('run', runId);
      const reset = await state.retry(run, catalog, fromStep);
      logger.info({ runId, steps: reset }, 'run re-queued');
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
