import type { Kysely } from 'kysely';
import { isoNow } from '../core/ids.ts';
import { type NewestFirstPage, newestFirst } from '../core/paging.ts';
import { type Database, isUniqueViolation, type MetadataDb, type PipelineTriggersTable } from '../db/index.ts';
import type { SensorTriggers } from '../events/index.ts';
import type { ParamValue } from './definition.ts';
import { checkedSources, checkInitial, refuseMiss, type TriggerStatus } from './run-state.ts';

/** A decision to start a pipeline: a sensor's for an event, or a schedule's for a firing. */
export interface TriggerRecord {
  id: string;
  /** The sensor rule's name, or `schedule:<name>`. */
  sensor: string;
  eventId: string | null;
  pipeline: string;
  params: Record<string, ParamValue>;
  concurrencyKey: string | null;
  status: TriggerStatus;
  reason: string | null;
  runId: string | null;
  createdAt: string;
  updatedAt: string;
}

export type NewTrigger = Pick<TriggerRecord, 'id' | 'sensor' | 'eventId' | 'pipeline' | 'params' | 'concurrencyKey'> & {
  status: 'pending' | 'skipped' | 'failed';
  reason: string | null;
  createdAt?: string;
};

export interface PendingTrigger {
  id: string;
  pipeline: string;
  paramsJson: string;
  concurrencyKey: string | null;
}

/** The event whose trigger launched a run, as stored. */
export interface RunOrigin {
  eventId: string;
  type: string;
  subject: string | null;
  createdAt: string;
}

export interface TriggerFilter extends NewestFirstPage {
  pipeline?: string | undefined;
  /** Any string: an unknown status matches nothing. */
  status?: string | undefined;
  sensor?: string | undefined;
  eventId?: string | undefined;
}

function toTrigger(row: PipelineTriggersTable): TriggerRecord {
  return {
    id: row.id,
    sensor: row.sensor,
    eventId: row.event_id,
    pipeline: row.pipeline,
    params: JSON.parse(row.params_json) as Record<string, ParamValue>,
    concurrencyKey: row.concurrency_key,
    status: row.status as TriggerStatus,
    reason: row.reason,
    runId: row.run_id,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export type TriggerStore = ReturnType<typeof createTriggerStore>;

/**
 * The `pipeline_triggers` rows: every query on them is here. Sensors and schedules record
 * decisions, runners launch pending ones and release them when the run ends, the API and the
 * CLI read them. Status writes follow the table in `run-state.ts`.
 */
export function createTriggerStore(db: MetadataDb) {
  const k = db.kysely;

  /** Refused unless the table has the move; false when the row was not in `from` (another runner was first). */
  async function move(
    id: string,
    to: TriggerStatus,
    changes: { reason?: string; run_id?: string } = {},
    options: { from?: TriggerStatus[]; mayMiss?: boolean; trx?: Kysely<Database> } = {},
  ): Promise<boolean> {
    const trx = options.trx ?? k;
    const from = checkedSources('trigger', id, to, options.from);
    if (from.length > 0) {
      const result = await trx
        .updateTable('pipeline_triggers')
        .set({ ...changes, status: to, updated_at: isoNow() })
        .where('id', '=', id)
        .where('status', 'in', from)
        .executeTakeFirst();
      if (result.numUpdatedRows === 1n) return true;
    }
    if (options.mayMiss) return false;
    const row = await trx.selectFrom('pipeline_triggers').select('status').where('id', '=', id).executeTakeFirst();
    refuseMiss('trigger', id, to, from, row?.status);
    return false;
  }

  const store = {
    /** Any move the table allows (the table's own test drives this). */
    move: (id: string, to: TriggerStatus) => move(id, to),

    /** False when a trigger with this id exists: every process firing a schedule writes the same row. */
    async record(trigger: NewTrigger): Promise<boolean> {
      const createdAt = trigger.createdAt ?? isoNow();
      try {
        await k
          .insertInto('pipeline_triggers')
          .values({
            id: trigger.id,
            sensor: trigger.sensor,
            event_id: trigger.eventId,
            pipeline: trigger.pipeline,
            params_json: JSON.stringify(trigger.params),
            concurrency_key: trigger.concurrencyKey,
            status: checkInitial('trigger', trigger.id, trigger.status),
            reason: trigger.reason,
            run_id: null,
            created_at: createdAt,
            updated_at: createdAt,
          })
          .execute();
        return true;
      } catch (error) {
        if (isUniqueViolation(error)) return false;
        throw error;
      }
    },

    /** A trigger of this sensor recorded since `since` that was not skipped or failed, for the same key (or, without one, the same params). */
    async recentTrigger(query: {
      sensor: string;
      since: string;
      concurrencyKey: string | null;
      params: Record<string, ParamValue>;
    }): Promise<string | undefined> {
      let recent = k
        .selectFrom('pipeline_triggers')
        .select(['id'])
        .where('sensor', '=', query.sensor)
        .where('status', 'not in', ['skipped', 'failed'])
        .where('created_at', '>=', query.since);
      recent = query.concurrencyKey
        ? recent.where('concurrency_key', '=', query.concurrencyKey)
        : recent.where('params_json', '=', JSON.stringify(query.params));
      return (await recent.executeTakeFirst())?.id;
    },

    /** The trigger holding a concurrency key: `pending`, or `launched` with its run not finished yet. */
    async activeTrigger(concurrencyKey: string): Promise<{ id: string; status: string } | undefined> {
      return k
        .selectFrom('pipeline_triggers')
        .leftJoin('pipeline_runs', 'pipeline_runs.id', 'pipeline_triggers.run_id')
        .select(['pipeline_triggers.id', 'pipeline_triggers.status'])
        .where('pipeline_triggers.concurrency_key', '=', concurrencyKey)
        .where((eb) =>
          eb.or([
            eb('pipeline_triggers.status', '=', 'pending'),
            eb.and([eb('pipeline_triggers.status', '=', 'launched'), eb('pipeline_runs.finished_at', 'is', null)]),
          ]),
        )
        .executeTakeFirst();
    },

    /** Newest first. */
    async list(filter: TriggerFilter = {}): Promise<TriggerRecord[]> {
      let select = k.selectFrom('pipeline_triggers').selectAll();
      if (filter.pipeline) select = select.where('pipeline', '=', filter.pipeline);
      if (filter.status) select = select.where('status', '=', filter.status);
      if (filter.sensor) select = select.where('sensor', '=', filter.sensor);
      if (filter.eventId) select = select.where('event_id', '=', filter.eventId);
      const rows = await newestFirst(select, filter, 100).execute();
      return rows.map(toTrigger);
    },

    /** Oldest first, for a runner to launch; the parameters as stored, for the runner to check. */
    async pending(limit: number): Promise<PendingTrigger[]> {
      const rows = await k
        .selectFrom('pipeline_triggers')
        .select(['id', 'pipeline', 'params_json', 'concurrency_key'])
        .where('status', '=', 'pending')
        .orderBy('created_at')
        .limit(limit)
        .execute();
      return rows.map((row) => ({
        id: row.id,
        pipeline: row.pipeline,
        paramsJson: row.params_json,
        concurrencyKey: row.concurrency_key,
      }));
    },

    /** The event behind a trigger (none for a schedule's). */
    async origin(triggerId: string): Promise<RunOrigin | undefined> {
      const row = await k
        .selectFrom('pipeline_triggers')
        .innerJoin('events', 'events.id', 'pipeline_triggers.event_id')
        .select(['events.id', 'events.type', 'events.subject', 'events.created_at'])
        .where('pipeline_triggers.id', '=', triggerId)
        .executeTakeFirst();
      return row ? { eventId: row.id, type: row.type, subject: row.subject, createdAt: row.created_at } : undefined;
    },

    /** pending -> launched with its run; in the transaction that creates the run. False when another runner was first. */
    launch(id: string, runId: string, trx: Kysely<Database>): Promise<boolean> {
      return move(id, 'launched', { run_id: runId }, { from: ['pending'], mayMiss: true, trx });
    },

    /** pending -> failed with the reason (unknown pipeline, bad parameters). */
    reject(id: string, reason: string): Promise<boolean> {
      return move(id, 'failed', { reason }, { from: ['pending'], mayMiss: true });
    },

    /** The sensors treat a `launched` trigger as holding its concurrency key; a finished run frees it. */
    async release(runId: string, runStatus: string, trx: Kysely<Database> = k): Promise<void> {
      await trx
        .updateTable('pipeline_triggers')
        .set({ status: 'finished', reason: `run ${runStatus}`, updated_at: isoNow() })
        .where('run_id', '=', runId)
        .where('status', 'in', checkedSources('trigger', `run ${runId}`, 'finished', ['launched']))
        .execute();
    },
  };
  return store satisfies SensorTriggers;
}
