import { isoNow } from '../core/ids.ts';
import type { Logger } from '../core/logger.ts';
import type { MetadataDb } from '../db/index.ts';
import {
  createLineageStore,
  createRunEventStore,
  type LineageRecorder,
  pipelineRunUuid,
  type RunEventType,
  stepRunUuid,
} from '../lineage/index.ts';

/**
 * What a step tells the lineage about itself: the edges it made (written at once, as rows) and
 * the datasets it read and wrote beyond its artifacts, reported on its OpenLineage COMPLETE.
 */
export interface StepLineage extends LineageRecorder {
  /** OpenLineage dataset names (`feedback`, `dataset/<version>`, `model/<model>/<n>`; see `lineageDatasets`). */
  read(...datasets: string[]): void;
  wrote(...datasets: string[]): void;
}

export interface StepAttemptLineage {
  context: StepLineage;
  started(): Promise<void>;
  /** COMPLETE, FAIL (with the error) or ABORT, with every dataset the attempt reported. */
  ended(
    outcome: { status: 'succeeded' } | { status: 'failed'; error: string } | { status: 'cancelled' },
  ): Promise<void>;
}

/**
 * The OpenLineage run of one step attempt: START when it begins and one end event, both
 * stored for `bertha lineage export`. Every pipeline gets them from the runner; a step adds
 * datasets and edges through `context.lineage`. A run event that cannot be stored is logged
 * and the step goes on: the export then lacks it, the run does not fail for it.
 */
export function createStepAttemptLineage(options: {
  db: MetadataDb;
  pipeline: string;
  runId: string;
  step: string;
  attempt: number;
  /** The artifacts the step reads and writes, as dataset names. */
  inputs: string[];
  outputs: string[];
  logger: Logger;
}): StepAttemptLineage {
  const edges = createLineageStore(options.db);
  const events = createRunEventStore(options.db);
  const inputs = new Set(options.inputs);
  const outputs = new Set(options.outputs);

  const emit = async (eventType: RunEventType, error: string | null) => {
    try {
      await events.record({
        eventType,
        eventTime: isoNow(),
        runUuid: stepRunUuid(options.runId, options.step, options.attempt),
        job: `${options.pipeline}.${options.step}`,
        parent: { runUuid: pipelineRunUuid(options.runId), job: options.pipeline },
        pipelineRunId: options.runId,
        step: options.step,
        attempt: options.attempt,
        inputs: [...inputs],
        outputs: eventType === 'START' ? [] : [...outputs],
        error,
      });
    } catch (failure) {
      options.logger.error(
        { err: failure, runId: options.runId, step: options.step, eventType },
        'could not store the OpenLineage run event',
      );
    }
  };

  return {
    context: {
      link: (list) => edges.link(list),
      read: (...names) => {
        for (const name of names) inputs.add(name);
      },
      wrote: (...names) => {
        for (const name of names) outputs.add(name);
      },
    },
    started: () => emit('START', null),
    ended: (outcome) =>
      outcome.status === 'succeeded'
        ? emit('COMPLETE', null)
        : outcome.status === 'failed'
          ? emit('FAIL', outcome.error)
          : emit('ABORT', null),
  };
}
