import { subscribe } from 'node:diagnostics_channel';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createBertha } from '../src/app.ts';
import { loadConfig } from '../src/config/index.ts';
import { isoNow, newId } from '../src/core/ids.ts';
import { type LoadShape, runLoad } from './lib/http-load.ts';
import { percentile, reportFigures, round } from './stats.ts';

// Feedback writes through the HTTP API on SQLite under 32 concurrent clients, against the
// floor of the same server answering GET /healthz to the same clients; and the time from an
// Alertmanager webhook's receipt to the retraining trigger row being written. The clients run
// on a worker thread so that their CPU is not charged to the server's event loop.
const CLIENTS = 32;
const SATURATE_REQUESTS = 8_000;
const PACED_RATE = 2_000;
const PACED_SECONDS = 8;
const WEBHOOKS = 200;

const dir = mkdtempSync(path.join(tmpdir(), 'bertha-bench-'));
const { config } = loadConfig(
  {
    dataDir: dir,
    port: 0,
    set: [
      'log.level=silent',
      'monitor.mode=prometheus',
      'monitor.gateway.token=bench',
      'server.host=127.0.0.1',
      'pipelines.runner=false',
    ],
  },
  {},
);
const bertha = await createBertha(config);
const url = new URL(await bertha.listen());
const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });

function request(method: string, pathname: string, body?: unknown, headers: Record<string, string> = {}) {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise<number>((resolve, reject) => {
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        method,
        path: pathname,
        agent,
        headers: payload
          ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...headers }
          : headers,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

const answerIds: string[] = [];
for (let i = 0; i < 200; i++) {
  const id = newId('ans');
  answerIds.push(id);
  const now = isoNow();
  await bertha.db.kysely
    .insertInto('answers')
    .values({
      id,
      conversation_id: null,
      model: 'bertha',
      model_version: `v${i % 4}`,
      messages_json: '[]',
      prompt: 'q',
      answer: 'a',
      params_json: '{}',
      sources_json: '[]',
      status: 'completed',
      error: null,
      prompt_tokens: 1,
      completion_tokens: 1,
      ttft_ms: 1,
      latency_ms: 1,
      compute_ms: 1,
      cost: 0,
      created_at: now,
      finished_at: now,
    })
    .execute();
}

const votes = (firstVote: number): LoadShape => ({ kind: 'votes', answerIds, firstVote, expectedStatus: 201 });
const healthzShape: LoadShape = {
  kind: 'fixed',
  request: { method: 'GET', path: '/healthz' },
  expectedStatus: 200,
};
const saturate = (shape: LoadShape) =>
  runLoad(url.href, CLIENTS, shape, { mode: 'saturate', total: SATURATE_REQUESTS });

// The clients time a request from its scheduled start, so they also see the time it waited in
// their own thread and in the kernel. The server's own share is timed here, from Node having
// parsed the request to the response being written, with the event loop's delay beside it.
const serverStarts = new WeakMap<object, number>();
let serverLatencies: number[] = [];
subscribe('http.server.request.start', (message) => {
  serverStarts.set((message as { response: object }).response, performance.now());
});
subscribe('http.server.response.finish', (message) => {
  const started = serverStarts.get((message as { response: object }).response);
  if (started !== undefined) serverLatencies.push(performance.now() - started);
});

async function paced(shape: LoadShape) {
  serverLatencies = [];
  const loopDelay = monitorEventLoopDelay({ resolution: 1 });
  loopDelay.enable();
  const client = await runLoad(url.href, CLIENTS, shape, { mode: 'paced', rate: PACED_RATE, seconds: PACED_SECONDS });
  loopDelay.disable();
  return {
    ...client,
    serverP50: percentile(serverLatencies, 50),
    serverP99: percentile(serverLatencies, 99),
    loopDelayP99: loopDelay.percentile(99) / 1e6,
    loopDelayMax: loopDelay.max / 1e6,
  };
}

await saturate(healthzShape);
const healthz = await saturate(healthzShape);
const writes = await saturate(votes(0));
const healthzPaced = await paced(healthzShape);
const writesPaced = await paced(votes(SATURATE_REQUESTS));

const webhookLatencies: number[] = [];
for (let i = 0; i < WEBHOOKS; i++) {
  const modelVersion = `bench-${i}`;
  const body = {
    version: '4',
    groupKey: `{}:{model_version="${modelVersion}"}`,
    status: 'firing',
    receiver: 'bertha-gateway',
    groupLabels: {},
    commonLabels: {},
    commonAnnotations: {},
    externalURL: 'http://127.0.0.1:9093',
    alerts: [
      {
        status: 'firing',
        labels: { alertname: 'BerthaThumbsDownOverUp', model_version: modelVersion },
        annotations: {},
        startsAt: isoNow(),
        endsAt: '0001-01-01T00:00:00Z',
        generatorURL: '',
        fingerprint: `fp${i}`,
      },
    ],
  };
  const t0 = performance.now();
  const status = await request('POST', '/events/alertmanager', body, { authorization: 'Bearer bench' });
  if (status !== 200) throw new Error(`webhook answered ${status}`);
  await bertha.bus.drain();
  webhookLatencies.push(performance.now() - t0);
  const trigger = await bertha.db.kysely
    .selectFrom('pipeline_triggers')
    .select('status')
    .where('concurrency_key', '=', `llm-retraining:${modelVersion}`)
    .executeTakeFirst();
  if (trigger?.status !== 'pending') throw new Error(`no trigger recorded for ${modelVersion}`);
}

agent.destroy();
await bertha.close();
rmSync(dir, { recursive: true, force: true });

console.log(
  `GET /healthz, ${CLIENTS} clients:          ${Math.round(healthz.perSecond)} req/s (p99 ${round(healthz.p99)} ms)`,
);
console.log(
  `POST /v1/feedback, ${CLIENTS} clients:     ${Math.round(writes.perSecond)} writes/s (p99 ${round(writes.p99)} ms)`,
);
console.log(`ratio feedback/healthz:             ${round(writes.perSecond / healthz.perSecond)}`);
console.log(
  `paced at ${PACED_RATE}/s: healthz p99 ${round(healthzPaced.p99)} ms; feedback p50 ${round(writesPaced.p50)} ms, p99 ${round(writesPaced.p99)} ms (achieved ${Math.round(writesPaced.perSecond)}/s)`,
);
console.log(
  `  in the server: healthz p99 ${round(healthzPaced.serverP99)} ms; feedback p50 ${round(writesPaced.serverP50)} ms, p99 ${round(writesPaced.serverP99)} ms; event-loop delay p99 ${round(writesPaced.loopDelayP99)} ms, max ${round(writesPaced.loopDelayMax)} ms`,
);
console.log(
  `webhook receipt -> trigger recorded: p50 ${round(percentile(webhookLatencies, 50))} ms, p99 ${round(percentile(webhookLatencies, 99))} ms`,
);
reportFigures({
  feedback_writes_per_s: Math.round(writes.perSecond),
  feedback_p99_ms: round(writesPaced.p99),
  webhook_to_trigger_ms: round(percentile(webhookLatencies, 99)),
  feedback_saturated_p99_ms: round(writes.p99),
  feedback_paced_rate_per_s: Math.round(writesPaced.perSecond),
  healthz_per_s: Math.round(healthz.perSecond),
  feedback_ratio_vs_healthz: round(writes.perSecond / healthz.perSecond),
  healthz_paced_p99_ms: round(healthzPaced.p99),
  feedback_server_p50_ms: round(writesPaced.serverP50),
  feedback_server_p99_ms: round(writesPaced.serverP99),
  healthz_server_p99_ms: round(healthzPaced.serverP99),
  event_loop_delay_p99_ms: round(writesPaced.loopDelayP99),
  event_loop_delay_max_ms: round(writesPaced.loopDelayMax),
  webhook_to_trigger_p50_ms: round(percentile(webhookLatencies, 50)),
});
