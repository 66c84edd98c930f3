import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect, test } from 'vitest';
import type { BerthaEvent } from '../../src/events/index.ts';
import { startBertha } from '../helpers/bertha.ts';

/** A notification as Alertmanager 0.25 sends it (webhook payload version 4). */
function notification(status: 'firing' | 'resolved', alerts: { fingerprint: string; modelVersion?: string }[]) {
  return {
    version: '4',
    groupKey: '{}:{alertname="BerthaThumbsDownOverUp", model_version="v1"}',
    truncatedAlerts: 0,
    status,
    receiver: 'bertha-gateway',
    groupLabels: { alertname: 'BerthaThumbsDownOverUp' },
    commonLabels: { alertname: 'BerthaThumbsDownOverUp', severity: 'warning' },
    commonAnnotations: {},
    externalURL: 'http://127.0.0.1:9093',
    alerts: alerts.map((alert) => ({
      status,
      labels: {
        alertname: 'BerthaThumbsDownOverUp',
        severity: 'warning',
        ...(alert.modelVersion ? { model_version: alert.modelVersion } : {}),
      },
      annotations: { summary: 'More thumbs-down than thumbs-up' },
      startsAt: '2026-11-25T01:00:00.000Z',
      endsAt: status === 'resolved' ? '2026-11-25T01:05:00.000Z' : '0001-01-01T00:00:00Z',
      generatorURL: 'http://127.0.0.1:9090/graph',
      fingerprint: alert.fingerprint,
    })),
  };
}

async function deliver(url: string, token: string | undefined, body: unknown) {
  const response = await fetch(`${url}/events/alertmanager`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

test('a firing alert becomes one model.degraded event and one retraining trigger, however often it is delivered', async () => {
  const bertha = await startBertha(['monitor.gateway.token=s3cret']);
  const url = bertha.url as string;
  const firing = notification('firing', [{ fingerprint: 'f1', modelVersion: 'v1' }]);
  const first = await deliver(url, 's3cret', firing);
  expect(first.status).toBe(200);
  expect(first.body).toMatchObject({ received: 1, published: 1, duplicates: 0 });
  const again = await Promise.all([1, 2, 3].map(() => deliver(url, 's3cret', firing)));
  for (const redelivery of again) expect(redelivery.body).toMatchObject({ published: 0, duplicates: 1 });
  await bertha.bus.drain();

  const degraded = await bertha.bus.list({ type: 'model.degraded' });
  expect(degraded).toHaveLength(1);
  expect(degraded[0]).toMatchObject({
    source: 'alertmanager',
    subject: 'v1',
    payload: { model_version: 'v1', alertname: 'BerthaThumbsDownOverUp', status: 'firing', fingerprint: 'f1' },
  });
  const triggers = await bertha.db.kysely.selectFrom('pipeline_triggers').selectAll().execute();
  expect(triggers).toHaveLength(1);
  expect(triggers[0]).toMatchObject({
    pipeline: 'llm-retraining',
    // The runner may already have claimed it: llm-retraining is a pipeline it runs.
    status: expect.stringMatching(/^(pending|launched)$/),
    concurrency_key: 'llm-retraining:v1',
    event_id: (degraded[0] as BerthaEvent).id,
  });
  expect(JSON.parse(triggers[0]?.params_json ?? '')).toEqual({ model_version: 'v1' });
  const listed = (await (await fetch(`${url}/v1/sensors/triggers?pipeline=llm-retraining`)).json()) as {
    data: { params: unknown }[];
  };
  expect(listed.data[0]?.params).toEqual({ model_version: 'v1' });

  const resolved = await deliver(url, 's3cret', notification('resolved', [{ fingerprint: 'f1', modelVersion: 'v1' }]));
  expect(resolved.body).toMatchObject({ published: 1 });
  const recovered = await bertha.bus.list({ type: 'model.recovered' });
  expect(recovered[0]).toMatchObject({ subject: 'v1', payload: { status: 'resolved' } });
});

test('alerts without a model version are recorded as alert events and trigger nothing', async () => {
  const bertha = await startBertha(['monitor.gateway.token=s3cret']);
  const result = await deliver(bertha.url as string, 's3cret', notification('firing', [{ fingerprint: 'f2' }]));
  expect(result.body).toMatchObject({ published: 1 });
  await bertha.bus.drain();
  expect(await bertha.bus.list({ type: 'alert.firing' })).toHaveLength(1);
  expect(await bertha.db.kysely.selectFrom('pipeline_triggers').selectAll().execute()).toHaveLength(0);
});

test('a missing or wrong bearer token is 401 and records nothing', async () => {
  const bertha = await startBertha();
  const token = readFileSync(path.join(bertha.config.dataDir, 'gateway-token'), 'utf8').trim();
  const body = notification('firing', [{ fingerprint: 'f1', modelVersion: 'v1' }]);
  expect((await deliver(bertha.url as string, undefined, body)).status).toBe(401);
  const wrong = await deliver(bertha.url as string, `${token}x`, body);
  expect(wrong.status).toBe(401);
  expect(wrong.body).toMatchObject({ error: { code: 'unauthorized' } });
  expect(await bertha.bus.list()).toHaveLength(0);
  expect((await deliver(bertha.url as string, token, body)).status).toBe(200);
});

test('malformed payloads are 400, and the gateway keeps serving', async () => {
  const bertha = await startBertha(['monitor.gateway.token=s3cret']);
  const url = bertha.url as string;
  const valid = notification('firing', [{ fingerprint: 'f1', modelVersion: 'v1' }]);
  for (const body of [
    '{"version":',
    { ...valid, version: '3' },
    { ...valid, alerts: [{ status: 'firing' }] },
    { ...valid, status: 'exploded' },
    [],
  ]) {
    const result = await deliver(url, 's3cret', body);
    expect(result.status, JSON.stringify(body)).toBe(400);
    expect(result.body).toMatchObject({ error: { code: 'invalid_request' } });
  }
  expect(await bertha.bus.list()).toHaveLength(0);
  expect((await deliver(url, 's3cret', valid)).status).toBe(200);
});
