import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createBertha } from '../src/app.ts';
import { loadConfig } from '../src/config/index.ts';
import { isoNow, newId } from '../src/core/ids.ts';
import { percentile, reportFigures, round } from './stats.ts';

// Feedback writes through the HTTP API on SQLite under 32 concurrent clients, against the
// floor of the same server answering GET /healthz to the same clients; and the time from an
// Alertmanager webhook's receipt to the retraining trigger row being written.
const CLIENTS = 32;
const SATURATE_REQUESTS = 8_000;
const PACED_RATE = 2_000;
const PACED_SECONDS = 4;
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

let voteSeq = 0;
function nextVote(): Promise<number> {
  const n = voteSeq++;
  return request(
    'POST',
    '/v1/feedback',
    { response_id: answerIds[n % answerIds.length], rating: n % 3 === 0 ? 'down' : 'up' },
    { 'x-bertha-user': `user-${n}` },
  );
}

/** Closed loop: CLIENTS workers issue `total` requests back to back. */
async function saturate(total: number, issue: () => Promise<number>, expected: number) {
  let issued = 0;
  const latencies: number[] = [];
  const start = performance.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (issued < total) {
        issued++;
        const t0 = performance.now();
        const status = await issue();
        latencies.push(performance.now() - t0);
        if (status !== expected) throw new Error(`unexpected status ${status}`);
      }
    }),
  );
  return { perSecond: total / ((performance.now() - start) / 1000), p99: percentile(latencies, 99) };
}

/** Open loop: CLIENTS workers together offer `rate` requests/s; latency counts from the scheduled start. */
async function paced(rate: number, seconds: number, issue: () => Promise<number>) {
  const perClientGapMs = (1000 * CLIENTS) / rate;
  const perClient = Math.floor((rate * seconds) / CLIENTS);
  const latencies: number[] = [];
  const start = performance.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, client) => {
      for (let i = 0; i < perClient; i++) {
        const due = start + (client * perClientGapMs) / CLIENTS + i * perClientGapMs;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        await issue();
        latencies.push(performance.now() - due);
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  return { achieved: latencies.length / elapsed, p99: percentile(latencies, 99), p50: percentile(latencies, 50) };
}

await saturate(1_000, () => request('GET', '/healthz'), 200);
const healthz = await saturate(SATURATE_REQUESTS, () => request('GET', '/healthz'), 200);
const writes = await saturate(SATURATE_REQUESTS, nextVote, 201);
const healthzPaced = await paced(PACED_RATE, PACED_SECONDS, () => request('GET', '/healthz'));
const writesPaced = await paced(PACED_RATE, PACED_SECONDS, nextVote);

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
  `paced at ${PACED_RATE}/s: healthz p99 ${round(healthzPaced.p99)} ms; feedback p50 ${round(writesPaced.p50)} ms, p99 ${round(writesPaced.p99)} ms (achieved ${Math.round(writesPaced.achieved)}/s)`,
);
console.log(
  `webhook receipt -> trigger recorded: p50 ${round(percentile(webhookLatencies, 50))} ms, p99 ${round(percentile(webhookLatencies, 99))} ms`,
);
reportFigures({
  feedback_writes_per_s: Math.round(writes.perSecond),
  feedback_p99_ms: round(writesPaced.p99),
  webhook_to_trigger_ms: round(percentile(webhookLatencies, 99)),
  feedback_saturated_p99_ms: round(writes.p99),
  feedback_paced_rate_per_s: Math.round(writesPaced.achieved),
  healthz_per_s: Math.round(healthz.perSecond),
  feedback_ratio_vs_healthz: round(writes.perSecond / healthz.perSecond),
  healthz_paced_p99_ms: round(healthzPaced.p99),
  webhook_to_trigger_p50_ms: round(percentile(webhookLatencies, 50)),
});
