import { setTimeout as sleep } from 'node:timers/promises';
import { BerthaError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { ModelVersion, RegisteredModel } from './registry-types.ts';
import type { Experiment, KeyValue, Metric, MetricInput, Run, RunInfo, RunStatus, ViewType } from './types.ts';
import { LIMITS } from './validation.ts';

/** An error answer from an MLflow server, with MLflow's error code (e.g. RESOURCE_DOES_NOT_EXIST). */
export class TrackingApiError extends BerthaError {
  readonly mlflowCode: string;
  constructor(mlflowCode: string, message: string, status: number) {
    super('tracking_api_error', message, status >= 500 ? 502 : status, { mlflowCode, status });
    this.mlflowCode = mlflowCode;
  }
}

export interface TrackingClientOptions {
  /** Root of the tracking server: Bertha's own URL, or a remote MLflow's (`MLFLOW_TRACKING_URI`). */
  uri: string;
  /** Sent as `Authorization: Bearer <token>` (MLflow's `MLFLOW_TRACKING_TOKEN`). */
  token?: string | undefined;
  /** Attempts per request on 5xx, 429 and network errors. */
  maxAttempts?: number | undefined;
  /** First backoff delay; doubles per attempt, with jitter. */
  backoffMs?: number | undefined;
  /** Metrics buffered per run before a log-batch is sent (at most MLflow's 1000). */
  metricBatchSize?: number | undefined;
  fetch?: typeof fetch | undefined;
  logger?: Logger | undefined;
  signal?: AbortSignal | undefined;
}

export interface SearchRunsRequest {
  experimentIds: string[];
  filter?: string | undefined;
  orderBy?: string[] | undefined;
  maxResults?: number | undefined;
  runViewType?: ViewType | undefined;
  pageToken?: string | undefined;
}

/** What pipeline steps use to record runs and models, against Bertha's embedded server or a real MLflow. */
export interface TrackingClient {
  readonly uri: string;
  /** One MLflow REST call, e.g. `call('POST', 'runs/create', {...})`. */
  call<T>(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', endpoint: string, message?: Record<string, unknown>): Promise<T>;
  getOrCreateExperiment(name: string): Promise<string>;
  getExperimentByName(name: string): Promise<Experiment | undefined>;
  createRun(input: {
    experimentId: string;
    runName?: string;
    tags?: Record<string, string>;
    startTime?: number;
  }): Promise<Run>;
  getRun(runId: string): Promise<Run>;
  /** Buffered: sent in log-batch calls of up to `metricBatchSize` metrics. */
  logMetric(runId: string, key: string, value: number, options?: { step?: number; timestamp?: number }): Promise<void>;
  logMetrics(
    runId: string,
    metrics: Record<string, number>,
    options?: { step?: number; timestamp?: number },
  ): Promise<void>;
  logParams(runId: string, params: Record<string, string | number | boolean>): Promise<void>;
  setTags(runId: string, tags: Record<string, string>): Promise<void>;
  /** Sends every buffered metric. */
  flush(): Promise<void>;
  /** Flushes and marks the run finished (or failed/killed). */
  endRun(runId: string, status?: RunStatus): Promise<RunInfo>;
  searchRuns(request: SearchRunsRequest): Promise<{ runs: Run[]; nextPageToken?: string }>;
  getMetricHistory(runId: string, key: string): Promise<Metric[]>;
  /** Uploads through MLflow's artifact proxy under the run's artifact root. */
  logArtifact(runId: string, artifactPath: string, body: Uint8Array | string): Promise<void>;
  downloadArtifact(runId: string, artifactPath: string): Promise<Buffer>;
  createRegisteredModel(name: string, description?: string): Promise<RegisteredModel>;
  getRegisteredModel(name: string): Promise<RegisteredModel | undefined>;
  createModelVersion(input: {
    name: string;
    source: string;
    runId?: string;
    tags?: Record<string, string>;
    description?: string;
  }): Promise<ModelVersion>;
  searchModelVersions(filter?: string, maxResults?: number): Promise<ModelVersion[]>;
  getModelVersion(name: string, version: string): Promise<ModelVersion>;
  setAlias(name: string, alias: string, version: string): Promise<void>;
  deleteAlias(name: string, alias: string): Promise<void>;
  getVersionByAlias(name: string, alias: string): Promise<ModelVersion | undefined>;
}

function toKeyValues(record: Record<string, string | number | boolean>): KeyValue[] {
  return Object.entries(record).map(([key, value]) => ({ key, value: String(value) }));
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** JSON has no NaN or infinities; MLflow's protobuf JSON mapping spells them as strings. */
function metricJson(metric: MetricInput): Record<string, unknown> {
  const value = Number.isFinite(metric.value) ? metric.value : String(metric.value);
  return { key: metric.key, value, timestamp: metric.timestamp, step: metric.step };
}

export function createTrackingClient(options: TrackingClientOptions): TrackingClient {
  const base = options.uri.replace(/\/+$/, '');
  const doFetch = options.fetch ?? fetch;
  const maxAttempts = options.maxAttempts ?? 5;
  const backoffMs = options.backoffMs ?? 200;
  const batchSize = Math.min(options.metricBatchSize ?? LIMITS.metricsPerBatch, LIMITS.metricsPerBatch);
  const pending = new Map<string, MetricInput[]>();
  // One flush at a time per client, so batches for a run reach the server in logging order.
  let flushing: Promise<void> = Promise.resolve();

  async function send(
    method: string,
    url: string,
    body: string | Uint8Array | undefined,
    contentType: string | undefined,
  ): Promise<Response> {
    const headers: Record<string, string> = {};
    if (contentType) headers['content-type'] = contentType;
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    let lastError: unknown;
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      options.signal?.throwIfAborted();
      try {
        const response = await doFetch(url, {
          method,
          headers,
          ...(body === undefined ? {} : { body }),
          ...(options.signal ? { signal: options.signal } : {}),
        });
        if (response.status < 500 && response.status !== 429) return response;
        lastError = new TrackingApiError(
          'INTERNAL_ERROR',
          `${method} ${url} answered ${response.status}: ${await response.text()}`,
          response.status,
        );
      } catch (error) {
        if (options.signal?.aborted) throw error;
        lastError = error;
      }
      if (attempt < maxAttempts) {
        const delay = backoffMs * 2 ** (attempt - 1) * (0.5 + Math.random());
        options.logger?.warn(
          { url, attempt, delayMs: Math.round(delay), err: lastError },
          'tracking request failed; retrying',
        );
        await sleep(delay, undefined, options.signal ? { signal: options.signal } : {});
      }
    }
    throw lastError;
  }

  async function call<T>(
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
    endpoint: string,
    message: Record<string, unknown> = {},
  ): Promise<T> {
    let url = `${base}/api/2.0/mlflow/${endpoint}`;
    let body: string | undefined;
    if (method === 'GET') {
      const query = new URLSearchParams();
      for (const [key, value] of Object.entries(message)) {
        if (value === undefined) continue;
        for (const item of Array.isArray(value) ? value : [value]) query.append(key, String(item));
      }
      const text = query.toString();
      if (text) url += `?${text}`;
    } else {
      body = JSON.stringify(message);
    }
    const response = await send(method, url, body, body === undefined ? undefined : 'application/json');
    const text = await response.text();
    const parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    if (!response.ok) {
      throw new TrackingApiError(
        String(parsed.error_code ?? 'INTERNAL_ERROR'),
        String(parsed.message ?? text),
        response.status,
      );
    }
    return parsed as T;
  }

  async function absent<T>(promise: Promise<T>): Promise<T | undefined> {
    try {
      return await promise;
    } catch (error) {
      if (error instanceof TrackingApiError && error.mlflowCode === 'RESOURCE_DOES_NOT_EXIST') return undefined;
      throw error;
    }
  }

  async function sendBuffered(): Promise<void> {
    for (const [runId, metrics] of pending) {
      while (metrics.length > 0) {
        const batch = metrics.splice(0, batchSize);
        await call('POST', 'runs/log-batch', { run_id: runId, metrics: batch.map(metricJson) });
      }
      pending.delete(runId);
    }
  }

  function flush(): Promise<void> {
    flushing = flushing.then(sendBuffered, sendBuffered);
    return flushing;
  }

  async function artifactUrl(runId: string, artifactPath: string): Promise<string> {
    const run = await client.getRun(runId);
    const root = run.info.artifact_uri;
    if (!root.startsWith('mlflow-artifacts:/')) {
      throw new BerthaError(
        'tracking_artifacts_unsupported',
        `run ${runId} stores artifacts at ${root}; only the mlflow-artifacts proxy is supported`,
        400,
      );
    }
    const rootPath = root.slice('mlflow-artifacts:/'.length).replace(/^\/+|\/+$/g, '');
    const relative = artifactPath.replace(/^\/+/, '');
    return `${base}/api/2.0/mlflow-artifacts/artifacts/${[...rootPath.split('/'), ...relative.split('/')].map(encodeURIComponent).join('/')}`;
  }

  const client: TrackingClient = {
    uri: base,
    call,

    async getExperimentByName(name) {
      return (
        await absent(call<{ experiment: Experiment }>('GET', 'experiments/get-by-name', { experiment_name: name }))
      )?.experiment;
    },

    async getOrCreateExperiment(name) {
      const existing = await client.getExperimentByName(name);
      if (existing) return existing.experiment_id;
      try {
        return (await call<{ experiment_id: string }>('POST', 'experiments/create', { name })).experiment_id;
      } catch (error) {
        // Another step created it in the meantime.
        if (error instanceof TrackingApiError && error.mlflowCode === 'RESOURCE_ALREADY_EXISTS') {
          const created = await client.getExperimentByName(name);
          if (created) return created.experiment_id;
        }
        throw error;
      }
    },

    async createRun({ experimentId, runName, tags = {}, startTime }) {
      return (
        await call<{ run: Run }>('POST', 'runs/create', {
          experiment_id: experimentId,
          run_name: runName,
          start_time: startTime ?? Date.now(),
          tags: toKeyValues(tags),
        })
      ).run;
    },

    async getRun(runId) {
      return (await call<{ run: Run }>('GET', 'runs/get', { run_id: runId })).run;
    },

    async logMetric(runId, key, value, { step = 0, timestamp = Date.now() } = {}) {
      const list = pending.get(runId) ?? [];
      pending.set(runId, list);
      list.push({ key, value, step, timestamp });
      if (list.length >= batchSize) await flush();
    },

    async logMetrics(runId, metrics, { step = 0, timestamp = Date.now() } = {}) {
      for (const [key, value] of Object.entries(metrics))
        await client.logMetric(runId, key, value, { step, timestamp });
    },

    async logParams(runId, params) {
      for (const batch of chunks(toKeyValues(params), LIMITS.paramsTagsPerBatch)) {
        await call('POST', 'runs/log-batch', { run_id: runId, params: batch });
      }
    },

    async setTags(runId, tags) {
      for (const batch of chunks(toKeyValues(tags), LIMITS.paramsTagsPerBatch)) {
        await call('POST', 'runs/log-batch', { run_id: runId, tags: batch });
      }
    },

    flush,

    async endRun(runId, status = 'FINISHED') {
      await flush();
      return (await call<{ run_info: RunInfo }>('POST', 'runs/update', { run_id: runId, status, end_time: Date.now() }))
        .run_info;
    },

    async searchRuns({ experimentIds, filter, orderBy, maxResults, runViewType, pageToken }) {
      const page = await call<{ runs?: Run[]; next_page_token?: string }>('POST', 'runs/search', {
        experiment_ids: experimentIds,
        filter,
        order_by: orderBy,
        max_results: maxResults,
        run_view_type: runViewType,
        page_token: pageToken,
      });
      return { runs: page.runs ?? [], ...(page.next_page_token ? { nextPageToken: page.next_page_token } : {}) };
    },

    async getMetricHistory(runId, key) {
      const metrics: Metric[] = [];
      let pageToken: string | undefined;
      do {
        const page = await call<{ metrics?: Metric[]; next_page_token?: string }>('GET', 'metrics/get-history', {
          run_id: runId,
          metric_key: key,
          page_token: pageToken,
        });
        metrics.push(...(page.metrics ?? []));
        pageToken = page.next_page_token;
      } while (pageToken);
      return metrics;
    },

    async logArtifact(runId, artifactPath, body) {
      const url = await artifactUrl(runId, artifactPath);
      const response = await send(
        'PUT',
        url,
        typeof body === 'string' ? body : Buffer.from(body),
        'application/octet-stream',
      );
      if (!response.ok)
        throw new TrackingApiError(
          'INTERNAL_ERROR',
          `uploading ${artifactPath} answered ${response.status}: ${await response.text()}`,
          response.status,
        );
    },

    async downloadArtifact(runId, artifactPath) {
      const response = await send('GET', await artifactUrl(runId, artifactPath), undefined, undefined);
      if (!response.ok) {
        const parsed = (await response.json().catch(() => ({}))) as { error_code?: string; message?: string };
        throw new TrackingApiError(
          parsed.error_code ?? 'INTERNAL_ERROR',
          parsed.message ?? `download answered ${response.status}`,
          response.status,
        );
      }
      return Buffer.from(await response.arrayBuffer());
    },

    async createRegisteredModel(name, description) {
      return (
        await call<{ registered_model: RegisteredModel }>('POST', 'registered-models/create', { name, description })
      ).registered_model;
    },

    async getRegisteredModel(name) {
      return (await absent(call<{ registered_model: RegisteredModel }>('GET', 'registered-models/get', { name })))
        ?.registered_model;
    },

    async createModelVersion({ name, source, runId, tags = {}, description }) {
      return (
        await call<{ model_version: ModelVersion }>('POST', 'model-versions/create', {
          name,
          source,
          run_id: runId,
          tags: toKeyValues(tags),
          description,
        })
      ).model_version;
    },

    async searchModelVersions(filter, maxResults) {
      const versions: ModelVersion[] = [];
      let pageToken: string | undefined;
      do {
        const page = await call<{ model_versions?: ModelVersion[]; next_page_token?: string }>(
          'GET',
          'model-versions/search',
          {
            filter,
            max_results: maxResults,
            page_token: pageToken,
          },
        );
        versions.push(...(page.model_versions ?? []));
        pageToken = page.next_page_token;
      } while (pageToken && (maxResults === undefined || versions.length < maxResults));
      return versions;
    },

    async getModelVersion(name, version) {
      return (await call<{ model_version: ModelVersion }>('GET', 'model-versions/get', { name, version }))
        .model_version;
    },

    async setAlias(name, alias, version) {
      await call('POST', 'registered-models/alias', { name, alias, version });
    },

    async deleteAlias(name, alias) {
      await call('DELETE', 'registered-models/alias', { name, alias });
    },

    async getVersionByAlias(name, alias) {
      return (await absent(call<{ model_version: ModelVersion }>('GET', 'registered-models/alias', { name, alias })))
        ?.model_version;
    },
  };
  return client;
}
