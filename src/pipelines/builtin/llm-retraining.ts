import type { Config } from '../../config/index.ts';
import type { MetadataDb } from '../../db/index.ts';
import {
  type BenchmarkScores,
  benchmarkArms,
  benchmarkSuites,
  type ChallengerArm,
  chooseChallenger,
  type Evaluator,
  GATE_DECIDED,
  type GateDecidedPayload,
  type GateOutcome,
  recordGateOutcome,
  suiteMetrics,
} from '../../eval/index.ts';
import type { EventBus } from '../../events/index.ts';
import type { Retriever } from '../../knowledge/index.ts';
import { lineageDatasets } from '../../lineage/index.ts';
import type { LoopMetrics } from '../../monitor/index.ts';
import type { RolloutController } from '../../rollout/index.ts';
import {
  type RegisteredRetraining,
  type RunLog,
  registerPromptChallenger,
  registerRetrained,
} from '../../tracking/index.ts';
import {
  type BuiltDataset,
  buildDataset,
  fewShotExamples,
  fewShotSystemPrompt,
  findTrainedVersion,
  heldOutQuestions,
  heldOutTexts,
  type RetrainDeps,
  readExamples,
  resolveBase,
  retrain,
  type TrainingOutcome,
} from '../../train/index.ts';
import { definePipeline } from '../definition.ts';
import type { StepContext, StepHandler, StepResult } from '../handlers.ts';
import { observeCandidate, observeVerdict } from './loop-timing.ts';
import { datasetLineage } from './retraining-lineage.ts';

/**
 * The seed's retraining workflow: build-dataset -> (prompt-challenger | retrain-model ->
 * log-model) -> benchmark -> gate -> deploy. A `model.degraded` event starts it (sensor
 * `retrain-on-degradation`; on Argo, the Alertmanager Sensor). Two challenger arms come out of
 * one dataset: the retrained model (`challenger`) and the base with approved answers in its
 * prompt (`challenger-prompt`). benchmark scores the champion and both arms on the same items:
 * the log-likelihood suites and the seed's hallucination, fact-check and subject-matter
 * evaluations, in one step so that each version is loaded once and each answer generated once
 * for all three. The gate decides each arm with a paired bootstrap and picks one; deploy
 * starts its canary, which the rollout controller promotes or rolls back on live feedback. A
 * gate that picks no arm ends the run there, with its reasons.
 */
export const llmRetraining = definePipeline({
  name: 'llm-retraining',
  description: 'fine-tune the served model on recent feedback and the knowledge base, and register it as challenger',
  params: {
    model_version: {
      type: 'string',
      description: 'the degraded model version (`<model>/<n>` in the registry); empty: the champion or served model',
      default: '',
    },
    window_days: {
      type: 'number',
      description: 'feedback of the last N days goes into the dataset',
      default: 30,
    },
  },
  steps: [
    {
      name: 'build-dataset',
      handler: 'train.build-dataset',
      description:
        'feedback of the window and knowledge-base chunks -> versioned train/validation sets; ends the run when a version was already trained on this dataset from the same base',
      params: ['window_days', 'model_version'],
      outputs: ['dataset'],
      retry: { limit: 2, backoffMs: 2_000 },
      timeoutMs: 30 * 60_000,
    },
    {
      name: 'prompt-challenger',
      handler: 'train.prompt-challenger',
      description:
        'the in-context arm: the base model with approved answers from the training feedback in its system prompt, registered as challenger-prompt',
      params: ['model_version'],
      inputs: { dataset: { from: 'build-dataset', artifact: 'dataset' } },
      outputs: ['registered'],
      retry: { limit: 2, backoffMs: 2_000 },
      timeoutMs: 30 * 60_000,
    },
    {
      name: 'retrain-model',
      handler: 'train.retrain-model',
      description: 'LoRA on the served model (or the configured command trainer) over the dataset',
      params: ['model_version'],
      inputs: { dataset: { from: 'build-dataset', artifact: 'dataset' } },
      outputs: ['model', 'training'],
      timeoutMs: 24 * 3_600_000,
    },
    {
      name: 'log-model',
      handler: 'tracking.log-model',
      description: 'tracking run with params, metrics and the adapter; registry version aliased challenger',
      inputs: {
        dataset: { from: 'build-dataset', artifact: 'dataset' },
        model: { from: 'retrain-model', artifact: 'model' },
        training: { from: 'retrain-model', artifact: 'training' },
      },
      outputs: ['registered'],
      retry: { limit: 2, backoffMs: 2_000 },
      timeoutMs: 30 * 60_000,
    },
    {
      name: 'benchmark',
      handler: 'eval.benchmark',
      description:
        'the champion and both arms scored on the same items through the serving runtime: benchmark-gold, benchmark-domain (cloze from held-out knowledge), held-out perplexity, and hallucination-, factcheck- and subject-matter-eval on held-out questions; per-item scores to the tracker',
      inputs: {
        dataset: { from: 'build-dataset', artifact: 'dataset' },
        registered: { from: 'log-model', artifact: 'registered' },
        prompt: { from: 'prompt-challenger', artifact: 'registered' },
      },
      outputs: ['scores'],
      retry: { limit: 1, backoffMs: 2_000 },
      timeoutMs: 6 * 3_600_000,
    },
    {
      name: 'gate',
      handler: 'eval.gate',
      description:
        'paired bootstrap on per-item differences for each arm: promote, reject or inconclusive, with the interval and reasons; a retrained model that only ties the prompt arm does not ship',
      inputs: { scores: { from: 'benchmark', artifact: 'scores' } },
      outputs: ['verdict'],
      retry: { limit: 2, backoffMs: 2_000 },
      timeoutMs: 10 * 60_000,
    },
    {
      name: 'deploy',
      handler: 'rollout.deploy',
      description: 'a canary of the challenger against the champion, promoted or rolled back on live feedback',
      inputs: {
        scores: { from: 'benchmark', artifact: 'scores' },
        verdict: { from: 'gate', artifact: 'verdict' },
      },
      outputs: ['rollout'],
      retry: { limit: 2, backoffMs: 2_000 },
      timeoutMs: 10 * 60_000,
    },
  ],
  // Alertmanager's webhook body, as Argo Events' webhook EventSource wraps it: the rules group
  // alerts by model_version, so the first alert names the degraded version.
  argoEvents: [{ source: 'alertmanager', parameters: { model_version: 'body.alerts.0.labels.model_version' } }],
});

export interface RetrainingDeps extends RetrainDeps {
  db: MetadataDb;
  /** Where the run's decisions (`retraining.skipped`, `gate.decided`) are published and stored. */
  bus: EventBus;
  /** Where the steps record their tracking runs (`tracking.uri` or the embedded tracker). */
  runs: RunLog;
  /** Scores bundles through the serving runtime. */
  evaluator: Evaluator;
  evaluation: Config['evaluation'];
  rollout: RolloutController;
  /** The passages chat retrieves, for the generative suites' questions. */
  retriever: Retriever;
  /** The served system prompt (`serving.systemPrompt`) a bundle without its own uses; the prompt arm extends it. */
  systemPrompt: string;
  /** The loop's figures: dataset to candidate, candidate to verdict, gate refusals. */
  loop?: LoopMetrics | undefined;
}

/** Why a step has no arm to hand on (no approved answers, an upstream model with no weights here). */
interface Skipped {
  skipped: string;
}

/** What prompt-challenger and log-model leave: the registered arm, or why there is none. */
type ArmOutput = RegisteredRetraining | Skipped;

/** Payload of `retraining.skipped`: the evidence that the run had nothing new to learn. */
export interface RetrainingSkippedPayload {
  runId: string;
  datasetVersion: string;
  baseVersion: string;
  /** The registry version already trained on this dataset from this base. */
  existingVersion: string;
  reason: string;
}

/** Progress arrives from a child process's callbacks, which cannot await the write. */
function reporter(context: StepContext) {
  return {
    info: (message: string, fields?: Record<string, unknown>) => context.log.info(message, fields),
    progress: (fraction: number, message: string) => {
      context.progress(fraction, message).catch((error: unknown) => {
        context.log.warn(`could not record progress: ${(error as Error).message}`);
      });
    },
  };
}

async function buildDatasetStep(deps: RetrainingDeps, context: StepContext): Promise<StepResult | undefined> {
  const to = new Date();
  const from = new Date(to.getTime() - Number(context.params.window_days) * 86_400_000);
  const dataset = await buildDataset(
    { db: deps.db, objects: deps.objects, runs: deps.runs, logger: deps.logger },
    {
      window: { from: from.toISOString(), to: to.toISOString() },
      validationFraction: deps.trainer.lora.validationFraction,
    },
  );
  context.log.info(`dataset ${dataset.version}: ${dataset.counts.train} train, ${dataset.counts.valid} valid`, {
    ...dataset.counts,
  });
  await context.artifacts.writeJson('dataset', dataset);
  const lineage = await datasetLineage(deps, dataset, context.runId);
  await context.lineage.link(lineage.edges);
  context.lineage.read(lineageDatasets.feedback, ...lineage.documents);
  context.lineage.wrote(lineageDatasets.dataset(dataset.version));
  // Unchanged data (an alert still firing after a restart) must not train a second copy.
  const trained = await findTrainedVersion(deps, String(context.params.model_version ?? ''), dataset);
  if (!trained) return undefined;
  const reason = `dataset ${dataset.version} is unchanged and ${trained.existing} was already trained on it from ${trained.base}`;
  await deps.bus.publish<RetrainingSkippedPayload>({
    type: 'retraining.skipped',
    source: 'llm-retraining',
    subject: trained.existing,
    dedupeKey: `retraining.skipped:${context.runId}`,
    payload: {
      runId: context.runId,
      datasetVersion: dataset.version,
      baseVersion: trained.base,
      existingVersion: trained.existing,
      reason,
    },
  });
  return { skipRemaining: reason };
}

async function retrainStep(deps: RetrainingDeps, context: StepContext): Promise<void> {
  const dataset = await context.inputs.json<BuiltDataset>('dataset');
  context.lineage.read(lineageDatasets.dataset(dataset.version));
  const trained = await retrain(
    deps,
    dataset,
    String(context.params.model_version ?? ''),
    reporter(context),
    context.signal,
  );
  if ('skipped' in trained) {
    context.log.info(`no retrained arm: ${trained.skipped}`);
    await context.artifacts.write('model', Buffer.alloc(0));
    await context.artifacts.writeJson('training', trained satisfies Skipped);
    return;
  }
  await context.artifacts.write('model', trained.model);
  await context.artifacts.writeJson('training', trained.outcome);
}

async function logModelStep(deps: RetrainingDeps, context: StepContext): Promise<void> {
  const dataset = await context.inputs.json<BuiltDataset>('dataset');
  const outcome = await context.inputs.json<TrainingOutcome | Skipped>('training');
  if ('skipped' in outcome) {
    await context.artifacts.writeJson('registered', outcome satisfies Skipped);
    return;
  }
  const registered = await registerRetrained(deps, {
    pipelineRunId: context.runId,
    dataset,
    kind: outcome.kind,
    baseGguf: outcome.baseGguf,
    parentVersion: outcome.parentVersion,
    params: outcome.params,
    metrics: outcome.metrics,
    curves: outcome.curves,
    body: await context.inputs.read('model'),
  });
  await recordTrainedOn(context, dataset, registered, {});
  await observeCandidate(deps, context, dataset, registered);
  context.log.info(
    `registered ${registered.name}/${registered.version} as ${registered.alias} (runs: ${deps.runs.target})`,
    {
      trackingRunId: registered.trackingRunId,
    },
  );
  await context.artifacts.writeJson('registered', registered);
}

async function promptChallengerStep(deps: RetrainingDeps, context: StepContext): Promise<void> {
  const dataset = await context.inputs.json<BuiltDataset>('dataset');
  const count = deps.evaluation.promptArm.examples;
  const examples = fewShotExamples(await readExamples(deps.objects, dataset.trainKey), count);
  if (count === 0 || examples.length === 0) {
    const skipped =
      count === 0
        ? 'the prompt arm is off (evaluation.promptArm.examples is 0)'
        : `dataset ${dataset.version} has no approved answers to show`;
    context.log.info(`no prompt arm: ${skipped}`);
    await context.artifacts.writeJson('registered', { skipped } satisfies ArmOutput);
    return;
  }
  const base = (await resolveBase(deps, String(context.params.model_version ?? ''), context.signal)).bundle;
  const registered = await registerPromptChallenger(deps, {
    pipelineRunId: context.runId,
    dataset,
    base,
    systemPrompt: fewShotSystemPrompt(base.systemPrompt ?? deps.systemPrompt, examples),
    exampleIds: examples.map((example) => example.id),
  });
  await recordTrainedOn(context, dataset, registered, { examples: examples.length });
  await observeCandidate(deps, context, dataset, registered);
  context.log.info(
    `registered ${registered.name}/${registered.version} as ${registered.alias}: ${base.version} with ${examples.length} approved answers in its prompt`,
  );
  await context.artifacts.writeJson('registered', registered satisfies ArmOutput);
}

async function benchmarkStep(deps: RetrainingDeps, context: StepContext): Promise<void> {
  const dataset = await context.inputs.json<BuiltDataset>('dataset');
  const registered = [
    await context.inputs.json<ArmOutput>('registered'),
    await context.inputs.json<ArmOutput>('prompt'),
  ].filter((arm): arm is RegisteredRetraining => !('skipped' in arm));
  const arms: ChallengerArm[] = [];
  for (const arm of registered) {
    arms.push({
      arm: arm.arm,
      bundle: await deps.registry.getBundle(arm.name, arm.version),
      trackingRunId: arm.trackingRunId,
    });
  }
  const champion = (await resolveBase(deps, '', context.signal)).bundle;
  context.lineage.read(
    lineageDatasets.dataset(dataset.version),
    ...[champion, ...arms.map((arm) => arm.bundle)].map((bundle) => lineageDatasets.model(bundle.version)),
  );
  const evaluation = deps.evaluation;
  const suites = await benchmarkSuites(
    await heldOutTexts(deps.objects, dataset),
    await heldOutQuestions(deps.objects, dataset),
    {
      domainItems: evaluation.domainItems,
      generativeItems: evaluation.generativeItems,
      generative: {
        maxAnswerTokens: evaluation.maxAnswerTokens,
        supportThreshold: evaluation.supportThreshold,
        correctF1: evaluation.correctF1,
      },
      retrieve: (question) => deps.retriever.retrieve(question, { topK: deps.retrievalTopK, signal: context.signal }),
    },
  );
  context.log.info(
    `scoring ${[champion.version, ...arms.map((arm) => arm.bundle.version)].join(', ')}: ${suites.suites.map((suite) => `${suite.name} (${suite.items.length})`).join(', ')}`,
  );
  const scores = await benchmarkArms(
    deps.evaluator,
    champion,
    arms,
    suites,
    reporter(context).progress,
    context.signal,
  );
  for (const arm of scores.challengers) {
    await deps.runs.log(arm.trackingRunId, {
      params: { gold_version: scores.goldVersion, champion_version: champion.version },
      metrics: { ...suiteMetrics(arm.results), ...suiteMetrics(scores.champion, 'champion_') },
    });
    // Per-item scores of both versions, so a verdict can be recomputed from the tracker alone.
    await deps.runs.logArtifact(
      arm.trackingRunId,
      'eval/scores.json',
      Buffer.from(JSON.stringify({ champion: scores.champion, challenger: arm.results })),
    );
  }
  for (const result of [...scores.champion, ...scores.challengers.flatMap((arm) => arm.results)]) {
    context.log.info(
      `${result.modelVersion} ${result.suite}: ${Object.entries(result.metrics)
        .map(([key, value]) => `${key} ${Number(value.toFixed(4))}`)
        .join(', ')}`,
    );
  }
  await context.artifacts.writeJson('scores', scores);
}

async function gateStep(deps: RetrainingDeps, context: StepContext): Promise<StepResult | undefined> {
  const scores = await context.inputs.json<BenchmarkScores>('scores');
  const outcome = chooseChallenger(scores, deps.evaluation.gate);
  for (const arm of outcome.arms) {
    context.log.info(`gate ${arm.verdict.decision} for ${arm.arm} ${arm.version}: ${arm.verdict.reasons.join('; ')}`);
  }
  const summary = `gate ${outcome.decision} against ${scores.championVersion}: ${outcome.reasons.join('; ')}`;
  context.log.info(summary);
  await context.artifacts.writeJson('verdict', outcome);
  const recorded = await recordGateOutcome(
    { runs: deps.runs, registry: deps.registry, bus: deps.bus, lineage: context.lineage },
    { pipelineRunId: context.runId, name: deps.model, championVersion: scores.championVersion, outcome },
  );
  // A retried step finds its verdict stored already and has observed it.
  if (!recorded.duplicate) await observeVerdict(deps, context, outcome, recorded.decidedAt);
  return outcome.chosen ? undefined : { skipRemaining: summary };
}

async function deployStep(deps: RetrainingDeps, context: StepContext): Promise<void> {
  const scores = await context.inputs.json<BenchmarkScores>('scores');
  const outcome = await context.inputs.json<GateOutcome>('verdict');
  const chosen = outcome.chosen;
  if (!chosen) throw new Error('deploy runs only after a gate that chose an arm');
  // The gate's decision is its `gate.decided` event (one per run), which names the chosen version.
  const decided = (await deps.bus.list({ type: GATE_DECIDED, subject: chosen.version })).find(
    (event) => (event.payload as GateDecidedPayload).runId === context.runId,
  );
  const rollout = await deps.rollout.start(
    scores.championVersion,
    chosen.version,
    `gate promoted ${chosen.arm} ${chosen.version}: ${chosen.verdict.reasons.join('; ')}`,
    // Stored with the rollout, so its promotion times verdict-to-full-traffic from the verdict.
    decided ? { verdict: { gate: decided.id, decidedAt: decided.createdAt } } : {},
  );
  if (decided) {
    await context.lineage.link([
      {
        from: { kind: 'gate', id: decided.id },
        to: { kind: 'rollout', id: rollout.id },
        relation: 'started',
        attributes: { share: rollout.share },
      },
    ]);
  } else {
    context.log.warn(
      `no gate.decided event of run ${context.runId} names ${chosen.version}: the rollout is not linked to its gate`,
    );
  }
  context.lineage.read(lineageDatasets.model(chosen.version));
  context.lineage.wrote(lineageDatasets.rollout(rollout.id));
  context.log.info(
    `canary ${rollout.id}: ${chosen.version} serves ${Math.round(rollout.share * 100)}% of conversations`,
  );
  await context.artifacts.writeJson('rollout', rollout);
}

/** The arm's tracking run trained on the dataset; its registry version is what the step wrote. */
async function recordTrainedOn(
  context: StepContext,
  dataset: BuiltDataset,
  registered: RegisteredRetraining,
  attributes: Record<string, unknown>,
): Promise<void> {
  await context.lineage.link([
    {
      from: { kind: 'dataset', id: dataset.version },
      to: { kind: 'tracking-run', id: registered.trackingRunId },
      relation: 'trained',
      attributes: { arm: registered.arm, ...attributes },
    },
  ]);
  context.lineage.read(lineageDatasets.dataset(dataset.version));
  context.lineage.wrote(lineageDatasets.model(`${registered.name}/${registered.version}`));
}

/** The retraining steps; deps are resolved when a step runs (the registry is created after the catalog). */
export function llmRetrainingHandlers(retraining: () => RetrainingDeps): Record<string, StepHandler> {
  return {
    'train.build-dataset': (context) => buildDatasetStep(retraining(), context),
    'train.prompt-challenger': (context) => promptChallengerStep(retraining(), context),
    'train.retrain-model': (context) => retrainStep(retraining(), context),
    'tracking.log-model': (context) => logModelStep(retraining(), context),
    'eval.benchmark': (context) => benchmarkStep(retraining(), context),
    'eval.gate': (context) => gateStep(retraining(), context),
    'rollout.deploy': (context) => deployStep(retraining(), context),
  };
}
