import path from 'node:path';
import { beforeAll, describe, expect, onTestFinished, test } from 'vitest';
import { createLogger } from '../../src/core/logger.ts';
import { createLocalEventBus } from '../../src/events/local-bus.ts';
import { createLineageStore, registerLineageRoutes } from '../../src/lineage/index.ts';
import { createFsObjectStore } from '../../src/objects/fs.ts';
import { createLocalRunner, createRunStore } from '../../src/pipelines/index.ts';
import { registerPipelineRoutes } from '../../src/pipelines/routes.ts';
import { createHttpServer } from '../../src/server/http.ts';
import {
  createModelRegistry,
  createRegistryStore,
  createTrackingStore,
  registerTrackingRoutes,
} from '../../src/tracking/index.ts';
import { registerUiRoutes } from '../../src/ui/index.ts';
import { chromiumAvailable, ensureWebBuilt, launchBrowser, openPage, screenshot } from '../helpers/browser.ts';
import { dbFactories } from '../helpers/databases.ts';
import { tempDir } from '../helpers/temp.ts';
import { testCatalog } from '../pipelines/fixtures.ts';
import { DATASET, smallLoop } from './small-loop.ts';

const hasChromium = chromiumAvailable();
beforeAll(() => ensureWebBuilt(), 180_000);
const sqlite = dbFactories.find((factory) => factory.name === 'sqlite') as (typeof dbFactories)[number];

describe.skipIf(!hasChromium)('lineage on the dashboard in Chromium', () => {
  test('a run and a model version open their lineage; each node opens its own', async () => {
    const db = await sqlite.create();
    onTestFinished(() => db.close());
    const logger = createLogger('silent');
    const dataDir = tempDir();
    const objects = createFsObjectStore({ root: path.join(dataDir, 'objects') });
    const loop = await smallLoop(db);
    // A run that built the loop's dataset, as build-dataset records it.
    const store = createRunStore(db);
    const catalog = testCatalog(dataDir);
    const runner = createLocalRunner({
      store,
      objects,
      catalog,
      logger,
      stepConcurrency: 1,
      maxConcurrentRuns: 1,
      pollIntervalMs: 50,
      leaseMs: 10_000,
    });
    const run = await runner.startRun({ pipeline: 'empty', source: 'test' });
    await createLineageStore(db).link([
      { from: { kind: 'run', id: run.id }, to: { kind: 'dataset', id: DATASET }, relation: 'built' },
    ]);

    // The APIs the pipelines and models panels and the lineage view read; the others answer 404.
    const http = createHttpServer({ logger, bodyLimitBytes: 1_000_000 });
    const registry = createModelRegistry({
      store: createRegistryStore(db),
      bus: createLocalEventBus({ db, logger }),
      logger,
    });
    registerPipelineRoutes(http, { catalog, store, runner });
    registerTrackingRoutes(http, { tracking: createTrackingStore(db), registry, objects });
    registerLineageRoutes(http, { db, dataDir });
    await registerUiRoutes(http, { logger });
    const url = await http.listen({ host: '127.0.0.1', port: 0 });
    onTestFinished(() => http.close());

    const browser = await launchBrowser();
    const { page, errors } = await openPage(browser, `${url}/#/dashboard`);
    await page.locator(`.run-detail[data-run-id="${run.id}"] a.lineage-link`).click();
    const runView = page.locator(`.lineage-view[data-root="run:${run.id}"]`);
    await runView.waitFor();
    expect(page.url()).toContain(`#/lineage/run/${run.id}`);
    await runView.locator(`[data-side="downstream"] a[data-node="dataset:${DATASET}"]`).waitFor();
    await runView.locator(`[data-side="downstream"] a[data-node="model-version:${loop.version}"]`).waitFor();

    // A node links to its own lineage: the dataset's shows the vote it holds.
    await runView.locator(`a[data-node="dataset:${DATASET}"]`).first().click();
    const datasetView = page.locator(`.lineage-view[data-root="dataset:${DATASET}"]`);
    await datasetView.locator(`[data-side="upstream"] a[data-node="feedback:${loop.feedbackId}"]`).waitFor();

    await page.goto(`${url}/#/dashboard`);
    await page.locator('#models tr[data-version="1"] a.lineage-link').click();
    const versionView = page.locator(`.lineage-view[data-root="model-version:${loop.version}"]`);
    await versionView.locator(`[data-side="upstream"] a[data-node="answer:${loop.answerId}"]`).waitFor();
    await versionView.locator(`[data-side="downstream"] a[data-node="rollout:${loop.rolloutId}"]`).waitFor();
    expect(await versionView.locator('[data-side="downstream"]').textContent()).toContain('challenger in →');
    await screenshot(page, 'dashboard-lineage-model-version');

    // Depth 2 from the version reaches the dataset, not the vote in it.
    await page.locator('#lineage select').selectOption('2');
    await versionView.locator(`a[data-node="dataset:${DATASET}"]`).waitFor();
    await versionView.locator(`a[data-node="feedback:${loop.feedbackId}"]`).waitFor({ state: 'detached' });
    expect(errors).toEqual([]);
  }, 120_000);
});
