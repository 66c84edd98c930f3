import type { RunRecord } from './store.ts';
import type { RunOrigin } from './triggers.ts';

/**
 * Told of a run's two transitions that the loop's figures end on, by the runner that made
 * them: each is a conditional write only one process wins, so each is reported once in the
 * deployment. `origin` is the stored event whose trigger launched the run (none for a run
 * started by hand or by a schedule).
 */
export interface RunObserver {
  /** The run's first start, not a resume after a lapsed lease; `startedAt` as stored. */
  started?(run: RunRecord, startedAt: string, origin: RunOrigin | undefined): void;
  /** The run ended here; `finishedAt` as stored. */
  finished?(
    run: RunRecord,
    outcome: { status: 'succeeded' | 'failed' | 'cancelled'; finishedAt: string },
    origin: RunOrigin | undefined,
  ): void;
}
