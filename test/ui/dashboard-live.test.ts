import { beforeAll, describe, expect, test } from 'vitest';
import { startBertha } from '../helpers/bertha-in-process.ts';
import { chromiumAvailable, ensureWebBuilt, launchBrowser, openPage, screenshot } from '../helpers/browser.ts';

const hasChromium = chromiumAvailable();
beforeAll(() => ensureWebBuilt(), 180_000);

describe.skipIf(!hasChromium)('dashboard in Chromium', () => {
  test('events published while the dashboard is open appear without a reload, and a degraded model raises an alert', async () => {
    const bertha = await startBertha();
    await bertha.bus.publish({
      type: 'object.created',
      source: 'test',
      subject: 'docs/before.md',
      payload: { key: 'docs/before.md', size: 12 },
    });
    const browser = await launchBrowser();
    const { page, errors } = await openPage(browser, `${bertha.url}/#/dashboard`);
    await page.locator('.event[data-type="object.created"]').waitFor();
    await page.locator('[data-live="live"]').waitFor();

    await bertha.bus.publish({
      type: 'model.degraded',
      source: 'watcher',
      subject: 'bertha-chat/3',
      payload: { model_version: 'bertha-chat/3', alertname: 'ThumbsDownRateHigh', rate: 0.42 },
    });
    const alert = page.locator('.alert-banner');
    await alert.waitFor();
    expect(await alert.textContent()).toContain('bertha-chat/3');
    expect(await alert.textContent()).toContain('ThumbsDownRateHigh');
    expect(await page.locator('.event').count()).toBe(2);
    await screenshot(page, 'dashboard-live-alert');
    expect(errors).toEqual([]);
  });
});
