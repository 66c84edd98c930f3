import { beforeAll, describe, expect, test, vi } from 'vitest';
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

describe.skipIf(!hasChromium)('dashboard live stream in Chromium', () => {
  test('events published in the same millisecond all appear without a reload, once each', async () => {
    const bertha = await startBertha();
    const browser = await launchBrowser();
    const { page, errors } = await openPage(browser, `${bertha.url}/#/dashboard`);
    await page.locator('[data-live="live"]').waitFor();
    await page.getByText('No events yet.').waitFor();

    const subjects = ['docs/same-ms-a.md', 'docs/same-ms-b.md', 'docs/same-ms-c.md'];
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date());
    try {
      const published = await Promise.all(
        subjects.map((subject) =>
          bertha.bus.publish({ type: 'object.created', source: 'test', subject, payload: { key: subject } }),
        ),
      );
      expect(new Set(published.map((result) => result.event.createdAt)).size).toBe(1);
    } finally {
      vi.useRealTimers();
    }
    for (const subject of subjects) await page.locator('.event', { hasText: subject }).waitFor();
    // A later event proves the stream moved on; nothing before it came twice.
    await bertha.bus.publish({ type: 'object.created', source: 'test', subject: 'docs/later.md', payload: {} });
    await page.locator('.event', { hasText: 'docs/later.md' }).waitFor();
    expect(await page.locator('.event .event-subject').allTextContents()).toEqual([
      'docs/later.md',
      ...[...subjects].reverse(),
    ]);
    expect(errors).toEqual([]);
  });
});

describe.skipIf(!hasChromium)('dashboard behind API keys in Chromium', () => {
  test('without a key the dashboard asks for one; with a viewer key it loads and goes live', async () => {
    const bertha = await startBertha(['auth.enabled=true']);
    const viewer = await bertha.apiKeys.create({ name: 'wall screen', role: 'viewer' });
    await bertha.bus.publish({ type: 'object.created', source: 'test', subject: 'a.md', payload: { key: 'a.md' } });
    const browser = await launchBrowser();
    const { page, errors } = await openPage(browser, `${bertha.url}/#/dashboard`);
    await page.locator('[data-live="needs-key"]').waitFor();
    await page.locator('#events').getByText('This needs an API key').waitFor();
    await screenshot(page, 'dashboard-needs-key');

    await page.getByRole('button', { name: /Enter API key/ }).click();
    await page.getByLabel('Key', { exact: true }).fill(viewer.key);
    await page.getByRole('button', { name: 'Save key' }).click();
    await page.getByRole('button', { name: /viewer: wall screen/ }).waitFor();
    await page.locator('[data-live="live"]').waitFor();
    await page.locator('.event[data-type="object.created"]').waitFor();
    await screenshot(page, 'dashboard-with-key');
    expect(errors).toEqual([]);
  });
});
