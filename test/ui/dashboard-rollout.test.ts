import { beforeAll, describe, expect, test } from 'vitest';
import type { Bertha } from '../../src/app.ts';
import { createLogger } from '../../src/core/logger.ts';
import { createFeedbackStore } from '../../src/monitor/index.ts';
import { createRolloutController, createRolloutStore } from '../../src/rollout/index.ts';
import { insertAnswer } from '../helpers/answers.ts';
import { startBertha } from '../helpers/bertha-in-process.ts';
import { chromiumAvailable, ensureWebBuilt, launchBrowser, openPage, screenshot } from '../helpers/browser.ts';

const hasChromium = chromiumAvailable();
beforeAll(() => ensureWebBuilt(), 180_000);

/** Answers of a version, each voted on. */
async function votes(bertha: Bertha, version: string, up: number, down: number): Promise<void> {
  const feedback = createFeedbackStore(bertha.db);
  for (let i = 0; i < up + down; i++) {
    const answer = await insertAnswer(bertha.db, { modelVersion: version });
    await feedback.record({ responseId: answer, userId: `u${i}`, rating: i < up ? 'up' : 'down' });
  }
}

describe.skipIf(!hasChromium)('canary rollouts on the dashboard in Chromium', () => {
  test('the running canary shows both arms and its share; a step and a rollback appear live with their reasons', async () => {
    // The server's own rollout loop is off: only the test's controller decides, so no `wait` can slip in.
    const bertha = await startBertha(['pipelines.runner=false']);
    // The controller `bertha up` runs, on the server's database and bus.
    const store = createRolloutStore(bertha.db);
    const controller = createRolloutController({
      store,
      bus: bertha.bus,
      logger: createLogger('silent'),
      model: 'bertha-chat',
      promote: async () => {},
      steps: [0.1, 0.5],
      policy: { minVotes: 4, minAnswers: 4, confidence: 0.9, downRateTolerance: 0.3, errorRateTolerance: 0.3 },
    });
    const rollout = await controller.start('bertha-chat/1', 'bertha-chat/2', 'gate promoted bertha-chat/2');
    await votes(bertha, 'bertha-chat/1', 3, 1);
    await votes(bertha, 'bertha-chat/2', 2, 2);

    const browser = await launchBrowser();
    const { page, errors } = await openPage(browser, `${bertha.url}/#/dashboard`);
    await page.locator('[data-live="live"]').waitFor();
    const card = page.locator(`#rollouts [data-rollout="${rollout.id}"]`);
    await card.waitFor();
    expect(await card.locator('h3').textContent()).toMatch(
      /bertha-chat\/2 vs bertha-chat\/1 running challenger share 10%/,
    );
    expect(await card.locator('tr[data-arm="champion"] td').allTextContents()).toEqual([
      'bertha-chat/1',
      '4',
      '0',
      '0%',
      '3',
      '1',
      '25%',
    ]);
    expect(await card.locator('tr[data-arm="challenger"] td').allTextContents()).toEqual([
      'bertha-chat/2',
      '4',
      '0',
      '0%',
      '2',
      '2',
      '50%',
    ]);
    expect(await card.locator('.decision').count()).toBe(1);
    expect(await card.locator('.decision[data-kind="start"]').textContent()).toContain('gate promoted bertha-chat/2');

    // Enough votes, the challenger no worse: the controller steps up and publishes rollout.changed.
    await votes(bertha, 'bertha-chat/1', 6, 1);
    await votes(bertha, 'bertha-chat/2', 8, 0);
    expect((await controller.tick())?.verdict).toBe('advance');
    const step = card.locator('.decision[data-kind="step"]');
    await step.waitFor();
    expect(await step.locator('.decision-share').textContent()).toBe('10% → 50%');
    expect(await step.locator('.decision-reason').textContent()).toMatch(
      /bertha-chat\/2 is no worse than bertha-chat\/1/,
    );
    expect(await step.locator('.decision-evidence').textContent()).toContain(
      'challenger bertha-chat/2: 12 answers, 0 failed, 10 up, 2 down',
    );
    await card.getByText('challenger share 50%').waitFor();
    await screenshot(page, 'dashboard-rollout');

    await controller.rollback('operators saw complaints');
    const rollback = card.locator('.decision[data-kind="rollback"]');
    await rollback.waitFor();
    expect(await rollback.locator('.decision-reason').textContent()).toBe('operators saw complaints');
    expect(await rollback.locator('.decision-evidence').textContent()).toContain('by hand');
    await card.locator('.badge.state-rolled_back', { hasText: 'rolled back' }).waitFor();
    expect(await card.locator('.decision').evaluateAll((items) => items.map((item) => item.dataset.kind))).toEqual([
      'start',
      'step',
      'rollback',
    ]);
    expect(errors).toEqual([]);
  });

  test('a server without the rollout API: the panel says so', async () => {
    const bertha = await startBertha();
    const browser = await launchBrowser();
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.route('**/v1/rollouts?*', (route) =>
      route.fulfill({
        status: 404,
        contentType: 'application/json',
        body: JSON.stringify({ error: { code: 'not_found', message: 'no route for GET /v1/rollouts' } }),
      }),
    );
    await page.goto(`${bertha.url}/#/dashboard`);
    await page.locator('#rollouts').getByText('Not available in this build.').waitFor();
  });
});
