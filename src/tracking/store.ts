import { randomUUID } from 'node:crypto';
import { type Kysely, type RawBuilder, sql, type Transaction } from 'kysely';
import type { PageSize } from '../core/paging.ts';
import type { Database, MetadataDb, TrackingRunsTable } from '../db/index.ts';
import { isUniqueViolation } from '../db/index.ts';
import { alreadyExists, doesNotExist, invalidParameter, MlflowError } from './errors.ts';
import { type FilterComparison, parseFilter, parseOrderBy } from './filter.ts';
import { type PageRequest, startPage } from './paging.ts';
import { compareColumn, toNumber } from './sql.ts';
import {
  type DatasetInput,
  type Experiment,
  type KeyValue,
  type LogBatchInput,
  type Metric,
  type MetricInput,
  type MetricValue,
  type Page,
  RUN_STATUSES,
  type Run,
  type RunInfo,
  type RunStatus,
  type SearchExperimentsInput,
  type SearchRunsInput,
  type ViewType,
} from './types.ts';
import { LIMITS, validateBatchSize, validateKey, validateValue } from './validation.ts';

/** Tag MLflow keeps in step with the run's name (mlflow/utils/mlflow_tags.py MLFLOW_RUN_NAME). */
export const RUN_NAME_TAG = 'mlflow.runName';
/** Page sizes of SearchExperiments and SearchRuns (mlflow/store/tracking/__init__.py SEARCH_MAX_RESULTS_DEFAULT, _THRESHOLD). */
const SEARCH_PAGE: PageSize = { fallback: LIMITS.searchDefaultResults, max: LIMITS.searchMaxResults };
/** MLflow's SQL store replaces infinities by the largest double (sqlalchemy_store.py `_get_metric_value`). */
const DOUBLE_MAX = 1.7976931348623157e308;

const ADJECTIVES = [
  'amber',
  'bold',
  'calm',
  'clever',
  'eager',
  'gentle',
  'keen',
  'lucid',
  'merry',
  'quiet',
  'rapid',
  'sunny',
];
const NOUNS = [
  'badger',
  'cedar',
  'comet',
  'falcon',
  'harbor',
  'lynx',
  'meadow',
  'otter',
  'pine',
  'river',
  'sparrow',
  'willow',
];

function randomRunName(): string {
  const pick = (list: string[]) => list[Math.floor(Math.random() * list.length)] as string;
  return `${pick(ADJECTIVES)}-${pick(NOUNS)}-${Math.floor(Math.random() * 1000)}`;
}

function experimentIdNumber(id: string): number {
  if (!/^\d+$/.test(id) || id.length > 15) throw invalidParameter(`Invalid experiment ID: '${id}'`);
  return Number(id);
}

function lifecycleStages(view: ViewType | undefined): string[] {
  if (view === 'DELETED_ONLY') return ['deleted'];
  if (view === 'ALL') return ['active', 'deleted'];
  return ['active'];
}

function metricValueOut(value: number, isNan: number): MetricValue {
  if (isNan) return 'NaN';
  if (value === Number.POSITIVE_INFINITY) return 'Infinity';
  if (value === Number.NEGATIVE_INFINITY) return '-Infinity';
  return value;
}

interface StoredMetric {
  run_id: string;
  key: string;
  value: number;
  timestamp: number;
  step: number;
  is_nan: number;
}

function storedMetric(runId: string, metric: MetricInput): StoredMetric {
  const isNan = Number.isNaN(metric.value);
  let value = isNan ? 0 : metric.value;
  if (value === Number.POSITIVE_INFINITY) value = DOUBLE_MAX;
  if (value === Number.NEGATIVE_INFINITY) value = -DOUBLE_MAX;
  return {
    run_id: runId,
    key: metric.key,
    value,
    timestamp: metric.timestamp,
    step: metric.step,
    is_nan: isNan ? 1 : 0,
  };
}

/** MLflow's order for "latest": higher step, then later timestamp, then larger value (NaN lowest). */
function newer(a: StoredMetric, b: StoredMetric): boolean {
  if (a.step !== b.step) return a.step > b.step;
  if (a.timestamp !== b.timestamp) return a.timestamp > b.timestamp;
  if (a.is_nan !== b.is_nan) return b.is_nan === 1;
  return a.value > b.value;
}

/** Ensures the list has at most one entry per key, rejecting conflicting duplicates as MLflow does for params. */
function uniqueParams(runId: string, params: KeyValue[]): KeyValue[] {
  const seen = new Map<string, string>();
  for (const param of params) {
    const previous = seen.get(param.key);
    if (previous !== undefined && previous !== param.value) {
      throw invalidParameter(
        `Duplicate parameter keys have been submitted: '${param.key}' with values '${previous}' and '${param.value}' for run ID='${runId}'`,
      );
    }
    seen.set(param.key, param.value);
  }
  return [...seen].map(([key, value]) => ({ key, value }));
}

/** Later tags in one request win, as MLflow applies them in order. */
function lastTagPerKey(tags: KeyValue[]): KeyValue[] {
  return [...new Map(tags.map((tag) => [tag.key, tag.value]))].map(([key, value]) => ({ key, value }));
}

type Db = Kysely<Database>;

/**
 * The experiment-tracking store: MLflow's tracking service over the metadata DB, on SQLite
 * and PostgreSQL alike. Methods throw MlflowError with MLflow's error codes.
 */
export interface TrackingStore {
  createExperiment(input: {
    name: string;
    artifactLocation?: string | undefined;
    tags?: KeyValue[] | undefined;
  }): Promise<string>;
  getExperiment(experimentId: string): Promise<Experiment>;
  getExperimentByName(name: string): Promise<Experiment>;
  searchExperiments(input: SearchExperimentsInput): Promise<Page<Experiment>>;
  updateExperiment(experimentId: string, newName: string): Promise<void>;
  deleteExperiment(experimentId: string): Promise<void>;
  restoreExperiment(experimentId: string): Promise<void>;
  setExperimentTag(experimentId: string, tag: KeyValue): Promise<void>;
  deleteExperimentTag(experimentId: string, key: string): Promise<void>;
  createRun(input: {
    experimentId: string;
    userId?: string | undefined;
    runName?: string | undefined;
    startTime?: number | undefined;
    tags?: KeyValue[] | undefined;
  }): Promise<Run>;
  getRun(runId: string): Promise<Run>;
  updateRun(input: {
    runId: string;
    status?: RunStatus | undefined;
    endTime?: number | undefined;
    runName?: string | undefined;
  }): Promise<RunInfo>;
  deleteRun(runId: string): Promise<void>;
  restoreRun(runId: string): Promise<void>;
  logBatch(runId: string, batch: LogBatchInput): Promise<void>;
  deleteTag(runId: string, key: string): Promise<void>;
  logInputs(runId: string, inputs: DatasetInput[]): Promise<void>;
  getMetricHistory(runId: string, key: string, options?: PageRequest): Promise<Page<Metric>>;
  searchRuns(input: SearchRunsInput): Promise<Page<Run>>;
}

export function createTrackingStore(metadata: MetadataDb): TrackingStore {
  const db: Db = metadata.kysely;
  const dialect = metadata.dialect;

  async function experimentRow(executor: Db | Transaction<Database>, experimentId: string) {
    const row = await executor
      .selectFrom('tracking_experiments')
      .selectAll()
      .where('experiment_id', '=', experimentIdNumber(experimentId))
      .executeTakeFirst();
    if (!row) throw doesNotExist(`No Experiment with id=${experimentId} exists`);
    return row;
  }

  async function hydrateExperiments(
    rows: {
      experiment_id: number;
      name: string;
      artifact_location: string;
      lifecycle_stage: string;
      creation_time: number | string;
      last_update_time: number | string;
    }[],
  ): Promise<Experiment[]> {
    if (rows.length === 0) return [];
    const tags = await db
      .selectFrom('tracking_experiment_tags')
      .selectAll()
      .where(
        'experiment_id',
        'in',
        rows.map((row) => Number(row.experiment_id)),
      )
      .execute();
    return rows.map((row) => ({
      experiment_id: String(row.experiment_id),
      name: row.name,
      artifact_location: row.artifact_location,
      lifecycle_stage: row.lifecycle_stage as Experiment['lifecycle_stage'],
      last_update_time: toNumber(row.last_update_time),
      creation_time: toNumber(row.creation_time),
      tags: tags
        .filter((tag) => Number(tag.experiment_id) === Number(row.experiment_id))
        .map(({ key, value }) => ({ key, value })),
    }));
  }

  async function runRow(executor: Db | Transaction<Database>, runId: string): Promise<TrackingRunsTable> {
    const row = await executor.selectFrom('tracking_runs').selectAll().where('run_id', '=', runId).executeTakeFirst();
    if (!row) throw doesNotExist(`Run with id=${runId} not found`);
    return row;
  }

  async function activeRun(executor: Db | Transaction<Database>, runId: string): Promise<TrackingRunsTable> {
    const row = await runRow(executor, runId);
    if (row.lifecycle_stage !== 'active') {
      throw invalidParameter(
        `The run ${runId} must be in the 'active' state. Current state is ${row.lifecycle_stage}.`,
      );
    }
    return row;
  }

  function runInfo(row: TrackingRunsTable): RunInfo {
    const endTime = toNumber(row.end_time);
    return {
      run_id: row.run_id,
      run_uuid: row.run_id,
      run_name: row.name,
      experiment_id: String(row.experiment_id),
      user_id: row.user_id,
      status: row.status as RunStatus,
      start_time: toNumber(row.start_time),
      ...(endTime === null ? {} : { end_time: endTime }),
      artifact_uri: row.artifact_uri,
      lifecycle_stage: row.lifecycle_stage as RunInfo['lifecycle_stage'],
    };
  }

  async function hydrateRuns(rows: TrackingRunsTable[]): Promise<Run[]> {
    if (rows.length === 0) return [];
    const ids = rows.map((row) => row.run_id);
    const [metrics, params, tags, inputs] = await Promise.all([
      db.selectFrom('tracking_latest_metrics').selectAll().where('run_id', 'in', ids).execute(),
      db.selectFrom('tracking_params').selectAll().where('run_id', 'in', ids).execute(),
      db.selectFrom('tracking_run_tags').selectAll().where('run_id', 'in', ids).execute(),
      db.selectFrom('tracking_run_inputs').selectAll().where('run_id', 'in', ids).orderBy('created_time').execute(),
    ]);
    const byRun = new Map<string, Run>();
    const runs = rows.map((row) => {
      const run: Run = {
        info: runInfo(row),
        data: { metrics: [], params: [], tags: [] },
        inputs: { dataset_inputs: [] },
      };
      byRun.set(row.run_id, run);
      return run;
    });
    for (const metric of metrics) {
      byRun.get(metric.run_id)?.data.metrics.push({
        key: metric.key,
        value: metricValueOut(metric.value, metric.is_nan),
        timestamp: toNumber(metric.timestamp),
        step: toNumber(metric.step),
      });
    }
    for (const param of params) byRun.get(param.run_id)?.data.params.push({ key: param.key, value: param.value });
    for (const tag of tags) byRun.get(tag.run_id)?.data.tags.push({ key: tag.key, value: tag.value });
    for (const input of inputs) {
      byRun.get(input.run_id)?.inputs.dataset_inputs.push({
        tags: JSON.parse(input.tags_json) as KeyValue[],
        dataset: {
          name: input.name,
          digest: input.digest,
          source_type: input.source_type,
          source: input.source,
          ...(input.schema === null ? {} : { schema: input.schema }),
          ...(input.profile === null ? {} : { profile: input.profile }),
        },
      });
    }
    return runs;
  }

  async function upsertTags(executor: Db | Transaction<Database>, runId: string, tags: KeyValue[]): Promise<void> {
    if (tags.length === 0) return;
    await executor
      .insertInto('tracking_run_tags')
      .values(tags.map((tag) => ({ run_id: runId, key: tag.key, value: tag.value })))
      .onConflict((oc) => oc.columns(['run_id', 'key']).doUpdateSet({ value: (eb) => eb.ref('excluded.value') }))
      .execute();
    const runName = tags.find((tag) => tag.key === RUN_NAME_TAG);
    if (runName)
      await executor.updateTable('tracking_runs').set({ name: runName.value }).where('run_id', '=', runId).execute();
  }

  async function logMetrics(
    executor: Db | Transaction<Database>,
    runId: string,
    metrics: MetricInput[],
  ): Promise<void> {
    if (metrics.length === 0) return;
    const stored = metrics.map((metric) => storedMetric(runId, metric));
    // One JSON parameter and a fixed statement instead of a 6,000-placeholder insert: the
    // database expands the rows itself, which is several times faster on both databases.
    const rows = JSON.stringify(
      stored.map((metric) => [metric.key, metric.value, metric.timestamp, metric.step, metric.is_nan]),
    );
    if (dialect === 'postgres') {
      await sql`INSERT INTO tracking_metrics (run_id, key, value, timestamp, step, is_nan)
        SELECT ${runId}, r->>0, (r->>1)::double precision, (r->>2)::bigint, (r->>3)::bigint, (r->>4)::integer
        FROM json_array_elements(${rows}::json) AS r`.execute(executor);
    } else {
      await sql`INSERT INTO tracking_metrics (run_id, key, value, timestamp, step, is_nan)
        SELECT ${runId}, r.value ->> 0, r.value ->> 1, r.value ->> 2, r.value ->> 3, r.value ->> 4
        FROM json_each(${rows}) AS r`.execute(executor);
    }
    const latest = new Map<string, StoredMetric>();
    for (const metric of stored) {
      const current = latest.get(metric.key);
      if (!current || newer(metric, current)) latest.set(metric.key, metric);
    }
    // Sorted keys keep concurrent batches on PostgreSQL locking rows in one order (no deadlock);
    // the conditional upsert keeps the newest value however the batches interleave.
    const newest = [...latest.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    await executor
      .insertInto('tracking_latest_metrics')
      .values(newest)
      .onConflict((oc) =>
        oc
          .columns(['run_id', 'key'])
          .doUpdateSet({
            value: (eb) => eb.ref('excluded.value'),
            timestamp: (eb) => eb.ref('excluded.timestamp'),
            step: (eb) => eb.ref('excluded.step'),
            is_nan: (eb) => eb.ref('excluded.is_nan'),
          })
          .where(
            sql<boolean>`(excluded.step > tracking_latest_metrics.step
              OR (excluded.step = tracking_latest_metrics.step AND excluded.timestamp > tracking_latest_metrics.timestamp)
              OR (excluded.step = tracking_latest_metrics.step AND excluded.timestamp = tracking_latest_metrics.timestamp
                  AND ((tracking_latest_metrics.is_nan = 1 AND excluded.is_nan = 0)
                    OR (excluded.is_nan = tracking_latest_metrics.is_nan AND excluded.value > tracking_latest_metrics.value))))`,
          ),
      )
      .execute();
  }

  async function logParams(executor: Db | Transaction<Database>, runId: string, params: KeyValue[]): Promise<void> {
    if (params.length === 0) return;
    const unique = uniqueParams(runId, params);
    await executor
      .insertInto('tracking_params')
      .values(unique.map((param) => ({ run_id: runId, key: param.key, value: param.value })))
      .onConflict((oc) => oc.columns(['run_id', 'key']).doNothing())
      .execute();
    const stored = await executor
      .selectFrom('tracking_params')
      .select(['key', 'value'])
      .where('run_id', '=', runId)
      .where(
        'key',
        'in',
        unique.map((param) => param.key),
      )
      .execute();
    const storedValues = new Map(stored.map((row) => [row.key, row.value]));
    for (const param of unique) {
      const existing = storedValues.get(param.key);
      if (existing !== undefined && existing !== param.value) {
        throw invalidParameter(
          `Changing param values is not allowed. Param with key='${param.key}' was already logged with value='${existing}' for run ID='${runId}'. Attempted logging new value '${param.value}'.`,
        );
      }
    }
  }

  function runComparison(comparison: FilterComparison): RawBuilder<unknown> {
    const { entity, key } = comparison;
    switch (entity) {
      case 'metric':
        if (comparison.op === 'IS NULL' || comparison.op === 'IS NOT NULL') {
          const exists = sql`EXISTS (SELECT 1 FROM tracking_latest_metrics m WHERE m.run_id = r.run_id AND m.key = ${key})`;
          return comparison.op === 'IS NULL' ? sql`NOT ${exists}` : exists;
        }
        return sql`EXISTS (SELECT 1 FROM tracking_latest_metrics m WHERE m.run_id = r.run_id AND m.key = ${key} AND m.is_nan = 0 AND ${compareColumn(sql`m.value`, comparison, 'number', dialect)})`;
      case 'parameter':
      case 'tag': {
        const table = sql.table(entity === 'parameter' ? 'tracking_params' : 'tracking_run_tags');
        const exists = sql`EXISTS (SELECT 1 FROM ${table} p WHERE p.run_id = r.run_id AND p.key = ${key})`;
        if (comparison.op === 'IS NULL') return sql`NOT ${exists}`;
        if (comparison.op === 'IS NOT NULL') return exists;
        return sql`EXISTS (SELECT 1 FROM ${table} p WHERE p.run_id = r.run_id AND p.key = ${key} AND ${compareColumn(sql`p.value`, comparison, 'string', dialect)})`;
      }
      case 'attribute': {
        const column = runAttributeColumn(key);
        if (column.kind === 'string' && key !== 'run_id' && (comparison.op === 'IN' || comparison.op === 'NOT IN')) {
          throw invalidParameter(`'${comparison.op}' is only supported for attribute 'run_id'`);
        }
        return compareColumn(column.sql, comparison, column.kind, dialect);
      }
      case 'dataset': {
        const column = { name: sql`d.name`, digest: sql`d.digest`, context: undefined }[key];
        if (!column) throw invalidParameter(`Invalid dataset attribute '${key}'; expected name or digest`);
        return sql`EXISTS (SELECT 1 FROM tracking_run_inputs d WHERE d.run_id = r.run_id AND ${compareColumn(column, comparison, 'string', dialect)})`;
      }
    }
  }

  function runAttributeColumn(key: string): { sql: RawBuilder<unknown>; kind: 'string' | 'number' } {
    switch (key) {
      case 'run_id':
      case 'run_uuid':
        return { sql: sql`r.run_id`, kind: 'string' };
      case 'run_name':
        return { sql: sql`r.name`, kind: 'string' };
      case 'status':
        return { sql: sql`r.status`, kind: 'string' };
      case 'user_id':
        return { sql: sql`r.user_id`, kind: 'string' };
      case 'artifact_uri':
        return { sql: sql`r.artifact_uri`, kind: 'string' };
      case 'lifecycle_stage':
        return { sql: sql`r.lifecycle_stage`, kind: 'string' };
      case 'start_time':
      case 'created':
      case 'Created':
        return { sql: sql`r.start_time`, kind: 'number' };
      case 'end_time':
        return { sql: sql`r.end_time`, kind: 'number' };
      default:
        throw invalidParameter(
          `Invalid attribute key '${key}' specified. Valid keys are 'run_id', 'run_name', 'status', 'user_id', 'artifact_uri', 'start_time', 'end_time', 'created'`,
        );
    }
  }

  return {
    async createExperiment({ name, artifactLocation, tags = [] }) {
      if (!name) throw invalidParameter(`Missing value for required parameter 'name'`);
      for (const tag of tags) validateValue('tag', validateKey('tag', tag.key), tag.value);
      const now = Date.now();
      try {
        return await db.transaction().execute(async (trx) => {
          const inserted = await trx
            .insertInto('tracking_experiments')
            .values({
              name,
              artifact_location: '',
              lifecycle_stage: 'active',
              creation_time: now,
              last_update_time: now,
            })
            .returning('experiment_id')
            .executeTakeFirstOrThrow();
          const id = Number(inserted.experiment_id);
          await trx
            .updateTable('tracking_experiments')
            .set({ artifact_location: artifactLocation || `mlflow-artifacts:/${id}` })
            .where('experiment_id', '=', id)
            .execute();
          const unique = lastTagPerKey(tags);
          if (unique.length > 0) {
            await trx
              .insertInto('tracking_experiment_tags')
              .values(unique.map((tag) => ({ experiment_id: id, key: tag.key, value: tag.value })))
              .execute();
          }
          return String(id);
        });
      } catch (error) {
        if (isUniqueViolation(error)) throw alreadyExists(`Experiment(name=${name}) already exists.`);
        throw error;
      }
    },

    async getExperiment(experimentId) {
      const [experiment] = await hydrateExperiments([await experimentRow(db, experimentId)]);
      return experiment as Experiment;
    },

    async getExperimentByName(name) {
      const row = await db.selectFrom('tracking_experiments').selectAll().where('name', '=', name).executeTakeFirst();
      if (!row) throw doesNotExist(`Could not find experiment with name '${name}'`);
      const [experiment] = await hydrateExperiments([row]);
      return experiment as Experiment;
    },

    async searchExperiments(input) {
      const page = startPage(input, SEARCH_PAGE);
      const conditions: RawBuilder<unknown>[] = [
        sql`e.lifecycle_stage IN (${sql.join(lifecycleStages(input.viewType))})`,
      ];
      for (const comparison of parseFilter(input.filter)) {
        if (comparison.entity === 'tag') {
          conditions.push(
            sql`EXISTS (SELECT 1 FROM tracking_experiment_tags t WHERE t.experiment_id = e.experiment_id AND t.key = ${comparison.key} AND ${compareColumn(sql`t.value`, comparison, 'string', dialect)})`,
          );
        } else if (comparison.entity === 'attribute' && comparison.key === 'name') {
          conditions.push(compareColumn(sql`e.name`, comparison, 'string', dialect));
        } else if (
          comparison.entity === 'attribute' &&
          (comparison.key === 'creation_time' || comparison.key === 'last_update_time')
        ) {
          conditions.push(compareColumn(sql.ref(`e.${comparison.key}`), comparison, 'number', dialect));
        } else {
          throw invalidParameter(
            `Invalid attribute key '${comparison.key}' in experiment filter; expected name, creation_time, last_update_time or tags.<key>`,
          );
        }
      }
      const order: RawBuilder<unknown>[] = [];
      for (const clause of parseOrderBy(input.orderBy)) {
        const columns: Record<string, string> = {
          name: 'e.name',
          experiment_id: 'e.experiment_id',
          creation_time: 'e.creation_time',
          last_update_time: 'e.last_update_time',
        };
        const column = clause.entity === 'attribute' ? columns[clause.key] : undefined;
        if (!column) throw invalidParameter(`Invalid order_by entity '${clause.key}' for experiments`);
        order.push(sql`${sql.ref(column)} ${sql.raw(clause.descending ? 'DESC' : 'ASC')}`);
      }
      if (order.length === 0) order.push(sql`e.creation_time DESC`);
      order.push(sql`e.experiment_id ASC`);
      const rows = await sql<{
        experiment_id: number;
        name: string;
        artifact_location: string;
        lifecycle_stage: string;
        creation_time: number | string;
        last_update_time: number | string;
      }>`SELECT e.* FROM tracking_experiments e WHERE ${sql.join(conditions, sql` AND `)} ORDER BY ${sql.join(order)} LIMIT ${page.limit} OFFSET ${page.offset}`.execute(
        db,
      );
      return page.finish(rows.rows, hydrateExperiments);
    },

    async updateExperiment(experimentId, newName) {
      if (!newName) throw invalidParameter(`Missing value for required parameter 'new_name'`);
      const row = await experimentRow(db, experimentId);
      if (row.lifecycle_stage !== 'active') {
        throw invalidParameter(
          `Cannot rename a non-active experiment ${experimentId}. Current state is ${row.lifecycle_stage}.`,
        );
      }
      try {
        await db
          .updateTable('tracking_experiments')
          .set({ name: newName, last_update_time: Date.now() })
          .where('experiment_id', '=', row.experiment_id)
          .execute();
      } catch (error) {
        if (isUniqueViolation(error)) throw alreadyExists(`Experiment(name=${newName}) already exists.`);
        throw error;
      }
    },

    async deleteExperiment(experimentId) {
      const row = await experimentRow(db, experimentId);
      if (Number(row.experiment_id) === 0) throw invalidParameter(`Cannot delete the default experiment '0'.`);
      const now = Date.now();
      await db.transaction().execute(async (trx) => {
        await trx
          .updateTable('tracking_experiments')
          .set({ lifecycle_stage: 'deleted', last_update_time: now })
          .where('experiment_id', '=', row.experiment_id)
          .execute();
        await trx
          .updateTable('tracking_runs')
          .set({ lifecycle_stage: 'deleted', deleted_time: now })
          .where('experiment_id', '=', row.experiment_id)
          .where('lifecycle_stage', '=', 'active')
          .execute();
      });
    },

    async restoreExperiment(experimentId) {
      const row = await experimentRow(db, experimentId);
      if (row.lifecycle_stage !== 'deleted') {
        throw invalidParameter(
          `Cannot restore an active experiment ${experimentId}. Current state is ${row.lifecycle_stage}.`,
        );
      }
      await db.transaction().execute(async (trx) => {
        await trx
          .updateTable('tracking_experiments')
          .set({ lifecycle_stage: 'active', last_update_time: Date.now() })
          .where('experiment_id', '=', row.experiment_id)
          .execute();
        await trx
          .updateTable('tracking_runs')
          .set({ lifecycle_stage: 'active', deleted_time: null })
          .where('experiment_id', '=', row.experiment_id)
          .execute();
      });
    },

    async setExperimentTag(experimentId, tag) {
      validateValue('tag', validateKey('tag', tag.key), tag.value);
      const row = await experimentRow(db, experimentId);
      if (row.lifecycle_stage !== 'active') {
        throw invalidParameter(
          `The experiment ${experimentId} must be in the 'active' state. Current state is ${row.lifecycle_stage}.`,
        );
      }
      await db
        .insertInto('tracking_experiment_tags')
        .values({ experiment_id: row.experiment_id, key: tag.key, value: tag.value })
        .onConflict((oc) => oc.columns(['experiment_id', 'key']).doUpdateSet({ value: tag.value }))
        .execute();
    },

    async deleteExperimentTag(experimentId, key) {
      const row = await experimentRow(db, experimentId);
      const result = await db
        .deleteFrom('tracking_experiment_tags')
        .where('experiment_id', '=', row.experiment_id)
        .where('key', '=', key)
        .executeTakeFirst();
      if (Number(result.numDeletedRows) === 0)
        throw doesNotExist(`No tag with name: ${key} in experiment with id ${experimentId}`);
    },

    async createRun({ experimentId, userId, runName, startTime, tags = [] }) {
      for (const tag of tags) validateValue('tag', validateKey('tag', tag.key), tag.value);
      const experiment = await experimentRow(db, experimentId);
      if (experiment.lifecycle_stage !== 'active') {
        throw invalidParameter(
          `The experiment ${experimentId} must be in the 'active' state. Current state is ${experiment.lifecycle_stage}.`,
        );
      }
      const tagName = tags.find((tag) => tag.key === RUN_NAME_TAG)?.value;
      if (runName && tagName && runName !== tagName) {
        throw invalidParameter(
          `Both 'run_name' argument and 'mlflow.runName' tag are specified, but with different values (run_name='${runName}', mlflow.runName='${tagName}').`,
        );
      }
      const name = runName || tagName || randomRunName();
      // MLflow's run ids are uuid4 hex; its clients validate that shape.
      const runId = randomUUID().replaceAll('-', '');
      const base = experiment.artifact_location.replace(/\/+$/, '');
      const row: TrackingRunsTable = {
        run_id: runId,
        experiment_id: Number(experiment.experiment_id),
        name,
        user_id: userId ?? '',
        status: 'RUNNING',
        start_time: startTime ?? Date.now(),
        end_time: null,
        lifecycle_stage: 'active',
        artifact_uri: `${base}/${runId}/artifacts`,
        deleted_time: null,
      };
      await db.transaction().execute(async (trx) => {
        await trx.insertInto('tracking_runs').values(row).execute();
        await upsertTags(
          trx,
          runId,
          lastTagPerKey([...tags.filter((tag) => tag.key !== RUN_NAME_TAG), { key: RUN_NAME_TAG, value: name }]),
        );
      });
      const [run] = await hydrateRuns([await runRow(db, runId)]);
      return run as Run;
    },

    async getRun(runId) {
      const [run] = await hydrateRuns([await runRow(db, runId)]);
      return run as Run;
    },

    async updateRun({ runId, status, endTime, runName }) {
      const row = await activeRun(db, runId);
      if (status !== undefined && !RUN_STATUSES.includes(status))
        throw invalidParameter(`Invalid run status '${status}'`);
      const changes: Partial<TrackingRunsTable> = {};
      if (status !== undefined) changes.status = status;
      if (endTime !== undefined) changes.end_time = endTime;
      if (runName) changes.name = runName;
      await db.transaction().execute(async (trx) => {
        if (Object.keys(changes).length > 0)
          await trx.updateTable('tracking_runs').set(changes).where('run_id', '=', runId).execute();
        if (runName) await upsertTags(trx, runId, [{ key: RUN_NAME_TAG, value: runName }]);
      });
      return runInfo({ ...row, ...changes });
    },

    async deleteRun(runId) {
      await runRow(db, runId);
      await db
        .updateTable('tracking_runs')
        .set({ lifecycle_stage: 'deleted', deleted_time: Date.now() })
        .where('run_id', '=', runId)
        .execute();
    },

    async restoreRun(runId) {
      await runRow(db, runId);
      await db
        .updateTable('tracking_runs')
        .set({ lifecycle_stage: 'active', deleted_time: null })
        .where('run_id', '=', runId)
        .execute();
    },

    async logBatch(runId, { metrics = [], params = [], tags = [] }) {
      validateBatchSize(metrics.length, params.length, tags.length);
      for (const metric of metrics) validateKey('metric', metric.key);
      for (const param of params) validateValue('param', validateKey('param', param.key), param.value);
      for (const tag of tags) validateValue('tag', validateKey('tag', tag.key), tag.value);
      await db.transaction().execute(async (trx) => {
        await activeRun(trx, runId);
        await logParams(trx, runId, params);
        await logMetrics(trx, runId, metrics);
        await upsertTags(trx, runId, lastTagPerKey(tags));
      });
    },

    async deleteTag(runId, key) {
      await activeRun(db, runId);
      const result = await db
        .deleteFrom('tracking_run_tags')
        .where('run_id', '=', runId)
        .where('key', '=', key)
        .executeTakeFirst();
      if (Number(result.numDeletedRows) === 0) throw doesNotExist(`No tag with name: ${key} in run with id ${runId}`);
    },

    async logInputs(runId, inputs) {
      for (const input of inputs) {
        const { dataset } = input;
        if (!dataset?.name || !dataset.digest || !dataset.source_type || dataset.source === undefined) {
          throw invalidParameter(
            `Each dataset input needs dataset.name, dataset.digest, dataset.source_type and dataset.source`,
          );
        }
      }
      await activeRun(db, runId);
      if (inputs.length === 0) return;
      const now = Date.now();
      await db
        .insertInto('tracking_run_inputs')
        .values(
          inputs.map(({ dataset, tags }) => ({
            run_id: runId,
            name: dataset.name,
            digest: dataset.digest,
            source_type: dataset.source_type,
            source: dataset.source,
            schema: dataset.schema ?? null,
            profile: dataset.profile ?? null,
            tags_json: JSON.stringify(tags ?? []),
            created_time: now,
          })),
        )
        .onConflict((oc) =>
          oc.columns(['run_id', 'name', 'digest']).doUpdateSet({ tags_json: (eb) => eb.ref('excluded.tags_json') }),
        )
        .execute();
    },

    async getMetricHistory(runId, key, options = {}) {
      await runRow(db, runId);
      const page = startPage(options, { fallback: 25_000, max: 25_000 });
      const rows = await db
        .selectFrom('tracking_metrics')
        .selectAll()
        .where('run_id', '=', runId)
        .where('key', '=', key)
        .orderBy('step')
        .orderBy('timestamp')
        .orderBy('value')
        .limit(page.limit)
        .offset(page.offset)
        .execute();
      return page.finish(rows, (pageRows) =>
        pageRows.map((row) => ({
          key: row.key,
          value: metricValueOut(row.value, row.is_nan),
          timestamp: toNumber(row.timestamp),
          step: toNumber(row.step),
        })),
      );
    },

    async searchRuns(input) {
      const page = startPage(input, SEARCH_PAGE);
      if (input.experimentIds.length === 0) return { items: [] };
      const experimentIds = input.experimentIds.map(experimentIdNumber);
      const conditions: RawBuilder<unknown>[] = [
        sql`r.experiment_id IN (${sql.join(experimentIds)})`,
        sql`r.lifecycle_stage IN (${sql.join(lifecycleStages(input.runViewType))})`,
        ...parseFilter(input.filter).map(runComparison),
      ];
      const joins: RawBuilder<unknown>[] = [];
      const order: RawBuilder<unknown>[] = [];
      parseOrderBy(input.orderBy).forEach((clause, index) => {
        const direction = sql.raw(clause.descending ? 'DESC' : 'ASC');
        const alias = sql.raw(`o${index}`);
        if (clause.entity === 'attribute') {
          const column = runAttributeColumn(clause.key);
          order.push(sql`(${column.sql} IS NULL)`, sql`${column.sql} ${direction}`);
          return;
        }
        if (clause.entity === 'dataset') throw invalidParameter(`Invalid order_by entity 'datasets'`);
        const table = sql.table(
          clause.entity === 'metric'
            ? 'tracking_latest_metrics'
            : clause.entity === 'parameter'
              ? 'tracking_params'
              : 'tracking_run_tags',
        );
        joins.push(sql`LEFT JOIN ${table} ${alias} ON ${alias}.run_id = r.run_id AND ${alias}.key = ${clause.key}`);
        // Runs without the key sort last either way, as in MLflow.
        order.push(sql`(${alias}.value IS NULL)`);
        if (clause.entity === 'metric') order.push(sql`${alias}.is_nan`);
        order.push(sql`${alias}.value ${direction}`);
      });
      order.push(sql`r.start_time DESC`, sql`r.run_id ASC`);
      const rows =
        await sql<TrackingRunsTable>`SELECT r.* FROM tracking_runs r ${sql.join(joins, sql` `)} WHERE ${sql.join(conditions, sql` AND `)} ORDER BY ${sql.join(order)} LIMIT ${page.limit} OFFSET ${page.offset}`.execute(
          db,
        );
      return page.finish(rows.rows, hydrateRuns);
    },
  };
}

/** The id of the experiment called `name`, created on first use. */
export async function experimentIdFor(tracking: TrackingStore, name: string): Promise<string> {
  try {
    return (await tracking.getExperimentByName(name)).experiment_id;
  } catch (error) {
    if (error instanceof MlflowError && error.code === 'RESOURCE_DOES_NOT_EXIST') {
      return tracking.createExperiment({ name });
    }
    throw error;
  }
}
