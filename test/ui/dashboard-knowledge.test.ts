import { beforeAll, describe, expect, test } from 'vitest';
import { startBertha } from '../helpers/bertha-in-process.ts';
import { chromiumAvailable, ensureWebBuilt, launchBrowser, openPage, screenshot } from '../helpers/browser.ts';

const hasChromium = chromiumAvailable();
beforeAll(() => ensureWebBuilt(), 180_000);

const GUIDE =
  '# Bertha guide\n\nBertha answers questions from the documents you upload.\n\nThe loop retrains on feedback.\n';

describe.skipIf(!hasChromium)('knowledge base on the dashboard in Chromium', () => {
  test('a document dropped on the dashboard is uploaded with progress, ingested, and can be deleted', async (context) => {
    const bertha = await startBertha();
    const probe = await fetch(`${bertha.url}/v1/documents`);
    await probe.arrayBuffer();
    // The knowledge API lands from its own branch; until it is in this build there is nothing to drive.
    if (probe.status === 404) context.skip('the knowledge API (/v1/documents) is not in this build');
    const browser = await launchBrowser();
    const { page, errors } = await openPage(browser, `${bertha.url}/#/dashboard`);
    const panel = page.locator('#knowledge');
    await panel.getByText('No documents yet.').waitFor();

    // A real drop event carrying a File, as a drag from the desktop delivers it.
    await page.locator('[data-testid="dropzone"]').evaluate((zone, content) => {
      const { DataTransfer, File, DragEvent } = globalThis as unknown as {
        DataTransfer: new () => { items: { add(file: unknown): void } };
        File: new (parts: string[], name: string, options: { type: string }) => unknown;
        DragEvent: new (
          type: string,
          init: { bubbles: boolean; cancelable: boolean; dataTransfer: unknown },
        ) => unknown;
      };
      const transfer = new DataTransfer();
      transfer.items.add(new File([content], 'guide.md', { type: 'text/markdown' }));
      (zone as unknown as { dispatchEvent(event: unknown): void }).dispatchEvent(
        new DragEvent('drop', { bubbles: true, cancelable: true, dataTransfer: transfer }),
      );
    }, GUIDE);
    await panel.locator('[data-upload="guide.md"]').getByText('uploaded').waitFor();
    const row = panel.locator('tr[data-document$="guide.md"]');
    await row.waitFor();
    await panel.locator('tr[data-document$="guide.md"][data-status="ingested"]').waitFor({ timeout: 60_000 });
    expect(Number(await row.locator('td').nth(2).textContent())).toBeGreaterThan(0);
    await screenshot(page, 'dashboard-knowledge-ingested');

    page.once('dialog', (dialog) => void dialog.accept());
    await row.getByRole('button', { name: /Delete/ }).click();
    await panel.getByText('No documents yet.').waitFor();
    const listed = (await (await fetch(`${bertha.url}/v1/documents`)).json()) as { data: unknown[] };
    expect(listed.data).toEqual([]);
    expect(errors).toEqual([]);
  });
});
