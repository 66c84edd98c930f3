import { beforeAll, describe, expect, test } from 'vitest';
import { startBertha } from '../helpers/bertha-in-process.ts';
import { chromiumAvailable, ensureWebBuilt, launchBrowser, openPage, screenshot } from '../helpers/browser.ts';

const hasChromium = chromiumAvailable();

beforeAll(() => ensureWebBuilt(), 180_000);

test('bertha serves the built UI at / and caches its hashed assets for good', async () => {
  const bertha = await startBertha();
  const index = await fetch(`${bertha.url}/`);
  expect(index.status).toBe(200);
  expect(index.headers.get('content-type')).toContain('text/html');
  expect(index.headers.get('cache-control')).toBe('no-cache');
  const html = await index.text();
  const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
  expect(script).toBeDefined();
  const asset = await fetch(`${bertha.url}${script}`);
  expect(asset.status).toBe(200);
  expect(asset.headers.get('cache-control')).toContain('immutable');
  await asset.arrayBuffer();
  // Nothing is fetched from a CDN at run time.
  expect(html).not.toMatch(/https?:\/\//);
  const unknownApi = await fetch(`${bertha.url}/v1/nothing-here`);
  expect(unknownApi.status).toBe(404);
  expect(await unknownApi.json()).toMatchObject({ error: { code: 'not_found' } });
});

describe.skipIf(!hasChromium)('in Chromium', () => {
  test('chat and dashboard render on a laptop and on a phone; panels whose API is missing say so', async () => {
    const bertha = await startBertha();
    const browser = await launchBrowser();
    for (const [name, viewport] of [
      ['laptop', { width: 1280, height: 860 }],
      ['phone', { width: 390, height: 844 }],
    ] as const) {
      const { page, errors } = await openPage(browser, `${bertha.url}/`, viewport);
      await page.getByRole('textbox', { name: 'Message' }).waitFor();
      await screenshot(page, `shell-chat-${name}`);
      if (name === 'phone') {
        await page.getByRole('button', { name: /Settings/ }).click();
        await page.getByLabel('Temperature').waitFor();
        await screenshot(page, `shell-chat-settings-${name}`);
      }
      await page.getByRole('link', { name: 'Dashboard' }).click();
      await page.locator('[data-live="live"]').waitFor();
      await page.getByText('No current alerts.').waitFor();
      await screenshot(page, `shell-dashboard-${name}`);
      expect(errors).toEqual([]);
    }
  });
});
