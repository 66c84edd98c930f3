import http from 'node:http';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { percentile } from '../stats.ts';

/**
 * An HTTP load generator on its own thread, so the clients' CPU (building requests, parsing
 * responses) is not charged to the server's event loop, as it would not be in production.
 */
export interface LoadRequest {
  method: 'GET' | 'POST';
  path: string;
  headers?: Record<string, string>;
  body?: unknown;
}

/** How each request is built: a fixed one, or votes cycling over answers by distinct users. */
export type LoadShape =
  | { kind: 'fixed'; request: LoadRequest; expectedStatus: number }
  | { kind: 'votes'; answerIds: string[]; firstVote: number; expectedStatus: number };

export type LoadPlan =
  /** Closed loop: `clients` workers issue `total` requests back to back. */
  | { mode: 'saturate'; total: number }
  /** Open loop: the clients together offer `rate` requests/s; latency counts from the scheduled start. */
  | { mode: 'paced'; rate: number; seconds: number };

export interface LoadResult {
  requests: number;
  perSecond: number;
  p50: number;
  p99: number;
}

interface LoadJob {
  url: string;
  clients: number;
  shape: LoadShape;
  plan: LoadPlan;
}

export function runLoad(url: string, clients: number, shape: LoadShape, plan: LoadPlan): Promise<LoadResult> {
  const job: LoadJob = { url, clients, shape, plan };
  // Node 20 does not carry `--import tsx` into workers, so the worker registers tsx itself.
  const bootstrap = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(import.meta.url)}); });`;
  const worker = new Worker(bootstrap, { eval: true, workerData: job });
  return new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`load worker exited (${code}) before reporting`)));
  });
}

function requestFor(shape: LoadShape, n: number): LoadRequest {
  if (shape.kind === 'fixed') return shape.request;
  const vote = shape.firstVote + n;
  return {
    method: 'POST',
    path: '/v1/feedback',
    headers: { 'x-bertha-user': `user-${vote}` },
    body: { response_id: shape.answerIds[vote % shape.answerIds.length], rating: vote % 3 === 0 ? 'down' : 'up' },
  };
}

async function generate(job: LoadJob): Promise<LoadResult> {
  const url = new URL(job.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: job.clients });

  function send(request: LoadRequest): Promise<number> {
    const payload = request.body === undefined ? undefined : JSON.stringify(request.body);
    const headers = payload
      ? { 'content-type': 'application/json', 'content-length': `${Buffer.byteLength(payload)}`, ...request.headers }
      : request.headers;
    return new Promise((resolve, reject) => {
      const req = http.request(
        { host: url.hostname, port: url.port, method: request.method, path: request.path, agent, headers },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  async function issue(n: number): Promise<void> {
    const status = await send(requestFor(job.shape, n));
    if (status !== job.shape.expectedStatus) throw new Error(`unexpected status ${status}`);
  }

  const latencies: number[] = [];
  const start = performance.now();
  const { plan } = job;
  if (plan.mode === 'saturate') {
    let issued = 0;
    await Promise.all(
      Array.from({ length: job.clients }, async () => {
        while (issued < plan.total) {
          const t0 = performance.now();
          await issue(issued++);
          latencies.push(performance.now() - t0);
        }
      }),
    );
  } else {
    const perClientGapMs = (1000 * job.clients) / plan.rate;
    const perClient = Math.floor((plan.rate * plan.seconds) / job.clients);
    await Promise.all(
      Array.from({ length: job.clients }, async (_, client) => {
        for (let i = 0; i < perClient; i++) {
          const due = start + (client * perClientGapMs) / job.clients + i * perClientGapMs;
          const wait = due - performance.now();
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
          await issue(i * job.clients + client);
          latencies.push(performance.now() - due);
        }
      }),
    );
  }
  agent.destroy();
  return {
    requests: latencies.length,
    perSecond: latencies.length / ((performance.now() - start) / 1000),
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  };
}

if (!isMainThread) {
  parentPort?.postMessage(await generate(workerData as LoadJob));
}
