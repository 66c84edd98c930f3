import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, test } from 'vitest';
import type { FeedbackRecord } from '../../src/monitor/index.ts';
import { insertAnswer } from '../helpers/answers.ts';
import { startBertha } from '../helpers/bertha-in-process.ts';
import { chromiumAvailable, ensureWebBuilt, launchBrowser, openPage, screenshot } from '../helpers/browser.ts';

const hasChromium = chromiumAvailable();
beforeAll(() => ensureWebBuilt(), 180_000);

/** Polls `read` until it returns a value, failing after `ms`. */
async function eventually<T>(read: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A chat history with one stored answer, as the chat page keeps it after a completion. */
async function showAnswer(page: Page, answerId: string): Promise<void> {
  await page.evaluate((id) => {
    // Runs in the page: the test's own TypeScript program has no DOM types.
    const { localStorage } = globalThis as unknown as { localStorage: { setItem(key: string, value: string): void } };
    localStorage.setItem(
      'bertha.chat.history.v1',
      JSON.stringify([
        { id: 'u1', role: 'user', content: 'What is Bertha?' },
        {
          id: 'a1',
          role: 'assistant',
          content: 'A closed-loop LLMOps system.',
          answerId: id,
          modelVersion: 'v-ui',
          status: 'done',
        },
      ]),
    );
  }, answerId);
  await page.reload();
  await page.getByRole('button', { name: 'Good answer' }).waitFor();
}

describe.skipIf(!hasChromium)('thumbs feedback in Chromium', () => {
  test('a thumbs click alone stores the vote, and a comment after it updates the same row', async () => {
    const bertha = await startBertha();
    const answer = await insertAnswer(bertha.db, { modelVersion: 'v-ui' });
    const browser = await launchBrowser();
    const { page, errors } = await openPage(browser, `${bertha.url}/`);
    await showAnswer(page, answer);

    // Only the click: no "Send feedback".
    await page.getByRole('button', { name: 'Good answer' }).click();
    await page.locator('.feedback-status[data-state="saved"]').getByText('Vote saved.').waitFor();
    const stored = await eventually(async () => (await bertha.feedback.list())[0]);
    expect(stored).toMatchObject({ responseId: answer, rating: 'up', modelVersion: 'v-ui', comment: null });
    expect(await page.getByRole('button', { name: 'Good answer' }).getAttribute('aria-pressed')).toBe('true');
    await screenshot(page, 'chat-feedback-vote-saved');

    // The saved vote is kept with the history.
    await page.reload();
    await page.getByText('Vote saved.').waitFor();
    expect(await page.getByRole('button', { name: 'Good answer' }).getAttribute('aria-pressed')).toBe('true');

    // The other thumb, a comment and a correction update that row: one vote, counted once per rating.
    await page.getByRole('button', { name: 'Bad answer' }).click();
    await page.getByText('Vote saved.').waitFor();
    await page.getByLabel('Comment (optional)').fill('It left out retraining.');
    await page.getByLabel('Corrected answer (optional)').fill('A closed loop that also retrains.');
    await page.getByRole('button', { name: 'Send feedback' }).click();
    await page.getByText('Thanks, your feedback was recorded.').waitFor();
    const updated: FeedbackRecord[] = await bertha.feedback.list();
    expect(updated).toEqual([
      expect.objectContaining({
        id: stored.id,
        rating: 'down',
        comment: 'It left out retraining.',
        correction: 'A closed loop that also retrains.',
      }),
    ]);
    const metrics = await (await fetch(`${bertha.url}/metrics`)).text();
    expect(metrics).toContain('bertha_feedback_total{rating="up",model_version="v-ui"} 1');
    expect(metrics).toContain('bertha_feedback_total{rating="down",model_version="v-ui"} 1');
    expect(metrics).toContain('bertha_feedback_down_ratio{model_version="v-ui"} 1');
    expect(errors).toEqual([]);
  });

  test('a vote that could not be saved says so, and Retry saves it', async () => {
    const bertha = await startBertha();
    const answer = await insertAnswer(bertha.db);
    const browser = await launchBrowser();
    const { page, errors } = await openPage(browser, `${bertha.url}/`);
    await showAnswer(page, answer);

    await page.route('**/v1/feedback', (route) => route.abort('connectionrefused'));
    await page.getByRole('button', { name: 'Bad answer' }).click();
    const status = page.locator('.feedback-status[data-state="failed"]');
    await status.waitFor();
    expect(await status.textContent()).toContain('Not saved');
    expect(await bertha.feedback.list()).toEqual([]);
    await screenshot(page, 'chat-feedback-vote-failed');

    await page.unroute('**/v1/feedback');
    await page.getByRole('button', { name: 'Retry' }).click();
    await page.getByText('Vote saved.').waitFor();
    expect(await bertha.feedback.list()).toEqual([expect.objectContaining({ responseId: answer, rating: 'down' })]);
    expect(errors).toEqual([]);
  });

  test('the dashboard lists feedback with its comment, correction, answer id and vote', async () => {
    const bertha = await startBertha();
    const answer = await insertAnswer(bertha.db, { modelVersion: 'v-dash' });
    const other = await insertAnswer(bertha.db, { modelVersion: 'v-dash' });
    const vote = await bertha.feedback.record({ responseId: answer, userId: 'ada', rating: 'down' });
    await bertha.feedback.update({
      id: vote.feedback.id,
      userId: 'ada',
      comment: 'Cites a <b>retired</b> policy.',
      correction: 'The 2024 policy applies.',
    });
    await bertha.feedback.record({ responseId: other, userId: 'bob', rating: 'up' });

    const browser = await launchBrowser();
    const { page, errors } = await openPage(browser, `${bertha.url}/#/dashboard`);
    const entry = page.locator(`#feedback .feedback-entry[data-feedback-id="${vote.feedback.id}"]`);
    await entry.waitFor();
    expect(await entry.getAttribute('data-rating')).toBe('down');
    expect(await entry.locator('.feedback-comment').textContent()).toBe('Cites a <b>retired</b> policy.');
    expect(await entry.locator('.feedback-correction').textContent()).toContain('The 2024 policy applies.');
    expect(await entry.textContent()).toContain(answer);
    expect(await entry.textContent()).toContain('v-dash');
    expect(await page.locator('#feedback .feedback-entry').count()).toBe(2);
    await screenshot(page, 'dashboard-feedback-list');

    await page.getByLabel('Only with a comment or correction').check();
    await page.locator('#feedback .feedback-entry').nth(1).waitFor({ state: 'detached' });
    expect(await page.locator('#feedback .feedback-entry').count()).toBe(1);
    expect(errors).toEqual([]);
  });
});
