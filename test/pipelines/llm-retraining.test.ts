import { readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { getLlama } from 'node-llama-cpp';
import { describe, expect, onTestFinished, test } from 'vitest';
import { createBertha } from '../../src/app.ts';
import { loadConfig } from '../../src/config/index.ts';
import { configSchema, DEFAULT_SENSORS, sensorSchema } from '../../src/config/schema.ts';
import { createLogger } from '../../src/core/logger.ts';
import type { MetadataDb } from '../../src/db/index.ts';
import { createRuntimeEvaluator } from '../../src/eval/index.ts';
import { createSensors } from '../../src/events/index.ts';
import { createLocalEventBus } from '../../src/events/local-bus.ts';
import { gguf as ggufValue, writeGguf } from '../../src/gguf/index.ts';
import { createKnowledgeRetriever } from '../../src/knowledge/index.ts';
import { createLlamaCppRuntime } from '../../src/llm/llama-cpp.ts';
import { createOpenAiRuntime } from '../../src/llm/openai.ts';
import { createFeedbackStore } from '../../src/monitor/index.ts';
import { createFsObjectStore } from '../../src/objects/fs.ts';
import { readObject } from '../../src/objects/index.ts';
import { argoReferenceProblems, renderArgoManifests, strictSchemaProblems } from '../../src/pipelines/argo/index.ts';
import { builtinPipelines } from '../../src/pipelines/builtin/index.ts';
import type { RetrainingDeps } from '../../src/pipelines/builtin/llm-retraining.ts';
import { runOneStep } from '../../src/pipelines/index.ts';
import { createRolloutController, createRolloutStore, ROLLOUT_CHANGED } from '../../src/rollout/index.ts';
import { createEmbeddedRunLog } from '../../src/tracking/embedded-run-log.ts';
import {
  createModelRegistry,
  createRegistryStore,
  createTrackingStore,
  type ModelRegistry,
  type RegisteredRetraining,
} from '../../src/tracking/index.ts';
import type { BuiltDataset } from '../../src/train/index.ts';
import { startServing } from '../chat/serving.ts';
import { writeTinyLlama } from '../fixtures/tiny-llama.ts';
import { insertAnswer } from '../helpers/answers.ts';
import { dbFactories } from '../helpers/databases.ts';
import { embeddedKnowledge } from '../helpers/knowledge.ts';
import { tempDir } from '../helpers/temp.ts';
import { QUICK_TRAINER, startBuiltinRunner } from './builtin-runner.ts';
import { waitFor } from './wait.ts';

const sqlite = dbFactories.find((factory) => factory.name === 'sqlite') as (typeof dbFactories)[number];

const CORRECTIONS = [
  'Bertha is a closed-loop LLMOps system: it serves a model, collects feedback and retrains it.',
  'Bertha retrains the model when feedback says it got worse, then registers a challenger.',
  'Bertha keeps every answer, vote, run and model version as a stored row.',
];

async function setup(overrides: Partial<RetrainingDeps> = {}, upstreamUrl = '') {
  const dataDir = tempDir();
  const db: MetadataDb = await sqlite.create();
  onTestFinished(() => db.close());
  const logger = createLogger('silent');
  const objects = createFsObjectStore({ root: path.join(dataDir, 'objects') });
  const bus = createLocalEventBus({ db, logger });
  const tracking = createTrackingStore(db);
  const registry: ModelRegistry = createModelRegistry({ store: createRegistryStore(db), bus, logger });
  const rollouts = createRolloutStore(db);
  const knowledge = await embeddedKnowledge(db, tempDir(), logger);
  const deps: RetrainingDeps = {
    db,
    bus,
    // The serving runtime the chat service would use for these bundles.
    evaluator: createRuntimeEvaluator({
      createRuntime: (bundle) =>
        bundle.base.kind === 'upstream'
          ? createOpenAiRuntime({
              baseUrl: upstreamUrl,
              apiKey: 'sk-test',
              model: bundle.base.model,
              parallel: 1,
              timeoutMs: 60_000,
              defaults: { temperature: 0, topP: 1, maxTokens: 16 },
              logger,
            })
          : createLlamaCppRuntime({
              modelPath: (bundle.base as { path: string }).path,
              adapters: bundle.adapters,
              maxThreads: 1,
              gpu: 'off',
              parallel: 1,
              contextSize: 0,
              batchSize: 512,
              defaults: { temperature: 0, topP: 1, maxTokens: 16 },
              logger,
            }),
    }),
    evaluation: DEFAULT_EVALUATION,
    systemPrompt: 'You are a helpful assistant.',
    retriever: createKnowledgeRetriever({ embedder: knowledge.embedder, vectors: knowledge.vectors, mode: 'hybrid' }),
    rollout: createRolloutController({
      store: rollouts,
      bus,
      logger,
      model: 'bertha-chat',
      promote: async (version) => {
        await registry.setAlias('bertha-chat', 'champion', version.split('/')[1] as string);
      },
      steps: [0.1, 0.5],
      policy: { minVotes: 20, minAnswers: 20, confidence: 0.95, downRateTolerance: 0.05, errorRateTolerance: 0.05 },
    }),
    objects,
    runs: createEmbeddedRunLog(tracking, objects),
    registry,
    logger,
    dataDir,
    model: 'bertha-chat',
    servedBundle: undefined,
    retrievalTopK: 4,
    trainer: QUICK_TRAINER,
    ...overrides,
  };
  const { store, runner, finished } = startBuiltinRunner({
    db,
    objects,
    logger,
    builtin: builtinPipelines({ retraining: () => deps }),
    concurrency: 1,
    leaseMs: 30_000,
    // The upstream case scores every suite over HTTP: about two minutes on a loaded machine.
    runTimeoutMs: 240_000,
  });
  const feedback = createFeedbackStore(db);
  for (const [index, correction] of CORRECTIONS.entries()) {
    const answer = await insertAnswer(db, { answer: 'I do not know.' });
    await feedback.record({ responseId: answer, userId: `user-${index}`, rating: 'up', correction });
  }
  const liked = await insertAnswer(db, { answer: 'A closed-loop LLMOps system that learns from feedback.' });
  await feedback.record({ responseId: liked, userId: 'user-liked', rating: 'up' });
  return { dataDir, db, objects, bus, tracking, registry, store, runner, finished, rollouts };
}

const DEFAULT_EVALUATION = loadConfig({}, {}).config.evaluation;

const byName = (steps: Array<{ name: string; status: string }>) =>
  Object.fromEntries(steps.map((step) => [step.name, step.status]));

describe('llm-retraining', () => {
  test('feedback becomes a dataset, a LoRA adapter on the starter model, and a challenger version', async () => {
    const { dataDir, objects, tracking, registry, store, runner, finished } = await setup();
    const run = await finished(
      (await runner.startRun({ pipeline: 'llm-retraining', params: { model_version: '' }, source: 'test' })).id,
    );
    const steps = await store.listSteps(run.id);
    expect(run.status, JSON.stringify(steps.map((s) => [s.name, s.status, s.error]))).toBe('succeeded');
    expect(steps.map((s) => s.name).sort()).toEqual([
      'benchmark',
      'build-dataset',
      'deploy',
      'gate',
      'log-model',
      'prompt-challenger',
      'retrain-model',
    ]);

    const trainingLog = (await store.listLogs(run.id, { step: 'retrain-model' })).map((line) => line.message);
    expect(trainingLog).toContainEqual(expect.stringMatching(/^step 4\/4 loss /));
    expect(steps.find((s) => s.name === 'retrain-model')?.progress).toBe(1);

    const artifacts = await store.listArtifacts(run.id);
    const artifact = (name: string, step?: string) =>
      artifacts.find((a) => a.name === name && (step === undefined || a.step === step))?.objectKey as string;
    const dataset = JSON.parse((await readObject(objects, artifact('dataset'))).toString()) as BuiltDataset;
    expect(dataset.counts).toMatchObject({ corrections: 3, thumbsUp: 1 });
    expect(dataset.counts.train + dataset.counts.valid).toBe(4);
    const trainSet = (await readObject(objects, dataset.trainKey)).toString();
    expect(trainSet.trim().split('\n')).toHaveLength(dataset.counts.train);

    const registered = JSON.parse(
      (await readObject(objects, artifact('registered', 'log-model'))).toString(),
    ) as RegisteredRetraining;
    expect(registered).toMatchObject({ name: 'bertha-chat', alias: 'challenger', arm: 'adapter' });
    const modelPath = registered.modelPath as string;
    expect((await stat(modelPath)).size).toBeGreaterThan(0);

    const version = await registry.store.getVersionByAlias('bertha-chat', 'challenger');
    expect(version.version).toBe(registered.version);
    expect(await registry.resolveAlias('bertha-chat', 'champion')).toBeUndefined();
    const bundle = await registry.getBundle('bertha-chat', registered.version);
    expect(bundle.base.kind).toBe('gguf');
    const basePath = (bundle.base as { path: string }).path;
    expect(basePath.startsWith(path.join(dataDir, 'models', 'starter'))).toBe(true);
    expect(bundle.adapters).toEqual([{ path: modelPath, scale: 1 }]);
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
    expect((await readObject(objects, `${root}/adapter.gguf`)).length).toBe((await stat(modelPath)).size);

    // The in-context arm: the same base, approved answers from the feedback in its prompt.
    const prompt = JSON.parse(
      (await readObject(objects, artifact('registered', 'prompt-challenger'))).toString(),
    ) as RegisteredRetraining;
    expect(prompt).toMatchObject({ name: 'bertha-chat', alias: 'challenger-prompt', arm: 'prompt' });
    expect(prompt.version).not.toBe(registered.version);
    const promptBundle = await registry.getBundle('bertha-chat', prompt.version);
    expect(promptBundle.base).toEqual(bundle.base);
    expect(promptBundle.adapters).toEqual([]);
    const shown = [...(promptBundle.systemPrompt ?? '').matchAll(/^Question: (.*)\nAnswer: (.*)$/gm)];
    expect(shown.length).toBeGreaterThan(0);
    expect(shown.length).toBeLessThanOrEqual(DEFAULT_EVALUATION.promptArm.examples);
    for (const [, question, answer] of shown) {
      expect(question).toBe('What is Bertha?');
      expect([...CORRECTIONS, 'A closed-loop LLMOps system that learns from feedback.']).toContain(answer);
    }
    expect(promptBundle.lineage).toMatchObject({ trainingDataSnapshot: dataset.manifestKey, parentVersion: 'starter' });

    const llama = await getLlama({ build: 'never', gpu: false, maxThreads: 1 });
    const model = await llama.loadModel({ modelPath: basePath });
    const context = await model.createContext({
      contextSize: 128,
      lora: { adapters: [{ filePath: modelPath }] },
    });
    await context.dispose();
    await model.dispose();
    await llama.dispose();
  }, 180_000);

  test('a second run on unchanged data trains nothing: its later steps are skipped with the reason, stored as an event', async () => {
    const { bus, registry, store, runner, finished } = await setup();
    const start = async () =>
      finished(
        (await runner.startRun({ pipeline: 'llm-retraining', params: { model_version: '' }, source: 'test' })).id,
      );
    const first = await start();
    expect(first.status).toBe('succeeded');
    const second = await start();
    const steps = await store.listSteps(second.id);
    expect(second.status, JSON.stringify(steps)).toBe('succeeded');
    expect(byName(steps)).toEqual({
      'build-dataset': 'succeeded',
      'prompt-challenger': 'skipped',
      'retrain-model': 'skipped',
      'log-model': 'skipped',
      benchmark: 'skipped',
      gate: 'skipped',
      deploy: 'skipped',
    });
    const reason = steps.find((step) => step.name === 'retrain-model')?.error;
    const adapter = await registry.store.getVersionByAlias('bertha-chat', 'challenger');
    expect(reason).toBe(
      `dataset ${reason?.slice(8, 24)} is unchanged and bertha-chat/${adapter.version} was already trained on it from starter`,
    );
    // The adapter and the prompt arm of the first run; nothing from the second.
    expect((await registry.store.searchModelVersions({ filter: "name = 'bertha-chat'" })).items).toHaveLength(2);
    const [event] = await bus.list({ type: 'retraining.skipped' });
    expect(event?.payload).toMatchObject({
      runId: second.id,
      existingVersion: `bertha-chat/${adapter.version}`,
      baseVersion: 'starter',
      reason,
    });
  }, 180_000);

  test('benchmark scores champion and challenger on the same items; a gate short of evidence is inconclusive and deploys nothing', async () => {
    const { bus, registry, store, runner, finished, tracking, rollouts } = await setup();
    const run = await finished((await runner.startRun({ pipeline: 'llm-retraining', params: {}, source: 'test' })).id);
    const steps = await store.listSteps(run.id);
    expect(run.status, JSON.stringify(steps)).toBe('succeeded');
    expect(byName(steps)).toMatchObject({ benchmark: 'succeeded', gate: 'succeeded', deploy: 'skipped' });
    const deploy = steps.find((step) => step.name === 'deploy');
    expect(deploy?.error).toMatch(
      /^gate inconclusive against starter: adapter bertha-chat\/\d+: inconclusive; prompt bertha-chat\/\d+: inconclusive; no arm passed the gate$/,
    );
    const adapter = await registry.store.getVersionByAlias('bertha-chat', 'challenger');

    const [event] = await bus.list({ type: 'gate.decided' });
    expect(event?.payload).toMatchObject({
      decision: 'inconclusive',
      chosenVersion: null,
      championVersion: 'starter',
      arms: expect.arrayContaining([
        expect.objectContaining({
          arm: 'adapter',
          version: `bertha-chat/${adapter.version}`,
          decision: 'inconclusive',
        }),
        expect.objectContaining({ arm: 'prompt', decision: 'inconclusive' }),
      ]),
    });
    const [firstArm] = (event?.payload as { arms?: { reasons: string[] }[] } | undefined)?.arms ?? [];
    expect(firstArm?.reasons[0]).toMatch(/^primary suite benchmark-domain: \d+ paired items, fewer than 20/);
    const version = await registry.store.getModelVersion('bertha-chat', adapter.version);
    expect(version.tags).toContainEqual({ key: 'bertha.gate.decision', value: 'inconclusive' });
    const trackingRun = await tracking.getRun(version.run_id as string);
    const metrics = Object.fromEntries(trackingRun.data.metrics?.map((m) => [m.key, m.value]) ?? []);
    expect(metrics.gold_items).toBeGreaterThanOrEqual(40);
    expect(metrics.gold_acc).toBeGreaterThanOrEqual(0);
    expect(metrics.champion_gold_acc).toBeGreaterThanOrEqual(0);
    expect(metrics.heldout_items).toBeGreaterThanOrEqual(0);
    expect(metrics.domain_items).toBeGreaterThanOrEqual(0);
    expect(await rollouts.active('bertha-chat')).toBeUndefined();
  }, 180_000);

  test('a gate that promotes starts a canary of the chosen arm against the champion; a retrained model that only ties the prompt arm does not ship', async () => {
    // Any gold result promotes: the decision path, not the model's quality, is under test here.
    const gate = {
      ...DEFAULT_EVALUATION.gate,
      primary: 'benchmark-gold' as const,
      margin: -1,
      minItems: 1,
      guards: [],
    };
    const { bus, registry, store, runner, finished, rollouts } = await setup({
      evaluation: { ...DEFAULT_EVALUATION, gate },
    });
    const run = await finished((await runner.startRun({ pipeline: 'llm-retraining', params: {}, source: 'test' })).id);
    const steps = await store.listSteps(run.id);
    expect(run.status, JSON.stringify(steps)).toBe('succeeded');
    expect(byName(steps)).toMatchObject({ gate: 'succeeded', deploy: 'succeeded' });
    // Gold is scored without the system prompt, so the prompt arm ties the champion and the
    // adapter can beat neither by the margin: the prompt arm is what ships.
    const prompt = await registry.store.getVersionByAlias('bertha-chat', 'challenger-prompt');
    const rollout = await rollouts.active('bertha-chat');
    expect(rollout).toMatchObject({
      championVersion: 'starter',
      challengerVersion: `bertha-chat/${prompt.version}`,
      share: 0.1,
    });
    const [event] = await bus.list({ type: ROLLOUT_CHANGED });
    expect(event?.payload).toMatchObject({ kind: 'start', rolloutId: rollout?.id, share: 0.1 });
    expect((await rollouts.decisions(rollout?.id as string))[0]?.reason).toMatch(
      new RegExp(`^gate promoted prompt bertha-chat/${prompt.version}: benchmark-gold`),
    );
    const [decided] = await bus.list({ type: 'gate.decided' });
    expect((decided?.payload as { reasons?: string[] } | undefined)?.reasons).toContainEqual(
      expect.stringMatching(
        /^adapter bertha-chat\/\d+ against the prompt arm on benchmark-gold: .*no better than the prompt arm, so the retrained model does not ship$/,
      ),
    );
  }, 180_000);

  test('a model.degraded event leads through the sensor and its trigger to an llm-retraining run', async () => {
    const { db, bus, store, finished } = await setup();
    const sensors = createSensors({
      triggers: store.triggers,
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
    // The starter cannot win on held-out knowledge it does not have: the gate holds it back.
    expect(byName(await store.listSteps(run.id))).toMatchObject({
      'log-model': 'succeeded',
      gate: 'succeeded',
      deploy: 'skipped',
    });
  }, 180_000);

  test('a served GGUF Bertha did not train gets LoRA on its frozen quantized weights, and the next retraining continues that adapter', async () => {
    const dir = tempDir();
    const tiny = await writeTinyLlama(dir, { weightType: 'Q8_0', fileName: 'served.Q8_0.gguf' });
    const servedBundle = {
      version: 'local',
      base: { kind: 'gguf' as const, path: tiny.modelPath },
      adapters: [],
      generation: {},
      retrieval: { enabled: true, topK: 4 },
    };
    const { objects, tracking, registry, store, runner, finished } = await setup({ servedBundle });
    const retrainOnce = async (modelVersion: string) => {
      const run = await finished(
        (await runner.startRun({ pipeline: 'llm-retraining', params: { model_version: modelVersion }, source: 'test' }))
          .id,
      );
      const steps = await store.listSteps(run.id);
      expect(run.status, JSON.stringify(steps.map((s) => [s.name, s.status, s.error]))).toBe('succeeded');
      expect(byName(steps)).toMatchObject({ 'retrain-model': 'succeeded', 'log-model': 'succeeded' });
      expect(steps.find((s) => s.name === 'retrain-model')?.progress).toBe(1);
      const key = (await store.listArtifacts(run.id)).find((a) => a.name === 'registered' && a.step === 'log-model')
        ?.objectKey as string;
      const registered = JSON.parse((await readObject(objects, key)).toString()) as RegisteredRetraining;
      const log = (await store.listLogs(run.id, { step: 'retrain-model' })).map((line) => line.message);
      return { registered, log };
    };

    const first = await retrainOnce('');
    expect(first.log).toContainEqual(expect.stringMatching(/^LoRA on .*served\.Q8_0\.gguf \(2 blocks, F32\/Q8_0\)/));
    expect(first.log).toContainEqual(expect.stringMatching(/^step 4\/4 loss /));
    const bundle = await registry.getBundle('bertha-chat', first.registered.version);
    expect(bundle.base).toEqual({ kind: 'gguf', path: tiny.modelPath });
    expect(bundle.adapters).toEqual([{ path: first.registered.modelPath, scale: 1 }]);
    expect(bundle.lineage?.parentVersion).toBe('local');
    const run = await tracking.getRun(first.registered.trackingRunId);
    const metrics = Object.fromEntries(run.data.metrics?.map((m) => [m.key, m.value]) ?? []);
    expect(metrics.adapter_bytes).toBe((await stat(first.registered.modelPath as string)).size);
    expect(metrics.peak_rss_bytes).toBeGreaterThan(0);
    expect(metrics.tokens_per_second).toBeGreaterThan(0);
    const curve = await tracking.getMetricHistory(first.registered.trackingRunId, 'train_loss');
    expect(curve.items.map((m) => m.step).sort((a, b) => a - b)).toEqual([1, 2, 3, 4]);
    const params = Object.fromEntries(run.data.params?.map((p) => [p.key, p.value]) ?? []);
    expect(params).toMatchObject({ trainer: 'gguf-lora', base_types: 'F32,Q8_0', steps: '4', rank: '4' });

    // From the adapter version: its adapter is the starting point, so nothing it learned is dropped.
    const second = await retrainOnce(`bertha-chat/${first.registered.version}`);
    expect(second.log).toContainEqual(expect.stringContaining(`continuing ${first.registered.modelPath}`));
    const secondRun = await tracking.getRun(second.registered.trackingRunId);
    const secondParams = Object.fromEntries(secondRun.data.params?.map((p) => [p.key, p.value]) ?? []);
    expect(secondParams.init_adapter).toBe(first.registered.modelPath);
    const secondBundle = await registry.getBundle('bertha-chat', second.registered.version);
    expect(secondBundle.base).toEqual({ kind: 'gguf', path: tiny.modelPath });
    expect(secondBundle.lineage?.parentVersion).toBe(`bertha-chat/${first.registered.version}`);
  }, 240_000);

  test('a GGUF of an architecture the trainer cannot adapt fails retrain-model naming it and what to configure', async () => {
    const dir = tempDir();
    const gguf = path.join(dir, 'qwen.gguf');
    await writeGguf(gguf, { metadata: { 'general.architecture': ggufValue.string('qwen2') }, tensors: [] });
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
    expect(failed?.error).toMatch(/'qwen2' model; only 'llama' GGUFs .*trainer\.command/);
  });

  test('a model served by an upstream server has no weights to fine-tune here: the prompt arm alone is benchmarked, gated and canaried', async () => {
    const dir = tempDir();
    const tiny = await writeTinyLlama(dir);
    const upstream = await startServing({ model: tiny.modelPath, modelName: 'tiny-llama' });
    onTestFinished(() => upstream.close());
    const servedBundle = {
      version: 'local',
      base: { kind: 'upstream' as const, model: 'tiny-llama' },
      adapters: [],
      generation: {},
      retrieval: { enabled: true, topK: 4 },
    };
    const gate = {
      ...DEFAULT_EVALUATION.gate,
      primary: 'benchmark-gold' as const,
      margin: -1,
      minItems: 1,
      guards: [],
    };
    const { store, runner, finished, rollouts, registry } = await setup(
      { servedBundle, evaluation: { ...DEFAULT_EVALUATION, gate } },
      `${upstream.url}/v1`,
    );
    const run = await finished((await runner.startRun({ pipeline: 'llm-retraining', params: {}, source: 'test' })).id);
    const steps = await store.listSteps(run.id);
    expect(run.status, JSON.stringify(steps.map((step) => [step.name, step.status, step.error]))).toBe('succeeded');
    expect(byName(steps)).toMatchObject({
      'retrain-model': 'succeeded',
      'log-model': 'succeeded',
      deploy: 'succeeded',
    });
    const log = (await store.listLogs(run.id, { step: 'retrain-model' })).map((line) => line.message);
    expect(log).toContainEqual(expect.stringMatching(/^no retrained arm: model local is served by an upstream server/));
    const prompt = await registry.store.getVersionByAlias('bertha-chat', 'challenger-prompt');
    expect((await registry.getBundle('bertha-chat', prompt.version)).base).toEqual(servedBundle.base);
    expect((await registry.store.searchModelVersions({ filter: "name = 'bertha-chat'" })).items).toHaveLength(1);
    expect(await rollouts.active('bertha-chat')).toMatchObject({
      championVersion: 'local',
      challengerVersion: `bertha-chat/${prompt.version}`,
    });
  }, 300_000);

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

test('llm-retraining compiles to a WorkflowTemplate with every step and an Alertmanager Sensor that passes the alert model_version', () => {
  const { definitions } = builtinPipelines({
    retraining: () => {
      throw new Error('rendering never runs a step');
    },
  });
  const manifests = renderArgoManifests(definitions, { ...configSchema.parse({}).pipelines.argo });
  expect(manifests.map(({ manifest }) => `${manifest.kind}/${manifest.metadata.name}`)).toEqual([
    'EventBus/default',
    'EventSource/alertmanager',
    'EventSource/minio',
    'WorkflowTemplate/llm-retraining',
    'Sensor/llm-retraining-on-alertmanager',
  ]);
  for (const { manifest } of manifests) expect(strictSchemaProblems(manifest)).toEqual([]);
  expect(argoReferenceProblems(manifests)).toEqual([]);
  // biome-ignore lint/suspicious/noExplicitAny: rendered manifests are walked by path
  const template = manifests[3]?.manifest as any;
  const tasks = template.spec.templates
    .flatMap((t: { dag?: { tasks: { name: string }[] } }) => t.dag?.tasks ?? [])
    .map((task: { name: string }) => task.name);
  expect(tasks).toEqual([
    'build-dataset',
    'prompt-challenger',
    'retrain-model',
    'log-model',
    'benchmark',
    'gate',
    'deploy',
  ]);
  // biome-ignore lint/suspicious/noExplicitAny: rendered manifests are walked by path
  const sensor = manifests[4]?.manifest as any;
  expect(sensor.spec.dependencies[0]).toMatchObject({
    eventSourceName: 'alertmanager',
    filters: { data: [{ path: 'body.status', value: ['firing'] }] },
  });
  const trigger = sensor.spec.triggers[0].template.argoWorkflow;
  const parameters = trigger.source.resource.spec.arguments.parameters as { name: string; value: string }[];
  const index = parameters.findIndex((parameter) => parameter.name === 'model_version');
  expect(trigger.parameters).toEqual([
    {
      src: { dependencyName: 'alertmanager', dataKey: 'body.alerts.0.labels.model_version', value: '' },
      dest: `spec.arguments.parameters.${index}.value`,
    },
  ]);
  expect(parameters.find((parameter) => parameter.name === 'window_days')?.value).toBe('30');
});
