import { isoNow, newId } from '../core/ids.ts';
import { type NewestFirstPage, newestFirst } from '../core/paging.ts';
import type {
  MetadataDb,
  PipelineArtifactsTable,
  PipelineAttemptsTable,
  PipelineLogsTable,
  PipelineRunsTable,
  PipelineStepsTable,
} from '../db/index.ts';
import type { PipelineDefinition, RunParams } from './definition.ts';
import { ACTIVE_RUN_STATUSES, checkInitial, type RunStatus, type StepStatus } from './run-state.ts';
import { createTriggerStore } from './triggers.ts';

export interface RunRecord {
  id: string;
  pipeline: string;
  status: RunStatus;
  executor: 'local' | 'argo';
  params: RunParams;
  source: string;
  triggerId: string | null;
  concurrencyKey: string | null;
  owner: string | null;
  cancelRequested: boolean;
  error: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  updatedAt: string;
}

export interface StepRecord {
  name: string;
  status: StepStatus;
  attempts: number;
  cacheKey: string | null;
  cachedFrom: string | null;
  progress: number | null;
  progressMessage: string | null;
  error: string | null;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface ArtifactRecord {
  step: string;
  name: string;
  objectKey: string;
  size: number;
  etag: string;
  createdAt: string;
}

export interface LogRecord {
  id: string;
  step: string;
  attempt: number;
  level: string;
  message: string;
  fields: Record<string, unknown> | null;
  createdAt: string;
}

export interface AttemptRecord {
  step: string;
  attempt: number;
  status: string;
  owner: string;
  error: string | null;
  startedAt: string;
  finishedAt: string | null;
}

export function toRun(row: PipelineRunsTable): RunRecord {
  return {
    id: row.id,
    pipeline: row.pipeline,
    status: row.status as RunStatus,
    executor: row.executor as 'local' | 'argo',
    params: JSON.parse(row.params_json) as RunParams,
    source: row.source,
    triggerId: row.trigger_id,
    concurrencyKey: row.concurrency_key,
    owner: row.owner,
    cancelRequested: Number(row.cancel_requested) === 1,
    error: row.error,
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    updatedAt: row.updated_at,
  };
}

function toStep(row: PipelineStepsTable): StepRecord {
  return {
    name: row.name,
    status: row.status as StepStatus,
    attempts: Number(row.attempts),
    cacheKey: row.cache_key,
    cachedFrom: row.cached_from,
    progress: row.progress === null ? null : Number(row.progress),
    progressMessage: row.progress_message,
    error: row.error,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
  };
}

function toArtifact(row: PipelineArtifactsTable): ArtifactRecord {
  return {
    step: row.step,
    name: row.name,
    objectKey: row.object_key,
    size: Number(row.size),
    etag: row.etag,
    createdAt: row.created_at,
  };
}

function toLog(row: PipelineLogsTable): LogRecord {
  return {
    id: row.id,
    step: row.step,
    attempt: Number(row.attempt),
    level: row.level,
    message: row.message,
    fields: row.fields_json ? (JSON.parse(row.fields_json) as Record<string, unknown>) : null,
    createdAt: row.created_at,
  };
}

function toAttempt(row: PipelineAttemptsTable): AttemptRecord {
  return {
    step: row.step,
    attempt: Number(row.attempt),
    status: row.status,
    owner: row.owner,
    error: row.error,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
  };
}

export interface CreateRunInput {
  definition: PipelineDefinition;
  params: RunParams;
  source: string;
  executor?: 'local' | 'argo';
  triggerId?: string | null;
  concurrencyKey?: string | null;
  /** Argo runs take the workflow's name as their id. */
  id?: string;
}

export interface RunFilter extends NewestFirstPage {
  pipeline?: string | undefined;
  status?: RunStatus | undefined;
}

/**
 * Rows of runs, steps, attempts, artifacts, logs and triggers; shared by the runner, `bertha
 * step` and the API. Status changes are not written here but by `run-state.ts`.
 */
export function createRunStore(db: MetadataDb) {
  const k = db.kysely;

  return {
    db,
    triggers: createTriggerStore(db),

    /**
     * The run row and one `pending` row per step, in one transaction. A local run is queued for
     * a runner; an Argo run is created by its first pod, running.
     */
    async createRun(input: CreateRunInput, trx = k): Promise<RunRecord> {
      const now = isoNow();
      const executor = input.executor ?? 'local';
      const id = input.id ?? newId('run');
      const row: PipelineRunsTable = {
        id,
        pipeline: input.definition.name,
        status: checkInitial('run', id, executor === 'argo' ? 'running' : 'queued'),
        executor,
        params_json: JSON.stringify(input.params),
        source: input.source,
        trigger_id: input.triggerId ?? null,
        concurrency_key: input.concurrencyKey ?? null,
        owner: null,
        lease_until: null,
        cancel_requested: 0,
        error: null,
        created_at: now,
        started_at: executor === 'argo' ? now : null,
        finished_at: null,
        updated_at: now,
      };
      const write = async (t: typeof k) => {
        await t.insertInto('pipeline_runs').values(row).execute();
        await t
          .insertInto('pipeline_steps')
          .values(
            input.definition.steps.map((step) => ({
              id: newId('stp'),
              run_id: row.id,
              name: step.name,
              status: checkInitial('step', `${row.id}/${step.name}`, 'pending'),
              attempts: 0,
              cache_key: null,
              cached_from: null,
              progress: null,
              progress_message: null,
              error: null,
              started_at: null,
              finished_at: null,
              updated_at: now,
            })),
          )
          .execute();
      };
      if (trx === k) await k.transaction().execute(write);
      else await write(trx);
      return toRun(row);
    },

    async getRun(id: string): Promise<RunRecord | undefined> {
      const row = await k.selectFrom('pipeline_runs').selectAll().where('id', '=', id).executeTakeFirst();
      return row ? toRun(row) : undefined;
    },

    async listRuns(filter: RunFilter = {}): Promise<RunRecord[]> {
      let query = k.selectFrom('pipeline_runs').selectAll();
      if (filter.pipeline) query = query.where('pipeline', '=', filter.pipeline);
      if (filter.status) query = query.where('status', '=', filter.status);
      const rows = await newestFirst(query, filter, 50).execute();
      return rows.map(toRun);
    },

    async listSteps(runId: string): Promise<StepRecord[]> {
      const rows = await k.selectFrom('pipeline_steps').selectAll().where('run_id', '=', runId).execute();
      return rows.map(toStep);
    },

    async getStep(runId: string, name: string): Promise<StepRecord | undefined> {
      const row = await k
        .selectFrom('pipeline_steps')
        .selectAll()
        .where('run_id', '=', runId)
        .where('name', '=', name)
        .executeTakeFirst();
      return row ? toStep(row) : undefined;
    },

    async listAttempts(runId: string): Promise<AttemptRecord[]> {
      const rows = await k
        .selectFrom('pipeline_attempts')
        .selectAll()
        .where('run_id', '=', runId)
        .orderBy('started_at')
        .orderBy('attempt')
        .execute();
      return rows.map(toAttempt);
    },

    async listArtifacts(runId: string): Promise<ArtifactRecord[]> {
      const rows = await k.selectFrom('pipeline_artifacts').selectAll().where('run_id', '=', runId).execute();
      return rows.map(toArtifact);
    },

    async listLogs(runId: string, options: { step?: string; after?: string; limit?: number } = {}) {
      let query = k.selectFrom('pipeline_logs').selectAll().where('run_id', '=', runId);
      if (options.step) query = query.where('step', '=', options.step);
      if (options.after) query = query.where('id', '>', options.after);
      const rows = await query
        .orderBy('id')
        .limit(options.limit ?? 1000)
        .execute();
      return rows.map(toLog);
    },

    async setStepCacheKey(runId: string, name: string, cacheKey: string) {
      await k
        .updateTable('pipeline_steps')
        .set({ cache_key: cacheKey, updated_at: isoNow() })
        .where('run_id', '=', runId)
        .where('name', '=', name)
        .execute();
    },

    async setStepProgress(runId: string, name: string, progress: number, message: string | null) {
      await k
        .updateTable('pipeline_steps')
        .set({ progress, progress_message: message, updated_at: isoNow() })
        .where('run_id', '=', runId)
        .where('name', '=', name)
        .execute();
    },

    /** Whether a queued or running run holds this concurrency key. */
    async hasActiveRun(concurrencyKey: string): Promise<boolean> {
      const row = await k
        .selectFrom('pipeline_runs')
        .select('id')
        .where('concurrency_key', '=', concurrencyKey)
        .where('status', 'in', ACTIVE_RUN_STATUSES)
        .executeTakeFirst();
      return row !== undefined;
    },

    /** Those of `ids` whose cancel was requested (by this process or another). */
    async listCancelRequested(ids: string[]): Promise<string[]> {
      if (ids.length === 0) return [];
      const rows = await k
        .selectFrom('pipeline_runs')
        .select('id')
        .where('id', 'in', ids)
        .where('cancel_requested', '=', 1)
        .execute();
      return rows.map((row) => row.id);
    },

    async putArtifact(runId: string, step: string, artifact: Omit<ArtifactRecord, 'step' | 'createdAt'>) {
      await k
        .deleteFrom('pipeline_artifacts')
        .where('run_id', '=', runId)
        .where('step', '=', step)
        .where('name', '=', artifact.name)
        .execute();
      await k
        .insertInto('pipeline_artifacts')
        .values({
          id: newId('art'),
          run_id: runId,
          step,
          name: artifact.name,
          object_key: artifact.objectKey,
          size: artifact.size,
          etag: artifact.etag,
          created_at: isoNow(),
        })
        .execute();
    },

    async getArtifact(runId: string, step: string, name: string): Promise<ArtifactRecord | undefined> {
      const row = await k
        .selectFrom('pipeline_artifacts')
        .selectAll()
        .where('run_id', '=', runId)
        .where('step', '=', step)
        .where('name', '=', name)
        .executeTakeFirst();
      return row ? toArtifact(row) : undefined;
    },

    /** The newest successful step of the same pipeline with this cache key, in another run. */
    async findCached(pipeline: string, cacheKey: string, exceptRun: string) {
      return k
        .selectFrom('pipeline_steps')
        .innerJoin('pipeline_runs', 'pipeline_runs.id', 'pipeline_steps.run_id')
        .select(['pipeline_steps.run_id as runId', 'pipeline_steps.name as step'])
        .where('pipeline_runs.pipeline', '=', pipeline)
        .where('pipeline_steps.cache_key', '=', cacheKey)
        .where('pipeline_steps.status', '=', 'succeeded')
        .where('pipeline_steps.run_id', '!=', exceptRun)
        .orderBy('pipeline_steps.finished_at', 'desc')
        .executeTakeFirst();
    },

    async appendLogs(rows: PipelineLogsTable[]) {
      if (rows.length > 0) await k.insertInto('pipeline_logs').values(rows).execute();
    },
  };
}

export type RunStore = ReturnType<typeof createRunStore>;
