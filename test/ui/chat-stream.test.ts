import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { renderMarkdown } from '../../web/src/lib/markdown.ts';
import { eventually, type Serving, startServing } from '../chat/serving.ts';
import { writeTinyLlama } from '../fixtures/tiny-llama.ts';
import { chromiumAvailable, ensureWebBuilt, launchBrowser, openPage, screenshot } from '../helpers/browser.ts';

const hasChromium = chromiumAvailable();
let serving: Serving;
let modelDir: string;

beforeAll(async () => {
  await ensureWebBuilt();
  modelDir = mkdtempSync(path.join(tmpdir(), 'bertha-ui-model-'));
  // Endless: the Stop test needs an answer still running when Escape is pressed.
  const tiny = await writeTinyLlama(modelDir, { endless: true });
  serving = await startServing({ model: tiny.modelPath, llamaCpp: { gpu: 'off', contextSize: 4096, parallel: 1 } });
}, 180_000);

afterAll(async () => {
  await serving?.close();
  rmSync(modelDir, { recursive: true, force: true });
});

describe.skipIf(!hasChromium)('chat with a tiny GGUF in Chromium', () => {
  test('a message gets a streamed answer that is stored as an answer record and kept across a reload', async () => {
    const browser = await launchBrowser();
    const { page, errors } = await openPage(browser, `${serving.url}/`);
    await page.getByLabel('Max tokens').fill('24');
    await page.getByLabel('Model version').selectOption('bertha');
    const prompt = page.getByRole('textbox', { name: 'Message' });
    await prompt.fill('hello world, what is the answer');
    await prompt.press('Enter');
    const answer = page.locator('article.message.assistant[data-status="done"]');
    await answer.waitFor({ timeout: 60_000 });
    const text = (await answer.locator('.markdown').textContent()) ?? '';
    expect(text.trim().length).toBeGreaterThan(0);
    expect(await answer.locator('.message-role').textContent()).toContain('local');
    await screenshot(page, 'chat-streamed-answer');

    const answerId = (await answer.getAttribute('data-answer-id')) ?? '';
    expect(answerId).not.toBe('');
    const stored = await eventually(async () => {
      const record = await serving.bertha.answers.get(answerId);
      return record?.status === 'completed' ? record : undefined;
    });
    expect(stored.params).toMatchObject({ maxTokens: 24 });
    // The rendered answer is the stored answer put through the UI's own Markdown renderer (the
    // tiny model's random text can hold Markdown punctuation), both serialized by the browser.
    const html = (await answer.locator('.markdown').innerHTML()) ?? '';
    const expected = await page.evaluate((markup) => {
      // Runs in the page: the test's own TypeScript program has no DOM types.
      const { document } = globalThis as unknown as {
        document: { createElement(tag: string): { innerHTML: string } };
      };
      const element = document.createElement('div');
      element.innerHTML = markup;
      return element.innerHTML;
    }, renderMarkdown(stored.answer));
    expect(html.replace(/\s+/g, '')).toBe(expected.replace(/\s+/g, ''));

    await page.reload();
    await page.locator('article.message.assistant[data-status="done"]').waitFor();
    expect(await page.locator('article.message').count()).toBe(2);

    // Thumbs-down with a comment and a corrected answer, then see it on the dashboard's chart.
    await page.getByRole('button', { name: 'Bad answer' }).click();
    await page.getByLabel('Comment (optional)').fill('made up words');
    await page.getByLabel('Corrected answer (optional)').fill('The answer is 42.');
    await page.getByRole('button', { name: 'Send feedback' }).click();
    await page.getByText('Thanks, your feedback was recorded.').waitFor();
    const listed = (await (await fetch(`${serving.url}/v1/feedback?rating=down`)).json()) as {
      data: { response_id: string; comment: string; correction: string; model_version: string }[];
    };
    expect(listed.data).toEqual([
      expect.objectContaining({
        response_id: answerId,
        comment: 'made up words',
        correction: 'The answer is 42.',
        model_version: 'local',
      }),
    ]);
    await page.getByRole('link', { name: 'Dashboard' }).click();
    const series = page.locator('#feedback figure[data-model-version="local"]');
    await series.waitFor();
    expect(await series.locator('svg.chart').getAttribute('aria-label')).toBe('Feedback for local: 0 up, 1 down');
    await screenshot(page, 'dashboard-feedback-chart');
    expect(errors).toEqual([]);
  });

  test('Escape stops the generation and the conversation can go on', async () => {
    const browser = await launchBrowser();
    const { page } = await openPage(browser, `${serving.url}/`);
    await page.getByLabel('Max tokens').fill('4000');
    const prompt = page.getByRole('textbox', { name: 'Message' });
    await prompt.fill('tell me everything');
    await prompt.press('Enter');
    await page.getByRole('button', { name: 'Stop' }).waitFor();
    await prompt.press('Escape');
    await page.locator('article.message.assistant[data-status="stopped"]').waitFor();
    await page.getByText('Stopped.').waitFor();
    await page.getByRole('button', { name: 'Send' }).waitFor();
    await screenshot(page, 'chat-stopped');
  });
});
