import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { BerthaError, NotFoundError } from '../core/errors.ts';
import type { ObjectStore } from '../objects/index.ts';
import { registerArtifactRoutes } from './artifacts.ts';
import { MlflowError } from './errors.ts';
import { bool, double, int64, keyOnly, keyValue, parseMessage, repeated } from './input.ts';
import { BUNDLE_TAG, type ModelRegistry, parseBundle } from './registry.ts';
import type { TrackingStore } from './store.ts';
import { RUN_STATUSES } from './types.ts';

export interface TrackingRouteDeps {
  tracking: TrackingStore;
  registry: ModelRegistry;
  objects: ObjectStore;
}

/** MLflow's error body (mlflow/server/handlers.py `catch_mlflow_exception`). */
export function mlflowErrorBody(error: unknown): { status: number; body: { error_code: string; message: string } } {
  if (error instanceof MlflowError)
    return { status: error.status, body: { error_code: error.code, message: error.message } };
  if (BerthaError.isInstance(error)) {
    if (error.status === 404)
      return { status: 404, body: { error_code: 'RESOURCE_DOES_NOT_EXIST', message: error.message } };
    if (error.status < 500)
      return { status: 400, body: { error_code: 'INVALID_PARAMETER_VALUE', message: error.message } };
  }
  const status = (error as { statusCode?: number }).statusCode;
  if (typeof status === 'number' && status < 500) {
    return { status: 400, body: { error_code: 'BAD_REQUEST', message: (error as Error).message } };
  }
  return { status: 500, body: { error_code: 'INTERNAL_ERROR', message: 'internal error' } };
}

const viewType = z.enum(['ACTIVE_ONLY', 'DELETED_ONLY', 'ALL']);
const runStatus = z.enum(RUN_STATUSES as [string, ...string[]]);

type Handler = (input: unknown, request: FastifyRequest) => Promise<unknown>;

/**
 * MLflow REST API 2.0 (routes and methods from mlflow/protos/service.proto and
 * model_registry.proto), mounted under `/api/2.0` and `/ajax-api/2.0` like MLflow's server.
 */
export function registerTrackingRoutes(app: FastifyInstance, deps: TrackingRouteDeps): void {
  for (const prefix of ['/api/2.0', '/ajax-api/2.0']) {
    app.register(
      async (scope) => {
        scope.setErrorHandler((error, request, reply) => {
          const { status, body } = mlflowErrorBody(error);
          if (status >= 500) request.log.error({ err: error }, 'tracking request failed');
          return reply.status(status).send(body);
        });
        scope.setNotFoundHandler((request, reply) =>
          reply.status(404).send({
            error_code: 'ENDPOINT_NOT_FOUND',
            message: `No API endpoint ${request.method} ${request.url.split('?')[0]}`,
          }),
        );
        registerMlflowRoutes(scope, deps);
        await scope.register(async (artifacts) => registerArtifactRoutes(artifacts, deps));
      },
      { prefix },
    );
  }
}

function registerMlflowRoutes(app: FastifyInstance, { tracking, registry }: TrackingRouteDeps): void {
  const route = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, handler: Handler) => {
    app.route({
      method,
      url: `/mlflow/${path}`,
      handler: async (request: FastifyRequest, reply: FastifyReply) => {
        // GET carries the message in the query string; the other methods in a JSON body.
        const input =
          method === 'GET'
            ? request.query
            : { ...(request.query as object), ...((request.body as object | undefined) ?? {}) };
        return reply.send((await handler(input, request)) ?? {});
      },
    });
  };
  const store = registry.store;

  // Experiments
  route('POST', 'experiments/create', async (input) => {
    const m = parseMessage(
      z.object({
        name: z.string().min(1),
        artifact_location: z.string().optional(),
        tags: repeated(keyValue).optional(),
      }),
      input,
    );
    return {
      experiment_id: await tracking.createExperiment({
        name: m.name,
        artifactLocation: m.artifact_location,
        tags: m.tags,
      }),
    };
  });
  route('GET', 'experiments/get', async (input) => {
    const m = parseMessage(z.object({ experiment_id: z.string() }), input);
    return { experiment: await tracking.getExperiment(m.experiment_id) };
  });
  route('GET', 'experiments/get-by-name', async (input) => {
    const m = parseMessage(z.object({ experiment_name: z.string() }), input);
    return { experiment: await tracking.getExperimentByName(m.experiment_name) };
  });
  const searchExperiments: Handler = async (input) => {
    const m = parseMessage(
      z.object({
        max_results: int64.optional(),
        page_token: z.string().optional(),
        filter: z.string().optional(),
        order_by: repeated(z.string()).optional(),
        view_type: viewType.optional(),
      }),
      input,
    );
    const page = await tracking.searchExperiments({
      filter: m.filter,
      viewType: m.view_type,
      maxResults: m.max_results,
      orderBy: m.order_by,
      pageToken: m.page_token,
    });
    return { experiments: page.items, ...(page.nextPageToken ? { next_page_token: page.nextPageToken } : {}) };
  };
  route('POST', 'experiments/search', searchExperiments);
  route('GET', 'experiments/search', searchExperiments);
  route('POST', 'experiments/update', async (input) => {
    const m = parseMessage(z.object({ experiment_id: z.string(), new_name: z.string() }), input);
    await tracking.updateExperiment(m.experiment_id, m.new_name);
  });
  route('POST', 'experiments/delete', async (input) => {
    await tracking.deleteExperiment(parseMessage(z.object({ experiment_id: z.string() }), input).experiment_id);
  });
  route('POST', 'experiments/restore', async (input) => {
    await tracking.restoreExperiment(parseMessage(z.object({ experiment_id: z.string() }), input).experiment_id);
  });
  route('POST', 'experiments/set-experiment-tag', async (input) => {
    const m = parseMessage(z.object({ experiment_id: z.string(), key: z.string(), value: z.string() }), input);
    await tracking.setExperimentTag(m.experiment_id, { key: m.key, value: m.value });
  });
  route('POST', 'experiments/delete-experiment-tag', async (input) => {
    const m = parseMessage(z.object({ experiment_id: z.string(), key: z.string() }), input);
    await tracking.deleteExperimentTag(m.experiment_id, m.key);
  });

  // Runs
  const runIdSchema = z
    .object({ run_id: z.string().optional(), run_uuid: z.string().optional() })
    .transform((m, ctx) => {
      const runId = m.run_id || m.run_uuid;
      if (!runId) {
        ctx.addIssue({
          code: 'invalid_type',
          expected: 'string',
          path: ['run_id'],
          message: 'Invalid input: expected string, received undefined',
        });
        return z.NEVER;
      }
      return runId;
    });
  const runId = (input: unknown) => parseMessage(runIdSchema, input);

  route('POST', 'runs/create', async (input) => {
    const m = parseMessage(
      z.object({
        experiment_id: z.string().default('0'),
        user_id: z.string().optional(),
        run_name: z.string().optional(),
        start_time: int64.optional(),
        tags: repeated(keyValue).optional(),
      }),
      input,
    );
    return {
      run: await tracking.createRun({
        experimentId: m.experiment_id,
        userId: m.user_id,
        runName: m.run_name,
        startTime: m.start_time,
        tags: m.tags,
      }),
    };
  });
  route('GET', 'runs/get', async (input) => ({ run: await tracking.getRun(runId(input)) }));
  route('POST', 'runs/update', async (input) => {
    const m = parseMessage(
      z.object({ status: runStatus.optional(), end_time: int64.optional(), run_name: z.string().optional() }),
      input,
    );
    return {
      run_info: await tracking.updateRun({
        runId: runId(input),
        status: m.status as (typeof RUN_STATUSES)[number] | undefined,
        endTime: m.end_time,
        runName: m.run_name,
      }),
    };
  });
  route('POST', 'runs/delete', async (input) => {
    await tracking.deleteRun(runId(input));
  });
  route('POST', 'runs/restore', async (input) => {
    await tracking.restoreRun(runId(input));
  });
  const metricSchema = z.object({ key: z.string(), value: double, timestamp: int64, step: int64.default(0) });
  route('POST', 'runs/log-metric', async (input) => {
    const metric = parseMessage(metricSchema, input);
    await tracking.logBatch(runId(input), { metrics: [metric] });
  });
  route('POST', 'runs/log-parameter', async (input) => {
    const param = parseMessage(keyValue, input);
    await tracking.logBatch(runId(input), { params: [param] });
  });
  route('POST', 'runs/set-tag', async (input) => {
    const tag = parseMessage(keyValue, input);
    await tracking.logBatch(runId(input), { tags: [tag] });
  });
  route('POST', 'runs/delete-tag', async (input) => {
    const m = parseMessage(z.object({ key: z.string() }), input);
    await tracking.deleteTag(runId(input), m.key);
  });
  route('POST', 'runs/log-batch', async (input) => {
    const m = parseMessage(
      z.object({
        metrics: z.array(metricSchema).optional(),
        params: z.array(keyValue).optional(),
        tags: z.array(keyValue).optional(),
      }),
      input,
    );
    await tracking.logBatch(runId(input), m);
  });
  route('POST', 'runs/log-inputs', async (input) => {
    const m = parseMessage(
      z.object({
        datasets: z
          .array(
            z.object({
              tags: z.array(keyValue).default([]),
              dataset: z.object({
                name: z.string(),
                digest: z.string(),
                source_type: z.string(),
                source: z.string(),
                schema: z.string().optional(),
                profile: z.string().optional(),
              }),
            }),
          )
          .default([]),
      }),
      input,
    );
    await tracking.logInputs(runId(input), m.datasets);
  });
  route('POST', 'runs/search', async (input) => {
    const m = parseMessage(
      z.object({
        experiment_ids: repeated(z.string()).default([]),
        filter: z.string().optional(),
        run_view_type: viewType.optional(),
        max_results: int64.optional(),
        order_by: repeated(z.string()).optional(),
        page_token: z.string().optional(),
      }),
      input,
    );
    const page = await tracking.searchRuns({
      experimentIds: m.experiment_ids,
      filter: m.filter,
      runViewType: m.run_view_type,
      maxResults: m.max_results,
      orderBy: m.order_by,
      pageToken: m.page_token,
    });
    return { runs: page.items, ...(page.nextPageToken ? { next_page_token: page.nextPageToken } : {}) };
  });
  route('GET', 'metrics/get-history', async (input) => {
    const m = parseMessage(
      z.object({ metric_key: z.string(), max_results: int64.optional(), page_token: z.string().optional() }),
      input,
    );
    const page = await tracking.getMetricHistory(runId(input), m.metric_key, {
      maxResults: m.max_results,
      pageToken: m.page_token,
    });
    return { metrics: page.items, ...(page.nextPageToken ? { next_page_token: page.nextPageToken } : {}) };
  });

  // Registered models
  route('POST', 'registered-models/create', async (input) => {
    const m = parseMessage(
      z.object({ name: z.string(), tags: repeated(keyValue).optional(), description: z.string().optional() }),
      input,
    );
    return {
      registered_model: await store.createRegisteredModel(m.name, { tags: m.tags, description: m.description }),
    };
  });
  route('GET', 'registered-models/get', async (input) => {
    return {
      registered_model: await store.getRegisteredModel(parseMessage(z.object({ name: z.string() }), input).name),
    };
  });
  route('POST', 'registered-models/rename', async (input) => {
    const m = parseMessage(z.object({ name: z.string(), new_name: z.string() }), input);
    return { registered_model: await store.renameRegisteredModel(m.name, m.new_name) };
  });
  route('PATCH', 'registered-models/update', async (input) => {
    const m = parseMessage(z.object({ name: z.string(), description: z.string().optional() }), input);
    return { registered_model: await store.updateRegisteredModel(m.name, m.description) };
  });
  route('DELETE', 'registered-models/delete', async (input) => {
    await registry.deleteRegisteredModel(parseMessage(z.object({ name: z.string() }), input).name);
  });
  route('GET', 'registered-models/search', async (input) => {
    const m = parseMessage(
      z.object({
        filter: z.string().optional(),
        max_results: int64.optional(),
        order_by: repeated(z.string()).optional(),
        page_token: z.string().optional(),
      }),
      input,
    );
    const page = await store.searchRegisteredModels({
      filter: m.filter,
      maxResults: m.max_results,
      orderBy: m.order_by,
      pageToken: m.page_token,
    });
    return { registered_models: page.items, ...(page.nextPageToken ? { next_page_token: page.nextPageToken } : {}) };
  });
  const latestVersions: Handler = async (input) => {
    const m = parseMessage(z.object({ name: z.string(), stages: repeated(z.string()).optional() }), input);
    return { model_versions: await store.getLatestVersions(m.name, m.stages) };
  };
  route('POST', 'registered-models/get-latest-versions', latestVersions);
  route('GET', 'registered-models/get-latest-versions', latestVersions);
  route('POST', 'registered-models/set-tag', async (input) => {
    const m = parseMessage(z.object({ name: z.string(), key: z.string(), value: z.string() }), input);
    await store.setRegisteredModelTag(m.name, { key: m.key, value: m.value });
  });
  route('DELETE', 'registered-models/delete-tag', async (input) => {
    const m = parseMessage(z.object({ name: z.string(), key: z.string() }), input);
    await store.deleteRegisteredModelTag(m.name, m.key);
  });
  route('POST', 'registered-models/alias', async (input) => {
    const m = parseMessage(z.object({ name: z.string(), alias: z.string(), version: z.string() }), input);
    await registry.setAlias(m.name, m.alias, m.version);
  });
  route('DELETE', 'registered-models/alias', async (input) => {
    const m = parseMessage(z.object({ name: z.string(), alias: z.string() }), input);
    await registry.deleteAlias(m.name, m.alias);
  });
  route('GET', 'registered-models/alias', async (input) => {
    const m = parseMessage(z.object({ name: z.string(), alias: z.string() }), input);
    return { model_version: await store.getVersionByAlias(m.name, m.alias) };
  });

  // Model versions
  route('POST', 'model-versions/create', async (input) => {
    const m = parseMessage(
      z.object({
        name: z.string(),
        source: z.string(),
        run_id: z.string().optional(),
        tags: repeated(keyValue).optional(),
        run_link: z.string().optional(),
        description: z.string().optional(),
      }),
      input,
    );
    const bundleTag = m.tags?.find((tag) => tag.key === BUNDLE_TAG);
    const bundleJson = bundleTag
      ? JSON.stringify(parseBundle(bundleTag.value, `${m.name}/new`), (key, value) =>
          key === 'version' ? undefined : value,
        )
      : undefined;
    return {
      model_version: await store.createModelVersion({
        name: m.name,
        source: m.source,
        runId: m.run_id,
        runLink: m.run_link,
        description: m.description,
        tags: m.tags,
        bundleJson,
      }),
    };
  });
  const nameVersion = z.object({
    name: z.string(),
    version: z.union([z.string(), z.number().int().transform(String)]),
  });
  route('GET', 'model-versions/get', async (input) => {
    const m = parseMessage(nameVersion, input);
    return { model_version: await store.getModelVersion(m.name, m.version) };
  });
  route('PATCH', 'model-versions/update', async (input) => {
    const m = parseMessage(nameVersion.extend({ description: z.string().optional() }), input);
    return { model_version: await store.updateModelVersion(m.name, m.version, m.description) };
  });
  route('DELETE', 'model-versions/delete', async (input) => {
    const m = parseMessage(nameVersion, input);
    await registry.deleteModelVersion(m.name, m.version);
  });
  route('GET', 'model-versions/search', async (input) => {
    const m = parseMessage(
      z.object({
        filter: z.string().optional(),
        max_results: int64.optional(),
        order_by: repeated(z.string()).optional(),
        page_token: z.string().optional(),
      }),
      input,
    );
    const page = await store.searchModelVersions({
      filter: m.filter,
      maxResults: m.max_results,
      orderBy: m.order_by,
      pageToken: m.page_token,
    });
    return { model_versions: page.items, ...(page.nextPageToken ? { next_page_token: page.nextPageToken } : {}) };
  });
  route('POST', 'model-versions/transition-stage', async (input) => {
    const m = parseMessage(
      nameVersion.extend({ stage: z.string(), archive_existing_versions: bool.default(false) }),
      input,
    );
    return { model_version: await store.transitionStage(m.name, m.version, m.stage, m.archive_existing_versions) };
  });
  route('GET', 'model-versions/get-download-uri', async (input) => {
    const m = parseMessage(nameVersion, input);
    return { artifact_uri: (await store.getModelVersion(m.name, m.version)).source };
  });
  route('POST', 'model-versions/set-tag', async (input) => {
    const m = parseMessage(nameVersion.extend({ key: z.string(), value: z.string() }), input);
    await store.setModelVersionTag(m.name, m.version, { key: m.key, value: m.value });
  });
  route('DELETE', 'model-versions/delete-tag', async (input) => {
    const m = parseMessage(nameVersion.extend(keyOnly.pick({ key: true }).shape), input);
    await store.deleteModelVersionTag(m.name, m.version, m.key);
  });
}

/** Bertha's own view of the registry for services and the dashboard: the bundle behind an alias or version. */
export function registerModelBundleRoutes(app: FastifyInstance, registry: ModelRegistry): void {
  app.get<{ Params: { name: string; alias: string } }>('/v1/models/:name/aliases/:alias/bundle', async (request) => {
    const bundle = await registry.resolveAlias(request.params.name, request.params.alias);
    if (!bundle) throw new NotFoundError('model alias', `${request.params.name}@${request.params.alias}`);
    return bundle;
  });
  app.get<{ Params: { name: string; version: string } }>(
    '/v1/models/:name/versions/:version/bundle',
    async (request) => {
      try {
        return await registry.getBundle(request.params.name, request.params.version);
      } catch (error) {
        if (error instanceof MlflowError && error.code === 'RESOURCE_DOES_NOT_EXIST') {
          throw new NotFoundError('model version', `${request.params.name}/${request.params.version}`);
        }
        throw error;
      }
    },
  );
}
