import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, test } from 'vitest';
import { startBertha } from '../helpers/bertha-in-process.ts';
import { chromiumAvailable, ensureWebBuilt, launchBrowser, openPage, screenshot } from '../helpers/browser.ts';

const hasChromium = chromiumAvailable();
beforeAll(() => ensureWebBuilt(), 180_000);

const GUIDE =
  '# Bertha guide\n\nBertha answers questions from the documents you upload.\n\nThe loop retrains on feedback.\n';

/** A real drop event carrying Files, as a drag from the desktop delivers it. */
async function dropFiles(page: Page, files: Array<{ name: string; content: string; type: string }>): Promise<void> {
  await page.locator('[data-testid="dropzone"]').evaluate((zone, dropped) => {
    const { DataTransfer, File, DragEvent } = globalThis as unknown as {
      DataTransfer: new () => { items: { add(file: unknown): void } };
      File: new (parts: string[], name: string, options: { type: string }) => unknown;
      DragEvent: new (type: string, init: { bubbles: boolean; cancelable: boolean; dataTransfer: unknown }) => unknown;
    };
    const transfer = new DataTransfer();
    for (const file of dropped) transfer.items.add(new File([file.content], file.name, { type: file.type }));
    (zone as unknown as { dispatchEvent(event: unknown): void }).dispatchEvent(
      new DragEvent('drop', { bubbles: true, cancelable: true, dataTransfer: transfer }),
    );
  }, files);
}

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

    await dropFiles(page, [{ name: 'guide.md', content: GUIDE, type: 'text/markdown' }]);
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
  test('a refused upload says why, and a document that failed to load shows the reason in its row', async () => {
    const bertha = await startBertha(['objects.watch=false', 'pipelines.pollIntervalMs=50']);
    const browser = await launchBrowser();
    const { page, errors } = await openPage(browser, `${bertha.url}/#/dashboard`);
    const panel = page.locator('#knowledge');
    await panel.getByText('No documents yet.').waitFor();

    await dropFiles(page, [
      { name: 'setup.exe', content: 'MZ binary', type: 'application/x-msdownload' },
      { name: 'broken.pdf', content: '%PDF-1.4\nthis is not a pdf', type: 'application/pdf' },
    ]);
    const refused = panel.locator('[data-upload="setup.exe"] .error');
    await refused.waitFor();
    expect(await refused.textContent()).toMatch(/unsupported format '\.exe'; accepted: PDF \(\.pdf\).*\(HTTP 415\)/);
    await panel.locator('[data-upload="broken.pdf"]').getByText('uploaded').waitFor();

    // Load failures surface once the ingestion run has given up (after its retries).
    const row = panel.locator('tr[data-document="documents/broken.pdf"][data-status="failed"]');
    await row.waitFor({ timeout: 60_000 });
    const reason = row.getByTestId('document-error');
    expect(await reason.isVisible()).toBe(true);
    expect(await reason.textContent()).toMatch(/cannot load 'documents\/broken\.pdf': corrupt PDF/);
    expect(await panel.locator('tr[data-document="documents/setup.exe"]').count()).toBe(0);
    await screenshot(page, 'dashboard-knowledge-failed');
    expect(errors).toEqual([]);
  }, 120_000);
});
