import { describe, expect, test } from 'vitest';
import type { Bertha } from '../../src/app.ts';
import { insertAnswer } from '../helpers/answers.ts';
import { startBertha } from '../helpers/bertha.ts';
import { binariesAvailable } from '../helpers/binaries.ts';
import { histogramOf, parseExposition } from '../helpers/metrics.ts';
import { fastPrometheusSettings, monitoringPorts, startMonitoringStack } from '../helpers/monitoring.ts';
import { waitFor } from '../helpers/processes.ts';

async function vote(bertha: Bertha, responseId: string, user: string, rating: 'up' | 'down'): Promise<void> {
  const response = await fetch(`${bertha.url}/v1/feedback`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-bertha-user': user },
    body: JSON.stringify({ response_id: responseId, rating }),
  });
  expect(response.status).toBe(201);
}

async function retrainingTrigger(bertha: Bertha, modelVersion: string) {
  const rows = await bertha.db.kysely
    .selectFrom('pipeline_triggers')
    .selectAll()
    .where('pipeline', '=', 'llm-retraining')
    .where('concurrency_key', '=', `llm-retraining:${modelVersion}`)
    .execute();
  // The runner may already have claimed it: llm-retraining is a pipeline it runs.
  return rows.find((row) => row.status === 'pending' || row.status === 'launched');
}

async function eventFor(bertha: Bertha, type: string, source: string, modelVersion: string) {
  const events = await bertha.bus.list({ type, subject: modelVersion });
  return events.find((event) => event.source === source);
}

const binaries = binariesAvailable('prometheus', 'prometheus-alertmanager');

describe.skipIf(!binaries)('alerting with real Prometheus and Alertmanager', () => {
  test('thumbs-down through the API fires an alert that reaches the gateway and records a retraining trigger; thumbs-up resolves it', async () => {
    const started = Date.now();
    const ports = await monitoringPorts();
    const bertha = await startBertha(fastPrometheusSettings(ports));
    const { logs } = await startMonitoringStack(bertha, ports);

    const answers = [
      await insertAnswer(bertha.db, { modelVersion: 'v-e2e' }),
      await insertAnswer(bertha.db, { modelVersion: 'v-e2e' }),
    ];
    await vote(bertha, answers[0] as string, 'ada', 'down');
    await vote(bertha, answers[1] as string, 'bob', 'down');

    const degraded = await waitFor(() => eventFor(bertha, 'model.degraded', 'alertmanager', 'v-e2e'), {
      timeoutMs: 60_000,
      what: 'model.degraded from Alertmanager',
      describe: logs,
    });
    expect(degraded.payload).toMatchObject({
      model_version: 'v-e2e',
      alertname: 'BerthaThumbsDownOverUp',
      status: 'firing',
      labels: { severity: 'warning', component: 'bertha' },
    });
    const trigger = await waitFor(() => retrainingTrigger(bertha, 'v-e2e'), {
      timeoutMs: 10_000,
      what: 'the retraining trigger',
    });
    expect(trigger.event_id).toBe(degraded.id);
    expect(JSON.parse(trigger.params_json)).toEqual({ model_version: 'v-e2e' });
    // The gateway timed the hop from the vote that tipped the rule to the stored alert, once.
    const feedbackToAlert = histogramOf(
      parseExposition(await (await fetch(`${bertha.url}/metrics`)).text()),
      'bertha_loop_feedback_to_alert_seconds',
      { model_version: 'v-e2e' },
    );
    expect(feedbackToAlert.count).toBe(1);
    expect(feedbackToAlert.sum).toBeGreaterThan(0);
    expect(feedbackToAlert.sum).toBeLessThan((Date.now() - started) / 1000);

    for (const user of ['cy', 'dee', 'eve']) await vote(bertha, answers[0] as string, user, 'up');
    const recovered = await waitFor(() => eventFor(bertha, 'model.recovered', 'alertmanager', 'v-e2e'), {
      timeoutMs: 60_000,
      what: 'the resolved notification from Alertmanager',
      describe: logs,
    });
    expect(recovered.payload).toMatchObject({
      status: 'resolved',
      fingerprint: (degraded.payload as { fingerprint: string }).fingerprint,
    });
    // Alertmanager's repeated notifications for the same alert were de-duplicated: one retraining trigger.
    const triggers = await bertha.db.kysely
      .selectFrom('pipeline_triggers')
      .selectAll()
      .where('pipeline', '=', 'llm-retraining')
      .execute();
    expect(triggers.filter((row) => row.status === 'pending' || row.status === 'launched')).toHaveLength(1);
  }, 180_000);
});

test('with no Prometheus, the embedded watcher closes the same loop: thumbs-down to a retraining trigger and back', async () => {
  const bertha = await startBertha(['monitor.rules.downOverUp.for=0s', 'monitor.watcherIntervalMs=100']);
  const answer = await insertAnswer(bertha.db, { modelVersion: 'v-local' });
  await vote(bertha, answer, 'ada', 'down');
  const degraded = await waitFor(() => eventFor(bertha, 'model.degraded', 'watcher', 'v-local'), {
    timeoutMs: 20_000,
    what: 'model.degraded from the watcher',
  });
  const trigger = await waitFor(() => retrainingTrigger(bertha, 'v-local'), { timeoutMs: 10_000, what: 'the trigger' });
  expect(trigger.event_id).toBe(degraded.id);
  await vote(bertha, answer, 'bob', 'up');
  await vote(bertha, answer, 'cy', 'up');
  await waitFor(() => eventFor(bertha, 'model.recovered', 'watcher', 'v-local'), {
    timeoutMs: 20_000,
    what: 'model.recovered from the watcher',
  });
});
