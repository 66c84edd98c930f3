import { beforeAll, describe, expect, test } from 'vitest';
import { startBertha } from '../helpers/bertha-in-process.ts';
import { chromiumAvailable, ensureWebBuilt, launchBrowser, openPage, screenshot } from '../helpers/browser.ts';

const hasChromium = chromiumAvailable();
beforeAll(() => ensureWebBuilt(), 180_000);

/** What a hostile model answer or retrieved document could contain. */
const HOSTILE_ANSWER = [
  'Here is **bold** and a list:',
  '',
  '- <img src=x onerror="window.__pwned = 1">',
  '- <script>window.__pwned = 2</script>',
  '- [click me](javascript:window.__pwned=3)',
  '- ![pixel](http://127.0.0.1:9/leak?secret=1)',
  '',
  '```js',
  'const x = "<b>not bold</b>";',
  '```',
].join('\n');

describe.skipIf(!hasChromium)('chat page in Chromium', () => {
  test('history and settings survive a reload, and hostile Markdown renders as inert text', async () => {
    const bertha = await startBertha();
    const browser = await launchBrowser();
    const { page, errors } = await openPage(browser, `${bertha.url}/`);
    await page.evaluate((answer) => {
      // Runs in the page: the test's own TypeScript program has no DOM types.
      const { localStorage } = globalThis as unknown as { localStorage: { setItem(key: string, value: string): void } };
      localStorage.setItem(
        'bertha.chat.history.v1',
        JSON.stringify([
          { id: 'u1', role: 'user', content: 'What does <b>this</b> do?' },
          {
            id: 'a1',
            role: 'assistant',
            content: answer,
            answerId: 'ans_1',
            status: 'done',
            sources: [
              {
                chunkId: 'c1',
                documentId: 'doc_1',
                documentKey: 'guide.md',
                documentVersion: 2,
                text: '<img src=x onerror="window.__pwned = 4"> passage text',
                score: 0.873,
                metadata: {},
              },
            ],
          },
        ]),
      );
      localStorage.setItem(
        'bertha.chat.settings.v1',
        JSON.stringify({ model: '', temperature: 0.2, topP: 0.9, maxTokens: 64 }),
      );
    }, HOSTILE_ANSWER);
    await page.reload();

    const answer = page.locator('article.message.assistant .markdown');
    await answer.waitFor();
    expect(await answer.locator('strong').textContent()).toBe('bold');
    expect(await answer.locator('img, script').count()).toBe(0);
    expect(await answer.textContent()).toContain('<img src=x onerror="window.__pwned = 1">');
    expect(await answer.locator('a[href^="javascript"]').count()).toBe(0);
    expect(await answer.locator('pre code').textContent()).toContain('"<b>not bold</b>"');
    expect(await page.locator('article.message.user').textContent()).toContain('What does <b>this</b> do?');

    await page.getByText('Sources (1)').click();
    const source = page.locator('.source');
    expect(await source.textContent()).toContain('guide.md');
    expect(await source.locator('img').count()).toBe(0);
    expect(await page.evaluate(() => (globalThis as { __pwned?: number }).__pwned)).toBeUndefined();
    expect(await page.getByLabel('Temperature').inputValue()).toBe('0.2');
    expect(await page.getByLabel('Max tokens').inputValue()).toBe('64');
    await screenshot(page, 'chat-history-markdown');

    // Feedback is offered on the stored answer and is reachable from the keyboard.
    await page.getByRole('button', { name: 'Bad answer' }).focus();
    await page.keyboard.press('Enter');
    await page.getByLabel('Corrected answer (optional)').waitFor();
    expect(await page.locator('textarea:focus').getAttribute('rows')).toBe('2');
    await page.keyboard.press('Escape');
    await page.getByLabel('Corrected answer (optional)').waitFor({ state: 'detached' });

    await page.getByRole('button', { name: 'Clear chat' }).click();
    await page.getByText('Ask a question about your documents.').waitFor();
    await page.reload();
    await page.getByText('Ask a question about your documents.').waitFor();
    expect(errors).toEqual([]);
  });

  test('with no model loaded the chat says the model is unavailable and when to retry', async () => {
    const bertha = await startBertha();
    const browser = await launchBrowser();
    const { page } = await openPage(browser, `${bertha.url}/`);
    const prompt = page.getByRole('textbox', { name: 'Message' });
    await prompt.fill('Hello?');
    await prompt.press('Enter');
    const error = page.locator('article.message.assistant [role="alert"]');
    await error.waitFor();
    // No GGUF is configured: serving answers 503 with Retry-After, which the chat spells out.
    expect(await error.textContent()).toMatch(/^The model is unavailable right now \(.+\)\. Try again in \d+ s\.$/);
    expect(await prompt.inputValue()).toBe('');
    await screenshot(page, 'chat-error');
  });
});
