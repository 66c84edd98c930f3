import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { pageQuery } from '../core/paging.ts';
import { parseInput } from '../core/validate.ts';
import type { PipelineCatalog } from './catalog.ts';
import { describePipeline, runDetail } from './run-detail.ts';
import type { LocalRunner } from './runner.ts';
import type { RunStore } from './store.ts';
import type { TriggerStore } from './triggers.ts';

export interface PipelineRouteDeps {
  catalog: PipelineCatalog;
  store: RunStore;
  runner: LocalRunner;
}

const paramValue = z.union([z.string(), z.number(), z.boolean()]);
const startBody = z.object({ params: z.record(z.string(), paramValue).default({}) }).strict();
const retryBody = z.object({ fromStep: z.string().min(1).optional() }).strict();
const runsQuery = z
  .object({
    pipeline: z.string().optional(),
    status: z.enum(['queued', 'running', 'succeeded', 'failed', 'cancelled']).optional(),
    ...pageQuery({ fallback: 50, max: 500 }),
  })
  .strict();
const logsQuery = z
  .object({
    step: z.string().optional(),
    after: z.string().optional(),
    /** Keep the response open and stream new lines (server-sent events) until the run ends. */
    follow: z.enum(['true', 'false', '1', '0']).optional(),
  })
  .strict();

const STREAM_POLL_MS = 200;

/**
 * Pipelines API: definitions, runs with the DAG state of every step, step logs (JSON, or a
 * server-sent event stream while the run is active), cancel and retry.
 */
export function registerPipelineRoutes(app: FastifyInstance, deps: PipelineRouteDeps): void {
  const { catalog, store, runner } = deps;
  // Open log streams end when the server shuts down instead of holding its close.
  const streams = new Set<() => void>();
  app.addHook('preClose', async () => {
    for (const stop of streams) stop();
  });

  app.get('/v1/pipelines', async () => ({ data: catalog.list().map(describePipeline) }));

  app.get<{ Params: { name: string } }>('/v1/pipelines/:name', async (request) =>
    describePipeline(catalog.get(request.params.name)),
  );

  app.post<{ Params: { name: string } }>('/v1/pipelines/:name/runs', async (request, reply) => {
    const body = parseInput(startBody, request.body ?? {});
    const run = await runner.startRun({ pipeline: request.params.name, params: body.params, source: 'api' });
    return reply.status(201).send(run);
  });

  app.get<{ Params: { name: string } }>('/v1/pipelines/:name/runs', async (request) => {
    catalog.get(request.params.name);
    const filter = parseInput(runsQuery, request.query, 'query');
    return { data: await store.listRuns({ ...filter, pipeline: request.params.name }) };
  });

  app.get('/v1/pipeline-runs', async (request) => {
    const filter = parseInput(runsQuery, request.query, 'query');
    return { data: await store.listRuns(filter) };
  });

  app.get<{ Params: { id: string } }>('/v1/pipeline-runs/:id', async (request) =>
    runDetail(store, catalog, request.params.id),
  );

  app.post<{ Params: { id: string } }>('/v1/pipeline-runs/:id/cancel', async (request) =>
    runner.cancel(request.params.id),
  );

  app.post<{ Params: { id: string } }>('/v1/pipeline-runs/:id/retry', async (request) => {
    const body = parseInput(retryBody, request.body ?? {});
    return runner.retry(request.params.id, body.fromStep);
  });

  app.get<{ Params: { id: string } }>('/v1/pipeline-runs/:id/logs', async (request, reply) => {
    const query = parseInput(logsQuery, request.query, 'query');
    const detail = await runDetail(store, catalog, request.params.id);
    const follow =
      query.follow === 'true' || query.follow === '1' || (request.headers.accept ?? '').includes('text/event-stream');
    if (!follow) {
      return {
        data: await store.listLogs(detail.run.id, {
          ...(query.step ? { step: query.step } : {}),
          ...(query.after ? { after: query.after } : {}),
        }),
      };
    }
    return streamLogs(request, reply, detail.run.id, query.step, query.after);
  });

  /** Server-sent events: `log` per stored line, `step` when a step changes state, `end` with the run. */
  async function streamLogs(
    request: FastifyRequest,
    reply: FastifyReply,
    runId: string,
    step: string | undefined,
    after: string | undefined,
  ): Promise<void> {
    reply.hijack();
    const out = reply.raw;
    out.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-request-id': String(request.id),
    });
    let closed = false;
    const stop = () => {
      closed = true;
    };
    streams.add(stop);
    request.raw.on('close', stop);
    const send = (event: string, data: unknown, id?: string) => {
      out.write(`${id ? `id: ${id}\n` : ''}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    let cursor = after;
    const seenSteps = new Map<string, string>();
    try {
      while (!closed) {
        const run = await store.getRun(runId);
        for (const state of await store.listSteps(runId)) {
          const key = `${state.status}:${state.attempts}:${state.progress ?? ''}`;
          if ((!step || state.name === step) && seenSteps.get(state.name) !== key) {
            seenSteps.set(state.name, key);
            send('step', state);
          }
        }
        const lines = await store.listLogs(runId, {
          ...(step ? { step } : {}),
          ...(cursor ? { after: cursor } : {}),
        });
        for (const line of lines) {
          send('log', line, line.id);
          cursor = line.id;
        }
        const active = run && (run.status === 'queued' || run.status === 'running');
        if (!active && lines.length === 0) {
          send('end', run);
          break;
        }
        if (lines.length === 0) await new Promise((resolve) => setTimeout(resolve, STREAM_POLL_MS));
      }
    } catch (error) {
      request.log.error({ err: error, runId }, 'log stream failed');
    } finally {
      streams.delete(stop);
      out.end();
    }
  }
}

const listQuery = z
  .object({
    pipeline: z.string().min(1).optional(),
    status: z.string().min(1).optional(),
    sensor: z.string().min(1).optional(),
    ...pageQuery({ fallback: 100, max: 1000 }),
  })
  .strict();

/** The sensors' decisions (pending, skipped and why, launched with their run), newest first. */
export function registerTriggerRoutes(app: FastifyInstance, triggers: TriggerStore): void {
  app.get('/v1/sensors/triggers', async (request) => {
    const records = await triggers.list(parseInput(listQuery, request.query, 'query'));
    return {
      data: records.map((trigger) => ({
        id: trigger.id,
        sensor: trigger.sensor,
        event_id: trigger.eventId,
        pipeline: trigger.pipeline,
        concurrency_key: trigger.concurrencyKey,
        status: trigger.status,
        reason: trigger.reason,
        run_id: trigger.runId,
        created_at: trigger.createdAt,
        updated_at: trigger.updatedAt,
        params: trigger.params,
      })),
    };
  });
}
