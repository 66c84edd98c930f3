import { beforeAll, expect, test } from 'vitest';
import { startBertha } from '../helpers/bertha-in-process.ts';
import { ensureWebBuilt } from '../helpers/browser.ts';

beforeAll(() => ensureWebBuilt(), 180_000);

test('the page links an icon that answers 200, and /favicon.ico answers with the same icon', async () => {
  const bertha = await startBertha();
  const html = await (await fetch(`${bertha.url}/`)).text();
  const href = /<link rel="icon" type="image\/svg\+xml" href="([^"]+)"/.exec(html)?.[1];
  expect(href).toBe('/favicon.svg');

  const linked = await fetch(`${bertha.url}${href}`);
  expect(linked.status).toBe(200);
  expect(linked.headers.get('content-type')).toContain('image/svg+xml');
  const icon = await linked.text();
  expect(icon).toMatch(/^<svg [^>]*viewBox="0 0 32 32"/);

  const implicit = await fetch(`${bertha.url}/favicon.ico`);
  expect(implicit.status).toBe(200);
  expect(implicit.headers.get('content-type')).toContain('image/svg+xml');
  expect(await implicit.text()).toBe(icon);
});
