import { beforeAll, describe, expect, onTestFinished, test } from 'vitest';
import { createLogger } from '../../src/core/logger.ts';
import { definePipeline } from '../../src/pipelines/definition.ts';
import {
  createLocalRunner,
  createPipelineCatalog,
  createRunStore,
  createStepHandlerRegistry,
} from '../../src/pipelines/index.ts';
import { startBertha } from '../helpers/bertha-in-process.ts';
import { chromiumAvailable, ensureWebBuilt, launchBrowser, openPage, screenshot } from '../helpers/browser.ts';

const hasChromium = chromiumAvailable();
beforeAll(() => ensureWebBuilt(), 180_000);

describe.skipIf(!hasChromium)('pipeline runs on the dashboard in Chromium', () => {
  test("a run's steps progress live on the DAG with their logs", async () => {
    // Bertha's own runner is off: this test's runner executes a pipeline of its own against
    // the same database, and the dashboard reads it through the pipelines API as any run.
    const bertha = await startBertha(['pipelines.runner=false']);
    let openGate: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      openGate = resolve;
    });
    const catalog = createPipelineCatalog(
      [
        definePipeline({
          name: 'ui-demo',
          description: 'two steps, the first waits for the test',
          steps: [
            { name: 'gather', handler: 'gather', outputs: ['items'] },
            { name: 'summarize', handler: 'summarize', inputs: { items: { from: 'gather', artifact: 'items' } } },
          ],
        }),
      ],
      createStepHandlerRegistry({
        gather: async (context) => {
          context.log.info('waiting for the gate');
          await context.progress(0.5, 'half way');
          await gate;
          await context.artifacts.writeJson('items', ['a', 'b', 'c']);
          context.log.info('gathered 3 items');
        },
        summarize: async (context) => {
          const items = await context.inputs.json<string[]>('items');
          context.log.info(`summarized ${items.length} items`);
        },
      }),
    );
    const runner = createLocalRunner({
      store: createRunStore(bertha.db),
      objects: bertha.objects,
      catalog,
      logger: createLogger('silent'),
      stepConcurrency: 2,
      maxConcurrentRuns: 1,
      pollIntervalMs: 25,
      leaseMs: 15_000,
    });
    runner.start();
    onTestFinished(() => runner.stop());

    const browser = await launchBrowser();
    const { page, errors } = await openPage(browser, `${bertha.url}/#/dashboard`);
    await page.locator('#pipelines').getByText('No runs yet.').waitFor();
    const run = await runner.startRun({ pipeline: 'ui-demo', source: 'test' });

    const detail = page.locator(`.run-detail[data-run-id="${run.id}"]`);
    await detail.waitFor();
    await detail.locator('.dag-node[data-step="gather"][data-status="running"]').waitFor();
    await detail.locator('pre[data-step-log="gather"]').getByText('waiting for the gate').waitFor();
    expect(await detail.locator('.dag-node[data-step="summarize"]').getAttribute('data-status')).toBe('pending');
    await screenshot(page, 'dashboard-pipeline-running');

    openGate();
    await detail.locator('.dag-node[data-step="summarize"][data-status="succeeded"]').waitFor();
    await detail.locator('.dag-node[data-step="summarize"]').click();
    await detail.locator('pre[data-step-log="summarize"]').getByText('summarized 3 items').waitFor();
    await page.locator(`.run-detail[data-run-id="${run.id}"][data-status="succeeded"]`).waitFor();
    await screenshot(page, 'dashboard-pipeline-succeeded');
    expect(errors).toEqual([]);
  });
});
