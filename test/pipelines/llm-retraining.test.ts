import { readFileSync } from 'node:fs';
import { stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { getLlama } from 'node-llama-cpp';
import { describe, expect, onTestFinished, test } from 'vitest';
import { createBertha } from '../../src/app.ts';
import { loadConfig } from '../../src/config/index.ts';
import { DEFAULT_SENSORS, sensorSchema } from '../../src/config/schema.ts';
import { createLogger } from '../../src/core/logger.ts';
import type { MetadataDb } from '../../src/db/index.ts';
import { createSensors } from '../../src/events/index.ts';
import { createLocalEventBus } from '../../src/events/local-bus.ts';
import { createFeedbackStore } from '../../src/monitor/index.ts';
import { createFsObjectStore } from '../../src/objects/fs.ts';
import { readObject } from '../../src/objects/index.ts';
import { builtinPipelines } from '../../src/pipelines/builtin/index.ts';
import type { RegisteredRetraining, RetrainingDeps } from '../../src/pipelines/builtin/llm-retraining.ts';
import { runOneStep } from '../../src/pipelines/index.ts';
import {
  createModelRegistry,
  createRegistryStore,
  createTrackingStore,
  type ModelRegistry,
} from '../../src/tracking/index.ts';
import type { BuiltDataset } from '../../src/train/index.ts';
import { insertAnswer } from '../helpers/answers.ts';
import { dbFactories } from '../helpers/databases.ts';
import { tempDir } from '../helpers/temp.ts';
import { startBuiltinRunner } from './builtin-runner.ts';
import { waitFor } from './wait.ts';

const sqlite = dbFactories.find((factory) => factory.name === 'sqlite') as (typeof dbFactories)[number];

const CORRECTIONS = [
  'Bertha is a closed-loop LLMOps system: it serves a model, collects feedback and retrains it.',
  'Bertha retrains the model when feedback says it got worse, then registers a challenger.',
  'Bertha keeps every answer, vote, run and model version as a stored row.',
];

async function setup(overrides: Partial<RetrainingDeps> = {}) {
  const dataDir = tempDir();
  const db: MetadataDb = await sqlite.create();
  onTestFinished(() => db.close());
  const logger = createLogger('silent');
  const objects = createFsObjectStore({ root: path.join(dataDir, 'objects') });
  const bus = createLocalEventBus({ db, logger });
  const tracking = createTrackingStore(db);
  const registry: ModelRegistry = createModelRegistry({ store: createRegistryStore(db), bus, logger });
  const deps: RetrainingDeps = {
    db,
    objects,
    tracking,
    registry,
    logger,
    dataDir,
    model: 'bertha-chat',
    servedBundle: undefined,
    // A tiny starter (4 steps) and a 4-step LoRA keep the run to seconds.
    trainer: {
      threads: 1,
      starterSteps: 4,
      lora: { steps: 4, rank: 4, alpha: 8, learningRate: 1e-2, batchSize: 2 },
    },
    ...overrides,
  };
  const { store, runner, finished } = startBuiltinRunner({
    db,
    objects,
    logger,
    builtin: builtinPipelines({ retraining: () => deps }),
    concurrency: 1,
    leaseMs: 30_000,
    runTimeoutMs: 120_000,
  });
  const feedback = createFeedbackStore(db);
  for (const [index, correction] of CORRECTIONS.entries()) {
    const answer = await insertAnswer(db, { answer: 'I do not know.' });
    await feedback.record({ responseId: answer, userId: `user-${index}`, rating: 'up', correction });
  }
  const liked = await insertAnswer(db, { answer: 'A closed-loop LLMOps system that learns from feedback.' });
  await feedback.record({ responseId: liked, userId: 'user-liked', rating: 'up' });
  return { dataDir, db, objects, bus, tracking, registry, store, runner, finished };
}

describe('llm-retraining', () => {
  test('feedback becomes a dataset, a LoRA adapter on the starter model, and a challenger version', async () => {
    const { dataDir, objects, tracking, registry, store, runner, finished } = await setup();
    const run = await finished(
      (await runner.startRun({ pipeline: 'llm-retraining', params: { model_version: '' }, source: 'test' })).id,
    );
    const steps = await store.listSteps(run.id);
    expect(run.status, JSON.stringify(steps.map((s) => [s.name, s.status, s.error]))).toBe('succeeded');
    expect(steps.map((s) => s.name).sort()).toEqual(['build-dataset', 'log-model', 'retrain-model']);

    const trainingLog = (await store.listLogs(run.id, { step: 'retrain-model' })).map((line) => line.message);
    expect(trainingLog).toContainEqual(expect.stringMatching(/^step 4\/4 loss /));
    expect(steps.find((s) => s.name === 'retrain-model')?.progress).toBe(1);

    const artifacts = await store.listArtifacts(run.id);
    const artifact = (name: string) => artifacts.find((a) => a.name === name)?.objectKey as string;
    const dataset = JSON.parse((await readObject(objects, artifact('dataset'))).toString()) as BuiltDataset;
    expect(dataset.counts).toMatchObject({ corrections: 3, thumbsUp: 1 });
    expect(dataset.counts.train + dataset.counts.valid).toBe(4);
    const trainSet = (await readObject(objects, dataset.trainKey)).toString();
    expect(trainSet.trim().split('\n')).toHaveLength(dataset.counts.train);

    const registered = JSON.parse(
      (await readObject(objects, artifact('registered'))).toString(),
    ) as RegisteredRetraining;
    expect(registered).toMatchObject({ name: 'bertha-chat', version: '1', alias: 'challenger' });
    expect((await stat(registered.modelPath)).size).toBeGreaterThan(0);

    const version = await registry.store.getVersionByAlias('bertha-chat', 'challenger');
    expect(version.version).toBe('1');
    expect(await registry.resolveAlias('bertha-chat', 'champion')).toBeUndefined();
    const bundle = await registry.getBundle('bertha-chat', '1');
    expect(bundle.base.kind).toBe('gguf');
    const basePath = (bundle.base as { path: string }).path;
    expect(basePath.startsWith(path.join(dataDir, 'models', 'starter'))).toBe(true);
    expect(bundle.adapters).toEqual([{ path: registered.modelPath, scale: 1 }]);
    expect(bundle.lineage).toMatchObject({
      runId: registered.trackingRunId,
      trainingDataSnapshot: dataset.manifestKey,
      feedbackWindow: dataset.window,
      parentVersion: 'starter',
    });

    const trackingRun = await tracking.getRun(registered.trackingRunId);
    const metrics = Object.fromEntries(trackingRun.data.metrics?.map((m) => [m.key, m.value]) ?? []);
    expect(metrics.final_loss).toBeGreaterThan(0);
    expect(metrics.tokens_per_second).toBeGreaterThan(0);
    expect(metrics.examples_corrections).toBe(3);
    const params = Object.fromEntries(trackingRun.data.params?.map((p) => [p.key, p.value]) ?? []);
    expect(params).toMatchObject({ dataset_version: dataset.version, trainer: 'lora', steps: '4' });
    const root = trackingRun.info.artifact_uri.replace(/^mlflow-artifacts:\/+/, 'mlflow-artifacts/');
    expect((await readObject(objects, `${root}/adapter.gguf`)).length).toBe((await stat(registered.modelPath)).size);

    const llama = await getLlama({ build: 'never', gpu: false, maxThreads: 1 });
    const model = await llama.loadModel({ modelPath: basePath });
    const context = await model.createContext({
      contextSize: 128,
      lora: { adapters: [{ filePath: registered.modelPath }] },
    });
    await context.dispose();
    await model.dispose();
    await llama.dispose();
  }, 180_000);

  test('a model.degraded event leads through the sensor and its trigger to an llm-retraining run', async () => {
    const { db, bus, store, finished } = await setup();
    const sensors = createSensors({
      db,
      bus,
      rules: DEFAULT_SENSORS.map((sensor) => sensorSchema.parse(sensor)),
      logger: createLogger('silent'),
    });
    onTestFinished(sensors.start());
    await bus.publish({
      type: 'model.degraded',
      source: 'test',
      subject: 'bertha-chat/7',
      payload: { model_version: 'bertha-chat/7', alertname: 'BerthaThumbsDownOverUp' },
    });
    await bus.drain();
    const trigger = await waitFor('the retraining trigger to launch', async () => {
      const row = await db.kysely
        .selectFrom('pipeline_triggers')
        .selectAll()
        .where('pipeline', '=', 'llm-retraining')
        .executeTakeFirst();
      return row?.run_id ? row : undefined;
    });
    expect(trigger).toMatchObject({ status: 'launched', sensor: 'retrain-on-degradation' });
    const run = await finished(trigger.run_id as string);
    expect(run).toMatchObject({ pipeline: 'llm-retraining', params: { model_version: 'bertha-chat/7' } });
    // Version 7 is not in the registry, so the starter model is the base.
    expect(run.status).toBe('succeeded');
    expect((await store.listSteps(run.id)).map((s) => s.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
  }, 180_000);

  test('a GGUF without a Bertha checkpoint and no command trainer fails retrain-model saying what to configure', async () => {
    const dir = tempDir();
    const gguf = path.join(dir, 'llama-2-7b.Q4_K_M.gguf');
    await writeFile(gguf, 'not read: the missing checkpoint is found first');
    const servedBundle = {
      version: 'local',
      base: { kind: 'gguf' as const, path: gguf },
      adapters: [],
      generation: {},
      retrieval: { enabled: true, topK: 4 },
    };
    const { store, runner, finished } = await setup({ servedBundle });
    const run = await finished((await runner.startRun({ pipeline: 'llm-retraining', params: {}, source: 'test' })).id);
    expect(run.status).toBe('failed');
    const failed = (await store.listSteps(run.id)).find((step) => step.name === 'retrain-model');
    expect(failed?.status).toBe('failed');
    expect(failed?.error).toMatch(/no Bertha checkpoint.*trainer\.command/);
  });

  test('`bertha step llm-retraining build-dataset` runs the step on its own, as an Argo pod does', async () => {
    const dataDir = tempDir();
    const { config } = loadConfig({ dataDir, set: ['log.level=silent'] }, {});
    const bertha = await createBertha(config);
    onTestFinished(() => bertha.close());
    const answer = await insertAnswer(bertha.db);
    await bertha.feedback.record({ responseId: answer, userId: 'u1', rating: 'up', correction: CORRECTIONS[0] });
    const outputsDir = path.join(dataDir, 'outputs');
    const outcome = await runOneStep({
      catalog: bertha.pipelines.catalog,
      store: bertha.pipelines.store,
      objects: bertha.objects,
      logger: bertha.logger,
      pipeline: 'llm-retraining',
      step: 'build-dataset',
      runId: 'llm-retraining-abc12',
      params: { window_days: '7' },
      inputKeys: {},
      outputsDir,
      singleAttempt: true,
      owner: 'argo:build-dataset',
      signal: new AbortController().signal,
    });
    expect(outcome.status).toBe('succeeded');
    const key = readFileSync(path.join(outputsDir, 'dataset'), 'utf8');
    const dataset = JSON.parse((await readObject(bertha.objects, key)).toString()) as BuiltDataset;
    expect(dataset.counts).toMatchObject({ corrections: 1 });
  });
});
