import { createServer } from 'node:http';
import { describe, expect, onTestFinished, test } from 'vitest';
import { createTrackingClient, TrackingApiError } from '../../src/tracking/client.ts';
import { dbFactories } from '../helpers/databases.ts';
import { startTrackingServer } from './harness.ts';

const [sqlite] = dbFactories as [(typeof dbFactories)[number]];

/** A real HTTP front that answers 503 to the first `failures` requests, then forwards to `target`. */
async function flakyProxy(target: string, failures: number): Promise<{ url: string; requests: () => number }> {
  let seen = 0;
  const server = createServer(async (request, response) => {
    seen++;
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    if (seen <= failures) {
      response
        .writeHead(503, { 'content-type': 'application/json' })
        .end('{"error_code":"TEMPORARILY_UNAVAILABLE","message":"try again"}');
      return;
    }
    const body = Buffer.concat(chunks);
    const answer = await fetch(`${target}${request.url}`, {
      method: request.method ?? 'GET',
      headers: request.headers['content-type'] ? { 'content-type': request.headers['content-type'] } : {},
      ...(body.length > 0 ? { body } : {}),
    });
    response.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/json' });
    response.end(Buffer.from(await answer.arrayBuffer()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const address = server.address() as { port: number };
  return { url: `http://127.0.0.1:${address.port}`, requests: () => seen };
}

describe('tracking client', () => {
  test('a pipeline step logs a run, batched metrics, params, an artifact and a model version', async () => {
    const server = await startTrackingServer(sqlite);
    const client = createTrackingClient({ uri: server.url });
    const experimentId = await client.getOrCreateExperiment('llm-retraining');
    expect(await client.getOrCreateExperiment('llm-retraining')).toBe(experimentId);
    const run = await client.createRun({
      experimentId,
      runName: 'fine-tune',
      tags: { 'bertha.pipeline': 'llm-retraining' },
    });
    await client.logParams(run.info.run_id, { lr: 0.0001, epochs: 3, lora: true });
    for (let step = 0; step < 2500; step++) await client.logMetric(run.info.run_id, 'loss', 1 / (step + 1), { step });
    await client.logMetrics(run.info.run_id, { gold_accuracy: 0.81, hallucination_rate: Number.NaN }, { step: 2500 });
    await client.logArtifact(run.info.run_id, 'eval/report.json', '{"gold":0.81}');
    const finished = await client.endRun(run.info.run_id);
    expect(finished.status).toBe('FINISHED');

    expect(await client.getMetricHistory(run.info.run_id, 'loss')).toHaveLength(2500);
    const stored = await client.getRun(run.info.run_id);
    const metrics = Object.fromEntries(stored.data.metrics.map((metric) => [metric.key, metric.value]));
    expect(metrics).toMatchObject({ gold_accuracy: 0.81, hallucination_rate: 'NaN', loss: 1 / 2500 });
    expect(stored.data.params).toHaveLength(3);
    expect((await client.downloadArtifact(run.info.run_id, 'eval/report.json')).toString()).toBe('{"gold":0.81}');

    const { runs } = await client.searchRuns({ experimentIds: [experimentId], filter: 'metrics.gold_accuracy > 0.8' });
    expect(runs.map((found) => found.info.run_id)).toEqual([run.info.run_id]);

    await client.createRegisteredModel('bertha-chat');
    const version = await client.createModelVersion({
      name: 'bertha-chat',
      source: `${run.info.artifact_uri}/model`,
      runId: run.info.run_id,
    });
    await client.setAlias('bertha-chat', 'challenger', version.version);
    expect((await client.getVersionByAlias('bertha-chat', 'challenger'))?.version).toBe(version.version);
    expect(await client.getVersionByAlias('bertha-chat', 'champion')).toBeUndefined();
    const error = await client.getRun('0123456789abcdef0123456789abcdef').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(TrackingApiError);
    expect((error as TrackingApiError).mlflowCode).toBe('RESOURCE_DOES_NOT_EXIST');
  });

  test('5xx answers are retried with backoff until the server answers', async () => {
    const server = await startTrackingServer(sqlite);
    const proxy = await flakyProxy(server.url, 3);
    const client = createTrackingClient({ uri: proxy.url, backoffMs: 5, maxAttempts: 5 });
    expect(await client.getOrCreateExperiment('flaky')).toMatch(/^\d+$/);
    expect(proxy.requests()).toBeGreaterThanOrEqual(4);

    const failing = await flakyProxy(server.url, 100);
    const gaveUp = createTrackingClient({ uri: failing.url, backoffMs: 1, maxAttempts: 3 });
    await expect(gaveUp.getOrCreateExperiment('never')).rejects.toThrow(/503/);
    expect(failing.requests()).toBe(3);
  });

  test('the token is sent as a bearer token', async () => {
    let authorization: string | undefined;
    const server = createServer((request, response) => {
      authorization = request.headers.authorization;
      response.writeHead(200, { 'content-type': 'application/json' }).end('{"experiment":{"experiment_id":"7"}}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const client = createTrackingClient({
      uri: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
      token: 's3cret',
    });
    expect(await client.getOrCreateExperiment('remote')).toBe('7');
    expect(authorization).toBe('Bearer s3cret');
  });
});
