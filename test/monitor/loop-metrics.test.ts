import path from 'node:path';
import { Registry } from 'prom-client';
import { describe, expect, onTestFinished, test } from 'vitest';
import { monitorSchema } from '../../src/config/schema.ts';
import { isoNow } from '../../src/core/ids.ts';
import { createLogger } from '../../src/core/logger.ts';
import { createSqliteDb } from '../../src/db/sqlite.ts';
import {
  type BenchmarkScores,
  chooseChallenger,
  GATE_REFUSAL_REASONS,
  type GateSettings,
  recordGateOutcome,
  type SuiteResult,
} from '../../src/eval/index.ts';
import { createSensors, type SensorRule } from '../../src/events/index.ts';
import { createLocalEventBus } from '../../src/events/local-bus.ts';
import { createLineageStore } from '../../src/lineage/index.ts';
import {
  createFeedbackStore,
  createLoopMetrics,
  createQualityWatcher,
  type LoopInterval,
  loopMetricName,
} from '../../src/monitor/index.ts';
import { createFsObjectStore } from '../../src/objects/fs.ts';
import { observeVerdict } from '../../src/pipelines/builtin/loop-timing.ts';
import { createRunStore } from '../../src/pipelines/index.ts';
import { createRolloutController, createRolloutStore } from '../../src/rollout/index.ts';
import { createEmbeddedRunLog } from '../../src/tracking/embedded-run-log.ts';
import { createModelRegistry, createRegistryStore, createTrackingStore } from '../../src/tracking/index.ts';
import { insertAnswer } from '../helpers/answers.ts';
import { histogramOf, parseExposition, sumOf } from '../helpers/metrics.ts';
import { tempDir } from '../helpers/temp.ts';

const MODEL = 'bertha-chat';
const logger = createLogger('silent');

/** A migrated SQLite database, a local bus on it, and the loop metrics on a registry of their own. */
async function setup() {
  const started = Date.now();
  const dir = tempDir();
  const db = createSqliteDb({ path: path.join(dir, 'bertha.sqlite') });
  await db.migrate();
  onTestFinished(() => db.close());
  const bus = createLocalEventBus({ db, logger });
  const registry = new Registry();
  const loop = createLoopMetrics(registry, { gateRefusalReasons: GATE_REFUSAL_REASONS });
  const scrape = async () => parseExposition(await registry.metrics());
  /** Count and sum of a loop histogram, with a bound that any duration measured in this test stays under. */
  const interval = async (name: LoopInterval, labels: Record<string, string> = {}) => ({
    ...histogramOf(await scrape(), loopMetricName(name), labels),
    bound: (Date.now() - started) / 1000,
  });
  return { db, dir, bus, loop, scrape, interval };
}

describe('the loop metrics', () => {
  test('a debounced trigger and one held back by its concurrency key count as suppressed, by reason', async () => {
    const { db, bus, loop, scrape } = await setup();
    const rule = (name: string, debounceMs: number): SensorRule => ({
      name,
      event: 'model.degraded',
      pipeline: 'llm-retraining',
      params: { model_version: '{{subject}}' },
      concurrencyKey: `${name}:{{subject}}`,
      debounceMs,
    });
    const sensors = createSensors({
      triggers: createRunStore(db).triggers,
      bus,
      rules: [rule('debounced', 600_000)],
      logger,
      metrics: loop,
    });
    const held = createSensors({
      triggers: createRunStore(db).triggers,
      bus,
      rules: [rule('held', 0)],
      logger,
      metrics: loop,
    });
    const before = await scrape();
    // Exported at 0 from the start, so `increase()` sees the first suppression.
    expect(sumOf(before, 'bertha_loop_triggers_suppressed_total', { reason: 'debounce' })).toBe(0);
    expect(before.some((sample) => sample.labels.reason === 'concurrency')).toBe(true);

    for (const subject of ['v1', 'v1']) {
      const { event } = await bus.publish({ type: 'model.degraded', source: 'test', subject, payload: {} });
      await sensors.handle(event);
      await held.handle(event);
    }
    const rows = await db.kysely.selectFrom('pipeline_triggers').select(['sensor', 'status']).orderBy('id').execute();
    expect(rows.filter((row) => row.status === 'skipped').map((row) => row.sensor)).toEqual(
      expect.arrayContaining(['debounced', 'held']),
    );
    const after = await scrape();
    // The debounce is checked first, so the debounced rule counts there only.
    expect(sumOf(after, 'bertha_loop_triggers_suppressed_total', { reason: 'debounce' })).toBe(1);
    expect(sumOf(after, 'bertha_loop_triggers_suppressed_total', { reason: 'concurrency' })).toBe(1);
  });

  test('a gate that rejects an arm counts a refusal by reason and times candidate to verdict; a retried step counts nothing more', async () => {
    const { db, dir, bus, loop, scrape, interval } = await setup();
    const objects = createFsObjectStore({ root: path.join(dir, 'objects') });
    const runs = createEmbeddedRunLog(createTrackingStore(db), objects);
    const registry = createModelRegistry({ store: createRegistryStore(db), bus, logger });
    const registered = await registry.registerBundle({
      name: MODEL,
      bundle: {
        base: { kind: 'upstream', model: 'm' },
        adapters: [],
        generation: {},
        retrieval: { enabled: true, topK: 4 },
      },
    });
    const challenger = `${MODEL}/${registered.version}`;
    const trackingRunId = await runs.startRun({ experiment: 'llm-retraining', runName: 'arm' });
    const result = (modelVersion: string, score: number): SuiteResult => ({
      suite: 'benchmark-gold',
      kind: 'multiple-choice',
      modelVersion,
      metrics: {},
      items: Array.from({ length: 30 }, (_, i) => ({ id: `q${i}`, score: score + (i % 3) * 0.01, details: {} })),
    });
    const scores: BenchmarkScores = {
      championVersion: 'starter',
      champion: [result('starter', 0.6)],
      challengers: [{ arm: 'adapter', version: challenger, trackingRunId, results: [result(challenger, 0.3)] }],
      goldVersion: 'g1',
    };
    const settings: GateSettings = {
      primary: 'benchmark-gold',
      margin: 0,
      guards: [],
      minItems: 10,
      confidence: 0.95,
      resamples: 200,
      seed: 1,
    };
    const outcome = chooseChallenger(scores, settings);
    expect(outcome.decision).toBe('reject');

    const warnings: string[] = [];
    const log = { debug: () => {}, info: () => {}, warn: (line: string) => warnings.push(line), error: () => {} };
    const decide = async () => {
      const recorded = await recordGateOutcome(
        { runs, registry, bus, lineage: createLineageStore(db) },
        { pipelineRunId: 'run_1', name: MODEL, championVersion: 'starter', outcome },
      );
      if (!recorded.duplicate) {
        await observeVerdict({ registry, model: MODEL, loop }, { log }, outcome, recorded.decidedAt);
      }
      return recorded;
    };
    expect((await decide()).duplicate).toBe(false);
    expect((await decide()).duplicate).toBe(true);
    expect(warnings).toEqual([]);

    const samples = await scrape();
    expect(sumOf(samples, 'bertha_loop_gate_refusals_total', { reason: 'not_better' })).toBe(1);
    expect(sumOf(samples, 'bertha_loop_gate_refusals_total')).toBe(1);
    const verdict = await interval('candidate_to_verdict', { model_version: challenger });
    expect(verdict.count).toBe(1);
    expect(verdict.sum).toBeGreaterThanOrEqual(0);
    expect(verdict.sum).toBeLessThan(verdict.bound);
  });

  test('rollbacks count by kind and time the rollback; a promotion times verdict to full traffic from the stored verdict', async () => {
    const { db, bus, loop, scrape, interval } = await setup();
    const promoted: string[] = [];
    const controller = createRolloutController({
      store: createRolloutStore(db),
      bus,
      logger,
      model: MODEL,
      promote: async (version) => {
        promoted.push(version);
      },
      steps: [0.5],
      policy: { minVotes: 5, minAnswers: 5, confidence: 0.95, downRateTolerance: 0.3, errorRateTolerance: 0.3 },
      loop,
    });
    expect(sumOf(await scrape(), 'bertha_loop_rollbacks_total')).toBe(0);

    await controller.start(`${MODEL}/1`, `${MODEL}/2`, 'by hand');
    await controller.rollback('an operator ended it');
    const rolledBack = await interval('time_to_rollback', { model_version: `${MODEL}/2` });
    expect(rolledBack.count).toBe(1);
    expect(rolledBack.sum).toBeLessThan(rolledBack.bound);
    expect(sumOf(await scrape(), 'bertha_loop_rollbacks_total', { kind: 'manual' })).toBe(1);
    // Nothing rolled back twice: a second manual rollback finds no running canary.
    expect(await controller.rollback('again')).toBeUndefined();

    const decidedAt = isoNow();
    await controller.start(`${MODEL}/1`, `${MODEL}/3`, 'gate promoted', { verdict: { gate: 'evt_1', decidedAt } });
    const feedback = createFeedbackStore(db);
    for (const version of [`${MODEL}/1`, `${MODEL}/3`]) {
      for (let i = 0; i < 6; i++) {
        const answer = await insertAnswer(db, { modelVersion: version });
        await feedback.record({ responseId: answer, userId: `u${i}`, rating: 'up' });
      }
    }
    expect((await controller.tick())?.verdict).toBe('advance');
    expect(promoted).toEqual([`${MODEL}/3`]);
    const traffic = await interval('verdict_to_full_traffic', { model_version: `${MODEL}/3` });
    expect(traffic.count).toBe(1);
    expect(traffic.sum).toBeGreaterThanOrEqual(0);
    expect(traffic.sum).toBeLessThan(traffic.bound);

    await controller.revertPromotion(`${MODEL}/3`, 'worse after all');
    expect(sumOf(await scrape(), 'bertha_loop_rollbacks_total', { kind: 'revert' })).toBe(1);
    expect(sumOf(await scrape(), 'bertha_loop_rollbacks_total', { kind: 'canary' })).toBe(0);
    expect((await interval('time_to_rollback')).count).toBe(2);
  });

  test('the watcher times feedback to alert from the vote that tipped the rule, once per alert', async () => {
    const { db, bus, loop, interval } = await setup();
    const store = createFeedbackStore(db);
    const watcher = createQualityWatcher({
      rules: monitorSchema.parse({ rules: { downOverUp: { for: '0s' }, downRatio: { enabled: false } } }).rules,
      store,
      bus,
      logger,
      loop,
    });
    const answer = await insertAnswer(db, { modelVersion: 'v1' });
    await store.record({ responseId: answer, userId: 'a', rating: 'down' });
    await watcher.evaluate();
    await watcher.evaluate();
    expect(await bus.list({ type: 'model.degraded' })).toHaveLength(1);
    const alert = await interval('feedback_to_alert', { model_version: 'v1' });
    expect(alert.count).toBe(1);
    expect(alert.sum).toBeGreaterThanOrEqual(0);
    expect(alert.sum).toBeLessThan(alert.bound);
  });
});
