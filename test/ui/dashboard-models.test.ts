import { beforeAll, describe, expect, test } from 'vitest';
import { startBertha } from '../helpers/bertha-in-process.ts';
import { chromiumAvailable, ensureWebBuilt, launchBrowser, openPage, screenshot } from '../helpers/browser.ts';

const hasChromium = chromiumAvailable();
beforeAll(() => ensureWebBuilt(), 180_000);

describe.skipIf(!hasChromium)('model registry on the dashboard in Chromium', () => {
  test('versions, aliases, metrics side by side and lineage come from the MLflow API; an alias move shows live', async () => {
    const bertha = await startBertha();
    const mlflow = async (path: string, body: unknown) => {
      const response = await fetch(`${bertha.url}/api/2.0/mlflow/${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(response.status, `${path}: ${await response.clone().text()}`).toBe(200);
      return (await response.json()) as Record<string, Record<string, unknown>>;
    };
    await mlflow('registered-models/create', { name: 'bertha-chat' });
    for (const [index, metrics] of [
      { exact_match: 0.41, hallucination_rate: 0.2 },
      { exact_match: 0.57, hallucination_rate: 0.12 },
    ].entries()) {
      const { run } = await mlflow('runs/create', { experiment_id: '0', run_name: `retrain-${index + 1}` });
      const runId = String((run as { info: { run_id: string } }).info.run_id);
      for (const [key, value] of Object.entries(metrics)) {
        await mlflow('runs/log-metric', { run_id: runId, key, value, timestamp: Date.now(), step: 0 });
      }
      await mlflow('runs/log-parameter', { run_id: runId, key: 'base_model', value: 'tiny-llama.gguf' });
      if (index === 1) await mlflow('runs/log-parameter', { run_id: runId, key: 'parent_version', value: '1' });
      await mlflow('model-versions/create', { name: 'bertha-chat', source: `runs:/${runId}/model`, run_id: runId });
    }
    await mlflow('registered-models/alias', { name: 'bertha-chat', alias: 'champion', version: '1' });

    const browser = await launchBrowser();
    const { page, errors } = await openPage(browser, `${bertha.url}/#/dashboard`);
    const model = page.locator('#models [data-model="bertha-chat"]');
    await model.locator('tr[data-version="2"]').waitFor();
    await model.getByText('@champion → v1').waitFor();
    const metrics = model.locator('table.metrics');
    expect(await metrics.locator('thead th').allTextContents()).toEqual(['metric', 'v2', 'v1']);
    expect(await metrics.locator('tr', { hasText: 'exact_match' }).locator('td').allTextContents()).toEqual([
      '0.5700',
      '0.4100',
    ]);
    // Lower is better for hallucination_rate, higher for exact_match: v2 wins both.
    expect(await metrics.locator('td.best').allTextContents()).toEqual(['0.5700', '0.1200']);
    await model.locator('tr[data-version="2"] summary').click();
    await model.locator('tr[data-version="2"]').getByText('parent_version').waitFor();

    // Moving the alias publishes model.alias_changed: the panel reloads without a page reload.
    await mlflow('registered-models/alias', { name: 'bertha-chat', alias: 'champion', version: '2' });
    await model.getByText('@champion → v2').waitFor();
    await screenshot(page, 'dashboard-models');
    expect(errors).toEqual([]);
  });
});
