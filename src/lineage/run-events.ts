import { createHash } from 'node:crypto';
import { newId } from '../core/ids.ts';
import type { MetadataDb } from '../db/index.ts';

/** OpenLineage's run states a step attempt goes through: one START, then one of the others. */
export type RunEventType = 'START' | 'COMPLETE' | 'FAIL' | 'ABORT';

/**
 * One OpenLineage run event of a pipeline step attempt, as stored. The namespace is left out:
 * `toOpenLineage` adds it with the rest of the envelope when the events are exported.
 */
export interface StepRunEvent {
  id: string;
  eventType: RunEventType;
  eventTime: string;
  /** OpenLineage `run.runId`: one per step attempt (`stepRunUuid`). */
  runUuid: string;
  /** OpenLineage `job.name`: `<pipeline>.<step>`. */
  job: string;
  /** The pipeline run the attempt belongs to (OpenLineage's parent run facet). */
  parent: { runUuid: string; job: string };
  pipelineRunId: string;
  step: string;
  attempt: number;
  /** Dataset names in the namespace: `feedback`, `dataset/<version>`, `model/<model>/<n>`, artifact keys. */
  inputs: string[];
  outputs: string[];
  error: string | null;
}

export interface RunEventFilter {
  /** Only events at or after this ISO time. */
  since?: string | undefined;
  pipelineRunId?: string | undefined;
  /** Only events stored after this one (paging forwards). */
  after?: string | undefined;
  limit: number;
}

/** Where step attempts' run events are kept until `bertha lineage export` writes them out. */
export interface RunEventStore {
  record(event: Omit<StepRunEvent, 'id'>): Promise<void>;
  /** Oldest first. */
  list(filter: RunEventFilter): Promise<StepRunEvent[]>;
}

/** The row the `0110_lineage` migration creates; this module is its only reader and writer. */
interface OpenLineageEventsTable {
  id: string;
  event_time: string;
  event_type: string;
  run_uuid: string;
  job_name: string;
  parent_run_uuid: string | null;
  parent_job_name: string | null;
  pipeline_run_id: string;
  step: string;
  attempt: number;
  inputs_json: string;
  outputs_json: string;
  error: string | null;
}

export function createRunEventStore(db: MetadataDb): RunEventStore {
  const kysely = db.kysely.withTables<{ openlineage_events: OpenLineageEventsTable }>();
  return {
    async record(event) {
      await kysely
        .insertInto('openlineage_events')
        .values({
          id: newId('olv'),
          event_time: event.eventTime,
          event_type: event.eventType,
          run_uuid: event.runUuid,
          job_name: event.job,
          parent_run_uuid: event.parent.runUuid,
          parent_job_name: event.parent.job,
          pipeline_run_id: event.pipelineRunId,
          step: event.step,
          attempt: event.attempt,
          inputs_json: JSON.stringify(event.inputs),
          outputs_json: JSON.stringify(event.outputs),
          error: event.error,
        })
        .execute();
    },
    async list(filter) {
      let query = kysely.selectFrom('openlineage_events').selectAll();
      if (filter.since) query = query.where('event_time', '>=', filter.since);
      if (filter.pipelineRunId) query = query.where('pipeline_run_id', '=', filter.pipelineRunId);
      if (filter.after) query = query.where('id', '>', filter.after);
      const rows = await query.orderBy('id').limit(filter.limit).execute();
      return rows.map((row) => ({
        id: row.id,
        eventType: row.event_type as RunEventType,
        eventTime: row.event_time,
        runUuid: row.run_uuid,
        job: row.job_name,
        parent: { runUuid: row.parent_run_uuid ?? '', job: row.parent_job_name ?? '' },
        pipelineRunId: row.pipeline_run_id,
        step: row.step,
        attempt: Number(row.attempt),
        inputs: JSON.parse(row.inputs_json) as string[],
        outputs: JSON.parse(row.outputs_json) as string[],
        error: row.error,
      }));
    },
  };
}

/** Fixed namespace of Bertha's name-based UUIDs (RFC 9562 version 5). */
const UUID_NAMESPACE = Buffer.from('6f1c3e0a9d2b4c7e8a5f0b1d2c3e4f50', 'hex');

/**
 * OpenLineage wants a UUID per run; Bertha's ids are not UUIDs. A version-5 UUID of the id is
 * the same in every process, so the START written by one pod and the COMPLETE by another agree.
 */
export function lineageUuid(name: string): string {
  const hash = createHash('sha1').update(UUID_NAMESPACE).update(name).digest();
  hash[6] = ((hash[6] as number) & 0x0f) | 0x50;
  hash[8] = ((hash[8] as number) & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The OpenLineage run of one attempt of one step, and of the pipeline run it belongs to. */
export function stepRunUuid(pipelineRunId: string, step: string, attempt: number): string {
  return lineageUuid(`step:${pipelineRunId}/${step}/${attempt}`);
}

export function pipelineRunUuid(pipelineRunId: string): string {
  return lineageUuid(`run:${pipelineRunId}`);
}
