import { onTestFinished } from 'vitest';
import { loadConfig } from '../../src/config/index.ts';
import { DEFAULT_SENSORS, sensorSchema } from '../../src/config/schema.ts';
import { createLogger } from '../../src/core/logger.ts';
import type { MetadataDb } from '../../src/db/index.ts';
import { createRuntimeEvaluator } from '../../src/eval/index.ts';
import { createSensors, publishObjectEvent } from '../../src/events/index.ts';
import { createLocalEventBus } from '../../src/events/local-bus.ts';
import { createKnowledgeRetriever } from '../../src/knowledge/index.ts';
import { createLlamaCppRuntime } from '../../src/llm/llama-cpp.ts';
import { createFeedbackStore } from '../../src/monitor/index.ts';
import { builtinPipelines } from '../../src/pipelines/builtin/index.ts';
import type { RetrainingDeps } from '../../src/pipelines/builtin/llm-retraining.ts';
import type { RunRecord } from '../../src/pipelines/index.ts';
import { createRolloutController, createRolloutStore, type RolloutRecord } from '../../src/rollout/index.ts';
import { createEmbeddedRunLog } from '../../src/tracking/embedded-run-log.ts';
import { createModelRegistry, createRegistryStore, createTrackingStore } from '../../src/tracking/index.ts';
import { insertAnswer } from '../helpers/answers.ts';
import type { DbFactory } from '../helpers/databases.ts';
import { embeddedKnowledge } from '../helpers/knowledge.ts';
import { tempDir } from '../helpers/temp.ts';
import { QUICK_TRAINER, startBuiltinRunner } from '../pipelines/builtin-runner.ts';
import { waitFor } from '../pipelines/wait.ts';

const MODEL = 'bertha-chat';
const DEFAULTS = loadConfig({}, {}).config.evaluation;
// Any result promotes and few items are scored: the recorded path, not the tiny model, is under test.
const EVALUATION = {
  ...DEFAULTS,
  domainItems: 10,
  generativeItems: 2,
  maxAnswerTokens: 8,
  gate: { ...DEFAULTS.gate, primary: 'benchmark-gold' as const, margin: -1, minItems: 1, guards: [] },
};

const CORRECTIONS = [
  'Bertha is a closed-loop LLMOps system: it serves a model, collects feedback and retrains it.',
  'Bertha retrains the model when feedback says it got worse, then registers a challenger.',
];

export interface LoopOnce {
  db: MetadataDb;
  dataDir: string;
  /** The upload event, its trigger and the vector-ingestion run it launched. */
  upload: { eventId: string; ingestion: RunRecord; documentId: string; version: string; chunkId: string };
  /** The voted-down answer, grounded on the uploaded document's chunk, and its vote. */
  thumbsDown: { answerId: string; feedbackId: string };
  retraining: RunRecord;
  rollout: RolloutRecord;
}

/**
 * One turn of the loop through the real steps: an upload event is ingested by its sensor's
 * vector-ingestion run; an answer grounded on it is voted down; llm-retraining (starter model,
 * 4 LoRA steps, a gate that promotes whatever it scores) builds the dataset, trains, registers,
 * benchmarks, gates and deploys a canary; the operator then rolls the canary back.
 */
export async function runLoopOnce(factory: DbFactory): Promise<LoopOnce> {
  const dataDir = tempDir();
  const db = await factory.create();
  onTestFinished(() => db.close());
  const logger = createLogger('silent');
  const bus = createLocalEventBus({ db, logger });
  const knowledge = await embeddedKnowledge(db, dataDir, logger);
  const { objects } = knowledge;
  const registry = createModelRegistry({ store: createRegistryStore(db), bus, logger });
  const rollout = createRolloutController({
    store: createRolloutStore(db),
    bus,
    logger,
    model: MODEL,
    promote: async (version) => {
      await registry.setAlias(MODEL, 'champion', version.split('/')[1] as string);
    },
    steps: [0.1, 0.5],
    policy: { minVotes: 20, minAnswers: 20, confidence: 0.95, downRateTolerance: 0.05, errorRateTolerance: 0.05 },
  });
  const retraining: RetrainingDeps = {
    db,
    bus,
    evaluator: createRuntimeEvaluator({
      createRuntime: (bundle) =>
        createLlamaCppRuntime({
          modelPath: (bundle.base as { path: string }).path,
          adapters: bundle.adapters,
          maxThreads: 1,
          gpu: 'off',
          parallel: 1,
          contextSize: 0,
          batchSize: 512,
          defaults: { temperature: 0, topP: 1, maxTokens: 8 },
          logger,
        }),
    }),
    evaluation: EVALUATION,
    systemPrompt: 'You are a helpful assistant.',
    retriever: createKnowledgeRetriever({ embedder: knowledge.embedder, vectors: knowledge.vectors, mode: 'hybrid' }),
    rollout,
    objects,
    runs: createEmbeddedRunLog(createTrackingStore(db), objects),
    registry,
    logger,
    dataDir,
    model: MODEL,
    servedBundle: undefined,
    retrievalTopK: 4,
    trainer: QUICK_TRAINER,
  };
  const { store, runner, finished } = startBuiltinRunner({
    db,
    objects,
    logger,
    builtin: builtinPipelines({ knowledge: () => knowledge, retraining: () => retraining }),
    concurrency: 1,
    leaseMs: 30_000,
    runTimeoutMs: 240_000,
  });
  onTestFinished(
    createSensors({
      triggers: store.triggers,
      bus,
      rules: DEFAULT_SENSORS.map((sensor) => sensorSchema.parse(sensor)),
      logger,
    }).start(),
  );

  // Upload: the object.created event, its sensor's trigger, the vector-ingestion run.
  const key = 'documents/bertha.md';
  await objects.put(key, '# Bertha\nBertha retrains its model on the feedback its users give.\n');
  const { event } = await publishObjectEvent(bus, { type: 'object.created', source: 'upload', key });
  await bus.drain();
  const trigger = await waitFor('the ingestion trigger to launch', async () => {
    const row = await db.kysely
      .selectFrom('pipeline_triggers')
      .selectAll()
      .where('event_id', '=', event.id)
      .executeTakeFirst();
    return row?.run_id ? row : undefined;
  });
  const ingestion = await finished(trigger.run_id as string);
  const chunk = await db.kysely.selectFrom('chunks').selectAll().executeTakeFirstOrThrow();

  // Answers and votes: corrections to train on, and one grounded answer voted down.
  const feedback = createFeedbackStore(db);
  for (const [index, correction] of CORRECTIONS.entries()) {
    const answer = await insertAnswer(db, { answer: 'I do not know.', modelVersion: 'starter' });
    await feedback.record({ responseId: answer, userId: `user-${index}`, rating: 'up', correction });
  }
  const answerId = await insertAnswer(db, { answer: 'Bertha is a boat.', modelVersion: 'starter' });
  const source = {
    documentId: chunk.document_id,
    documentKey: key,
    documentVersion: chunk.document_version,
    chunkId: chunk.id,
    score: 0.9,
  };
  await db.kysely
    .updateTable('answers')
    .set({ sources_json: JSON.stringify([source]) })
    .where('id', '=', answerId)
    .execute();
  const voted = await feedback.record({ responseId: answerId, userId: 'user-down', rating: 'down' });

  const run = await finished((await runner.startRun({ pipeline: 'llm-retraining', params: {}, source: 'test' })).id);
  const active = await createRolloutStore(db).active(MODEL);
  if (!active) throw new Error(`llm-retraining deployed no canary: ${run.status} ${run.error}`);
  const rolledBack = (await rollout.rollback('the operator saw more thumbs down on the canary')) as RolloutRecord;
  return {
    db,
    dataDir,
    upload: {
      eventId: event.id,
      ingestion,
      documentId: chunk.document_id,
      version: chunk.document_version,
      chunkId: chunk.id,
    },
    thumbsDown: { answerId, feedbackId: voted.feedback.id },
    retraining: run,
    rollout: rolledBack,
  };
}
