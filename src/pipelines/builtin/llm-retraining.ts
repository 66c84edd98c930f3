import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BerthaError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import type { MetadataDb } from '../../db/index.ts';
import type { ModelBundle } from '../../models/index.ts';
import { type ObjectStore, readObject } from '../../objects/index.ts';
import { CHALLENGER, experimentIdFor, type ModelRegistry, type TrackingStore } from '../../tracking/index.ts';
import {
  type BuiltDataset,
  buildDataset,
  type CommandTrainerSpec,
  type DatasetExample,
  ensureStarterModel,
  exportLoraGguf,
  readModelCheckpoint,
  runCommandTrainer,
  runTraining,
  tokenizerFromMetadata,
} from '../../train/index.ts';
import { definePipeline } from '../definition.ts';
import type { StepContext, StepHandler } from '../handlers.ts';

/**
 * The first wave of the seed's retraining workflow: build-dataset -> retrain-model ->
 * log-model. A `model.degraded` event starts it (sensor `retrain-on-degradation`). The
 * evaluation steps (gold and domain benchmarks, hallucination, fact-check and subject-matter
 * evals), the promotion gate and the canary deploy are NOT here yet: they join in the next
 * wave. Until then the new version only gets the `challenger` alias; `champion` moves by
 * hand (`bertha models promote`) or, later, by the gate.
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
      description: 'feedback of the window and knowledge-base chunks -> versioned train/validation sets',
      params: ['window_days'],
      outputs: ['dataset'],
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
  ],
});

export const RETRAINING_EXPERIMENT = 'llm-retraining';

export interface RetrainingDeps {
  db: MetadataDb;
  objects: ObjectStore;
  tracking: TrackingStore;
  registry: ModelRegistry;
  logger: Logger;
  dataDir: string;
  /** Registered model whose versions retraining adds (`config.tracking.model`). */
  model: string;
  /** What `bertha up` serves when the registry has no champion (`configuredBundle`). */
  servedBundle: ModelBundle | undefined;
  trainer: {
    threads: number;
    /** The starter model's recipe steps, so its cached checkpoint is found. */
    starterSteps: number;
    lora: { steps: number; rank: number; alpha: number; learningRate: number; batchSize: number };
    command?: CommandTrainerSpec | undefined;
  };
}

export class RetrainingError extends BerthaError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('retraining_failed', message, 422, details);
  }
}

/** What retrain-model hands to log-model (JSON). */
export interface TrainingOutcome {
  trainer: 'lora' | 'command';
  /** `adapter`: the `model` artifact is a LoRA GGUF on `baseGguf`; `model`: a whole GGUF. */
  kind: 'adapter' | 'model';
  baseGguf: string;
  parentVersion: string;
  params: Record<string, string | number>;
  metrics: Record<string, number>;
}

interface BaseModel {
  bundle: ModelBundle;
  /** The Bertha checkpoint beside the GGUF, when Bertha trained it. */
  checkpoint: string | undefined;
}

const exists = (file: string) =>
  stat(file).then(
    () => true,
    () => false,
  );

/**
 * The model to retrain: the degraded registry version when the event names one, else the
 * champion, else what `bertha up` serves, else the starter model. A GGUF that Bertha trained
 * has its checkpoint (`checkpoint.safetensors`) beside it; that is what LoRA adapts.
 */
async function resolveBase(deps: RetrainingDeps, modelVersion: string, signal: AbortSignal): Promise<BaseModel> {
  let bundle: ModelBundle | undefined;
  const named = /^(?:(.+)\/)?(\d+)$/.exec(modelVersion);
  if (named && (named[1] === undefined || named[1] === deps.model)) {
    bundle = await deps.registry.getBundle(deps.model, named[2] as string).catch((error: unknown) => {
      if ((error as { code?: string }).code === 'RESOURCE_DOES_NOT_EXIST') return undefined;
      throw error;
    });
  }
  bundle ??= await deps.registry.resolveAlias(deps.model, 'champion');
  bundle ??= deps.servedBundle;
  if (!bundle) {
    const starter = await ensureStarterModel({
      dataDir: deps.dataDir,
      threads: deps.trainer.threads,
      steps: deps.trainer.starterSteps,
      signal,
      logger: deps.logger,
    });
    return {
      bundle: {
        version: 'starter',
        base: { kind: 'gguf', path: starter.modelPath },
        adapters: [],
        generation: {},
        retrieval: { enabled: true, topK: 4 },
      },
      checkpoint: starter.checkpointPath,
    };
  }
  if (bundle.base.kind !== 'gguf') {
    throw new RetrainingError(
      `model ${bundle.version} is served by an upstream server (${bundle.base.model}); retraining needs a GGUF base`,
      { version: bundle.version },
    );
  }
  const beside = path.join(path.dirname(bundle.base.path), 'checkpoint.safetensors');
  return { bundle, checkpoint: (await exists(beside)) ? beside : undefined };
}

/** The dataset as plain text for a causal LM: question and answer, or a knowledge passage. */
function exampleText(example: DatasetExample): string {
  return example.kind === 'feedback' ? `${example.prompt}\n${example.completion}\n\n` : `${example.text}\n\n`;
}

function parseJsonl(body: Buffer): DatasetExample[] {
  return body
    .toString('utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as DatasetExample);
}

/** Progress arrives from a child process's callbacks, which cannot await the write. */
function report(context: StepContext, fraction: number, message: string): void {
  context.progress(fraction, message).catch((error: unknown) => {
    context.log.warn(`could not record progress: ${(error as Error).message}`);
  });
}

async function retrainModel(deps: RetrainingDeps, context: StepContext): Promise<void> {
  const dataset = await context.inputs.json<BuiltDataset>('dataset');
  if (dataset.counts.train === 0) {
    throw new RetrainingError(
      `dataset ${dataset.version} has no training examples (feedback window ${dataset.window.from} .. ${dataset.window.to})`,
    );
  }
  const base = await resolveBase(deps, String(context.params.model_version ?? ''), context.signal);
  const baseGguf = (base.bundle.base as { path: string }).path;
  const work = await mkdtemp(path.join(tmpdir(), 'bertha-retrain-'));
  try {
    const command = deps.trainer.command;
    if (command) {
      const train = path.join(work, 'train.jsonl');
      const valid = path.join(work, 'valid.jsonl');
      await writeFile(train, await readObject(deps.objects, dataset.trainKey));
      await writeFile(valid, await readObject(deps.objects, dataset.validKey));
      context.log.info(`command trainer on ${baseGguf}`, { argv: command.command });
      const result = await runCommandTrainer(
        command,
        { train, valid, base: baseGguf, output: path.join(work, 'out') },
        {
          signal: context.signal,
          logger: deps.logger,
          onProgress: (p) => {
            if (p.steps) report(context, p.step / p.steps, `step ${p.step}/${p.steps}`);
            context.log.info(`step ${p.step}${p.steps ? `/${p.steps}` : ''}`, p);
          },
        },
      );
      await context.artifacts.write('model', await readFile(result.path));
      const outcome: TrainingOutcome = {
        trainer: 'command',
        kind: result.kind,
        baseGguf,
        parentVersion: base.bundle.version,
        params: { trainer: 'command', argv: command.command.join(' ') },
        metrics: result.metrics,
      };
      await context.artifacts.writeJson('training', outcome);
      return;
    }
    if (!base.checkpoint) {
      throw new RetrainingError(
        `model ${base.bundle.version} (${baseGguf}) has no Bertha checkpoint, so LoRA on this machine cannot ` +
          'adapt it; configure an external trainer in trainer.command (docs/training.md)',
        { version: base.bundle.version, base: baseGguf },
      );
    }
    const { metadata, config: modelConfig } = await readModelCheckpoint(base.checkpoint);
    const tokenizer = tokenizerFromMetadata(metadata);
    const text = parseJsonl(await readObject(deps.objects, dataset.trainKey))
      .map(exampleText)
      .join('');
    const tokens = Int32Array.from(tokenizer.encode(text));
    if (tokens.length < 3) throw new RetrainingError(`dataset ${dataset.version} has too little text to train on`);
    const tokensPath = path.join(work, 'train.tokens');
    await writeFile(tokensPath, Buffer.from(tokens.buffer));
    const lora = deps.trainer.lora;
    const params = {
      trainer: 'lora',
      steps: lora.steps,
      rank: lora.rank,
      alpha: lora.alpha,
      learning_rate: lora.learningRate,
      batch_size: lora.batchSize,
      sequence_length: Math.min(modelConfig.contextLength, tokens.length - 1),
      train_tokens: tokens.length,
    };
    context.log.info(`LoRA on ${base.checkpoint}: ${tokens.length} tokens, ${lora.steps} steps`, params);
    const result = await runTraining(
      {
        mode: 'lora',
        base: base.checkpoint,
        lora: { rank: lora.rank, alpha: lora.alpha, targets: ['attn_q', 'attn_v', 'ffn_up', 'ffn_down', 'output'] },
        trainTokens: tokensPath,
        steps: lora.steps,
        batchSize: lora.batchSize,
        sequenceLength: params.sequence_length,
        learningRate: lora.learningRate,
        threads: deps.trainer.threads,
        output: path.join(work, 'adapter.safetensors'),
      },
      {
        signal: context.signal,
        logger: deps.logger,
        onStart: (pid) => context.log.info(`training process ${pid} started`),
        onProgress: (p) => {
          report(context, p.step / p.steps, `step ${p.step}/${p.steps}, loss ${p.loss.toFixed(3)}`);
          context.log.info(`step ${p.step}/${p.steps} loss ${p.loss.toFixed(4)}`, {
            tokensPerSecond: Math.round(p.tokensPerSecond),
          });
        },
      },
    );
    const adapter = path.join(work, 'adapter.gguf');
    await exportLoraGguf(result.output, adapter);
    await context.artifacts.write('model', await readFile(adapter));
    const outcome: TrainingOutcome = {
      trainer: 'lora',
      kind: 'adapter',
      baseGguf,
      parentVersion: base.bundle.version,
      params,
      metrics: {
        final_loss: result.finalLoss,
        tokens_per_second: result.tokensPerSecond,
        trainable_parameters: result.trainableParameters,
      },
    };
    context.log.info(`final loss ${result.finalLoss.toFixed(3)}, ${result.tokensPerSecond.toFixed(0)} tokens/s`);
    await context.artifacts.writeJson('training', outcome);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** What log-model leaves: the tracking run and the registry version. */
export interface RegisteredRetraining {
  trackingRunId: string;
  name: string;
  version: string;
  alias: string;
  modelPath: string;
}

async function logModel(deps: RetrainingDeps, context: StepContext): Promise<void> {
  const dataset = await context.inputs.json<BuiltDataset>('dataset');
  const outcome = await context.inputs.json<TrainingOutcome>('training');
  const file = outcome.kind === 'adapter' ? 'adapter.gguf' : 'model.gguf';
  // The chat service loads local files: the model lives under the data dir, keyed by pipeline run.
  const modelPath = path.join(deps.dataDir, 'models', 'llm-retraining', context.runId, file);
  await mkdir(path.dirname(modelPath), { recursive: true });
  const body = await context.inputs.read('model');
  await writeFile(modelPath, body);

  const tracking = deps.tracking;
  const run = await tracking.createRun({
    experimentId: await experimentIdFor(tracking, RETRAINING_EXPERIMENT),
    runName: `retrain-${dataset.version}`,
    tags: [
      { key: 'bertha.pipeline_run', value: context.runId },
      { key: 'bertha.parent_version', value: outcome.parentVersion },
      { key: 'bertha.dataset_run', value: dataset.trackingRunId },
    ],
  });
  const runId = run.info.run_id;
  const now = Date.now();
  await tracking.logBatch(runId, {
    params: [
      { key: 'dataset_version', value: dataset.version },
      { key: 'window_from', value: dataset.window.from },
      { key: 'window_to', value: dataset.window.to },
      { key: 'base_gguf', value: outcome.baseGguf },
      { key: 'parent_version', value: outcome.parentVersion },
      ...Object.entries(outcome.params).map(([key, value]) => ({ key, value: String(value) })),
    ],
    metrics: [
      ...Object.entries(dataset.counts).map(([key, value]) => ({ key: `examples_${key}`, value })),
      ...Object.entries(outcome.metrics).map(([key, value]) => ({ key, value })),
    ].map((metric) => ({ ...metric, timestamp: now, step: 0 })),
  });
  await tracking.logInputs(runId, [
    {
      tags: [{ key: 'mlflow.data.context', value: 'training' }],
      dataset: {
        name: 'bertha-feedback-knowledge',
        digest: dataset.version,
        source_type: 'bertha',
        source: path.posix.dirname(dataset.manifestKey),
      },
    },
  ]);
  // The run's artifact root is `mlflow-artifacts:/<experiment>/<run>/artifacts`, served by the
  // artifact proxy from the ObjectStore under the same path.
  const artifactRoot = run.info.artifact_uri.replace(/^mlflow-artifacts:\/+/, 'mlflow-artifacts/');
  await deps.objects.put(`${artifactRoot}/${file}`, body);

  const bundle: Omit<ModelBundle, 'version'> = {
    base: { kind: 'gguf', path: outcome.kind === 'adapter' ? outcome.baseGguf : modelPath },
    adapters: outcome.kind === 'adapter' ? [{ path: modelPath, scale: 1 }] : [],
    generation: {},
    retrieval: { enabled: true, topK: 4 },
    lineage: {
      runId,
      trainingDataSnapshot: dataset.manifestKey,
      feedbackWindow: dataset.window,
      parentVersion: outcome.parentVersion,
    },
  };
  const version = await deps.registry.registerBundle({
    name: deps.model,
    bundle,
    runId,
    description: `retrained on dataset ${dataset.version} (feedback ${dataset.window.from} .. ${dataset.window.to})`,
    tags: [
      { key: 'bertha.dataset_version', value: dataset.version },
      { key: 'bertha.pipeline_run', value: context.runId },
    ],
  });
  await deps.registry.setAlias(deps.model, CHALLENGER, version.version);
  await tracking.updateRun({ runId, status: 'FINISHED', endTime: Date.now() });
  context.log.info(`registered ${deps.model}/${version.version} as ${CHALLENGER}`, { trackingRunId: runId });
  const registered: RegisteredRetraining = {
    trackingRunId: runId,
    name: deps.model,
    version: version.version,
    alias: CHALLENGER,
    modelPath,
  };
  await context.artifacts.writeJson('registered', registered);
}

/** The retraining steps; deps are resolved when a step runs (the registry is created after the catalog). */
export function llmRetrainingHandlers(retraining: () => RetrainingDeps): Record<string, StepHandler> {
  return {
    'train.build-dataset': async (context) => {
      const deps = retraining();
      const to = new Date();
      const from = new Date(to.getTime() - Number(context.params.window_days) * 86_400_000);
      const dataset = await buildDataset(
        { db: deps.db, objects: deps.objects, tracking: deps.tracking, logger: deps.logger },
        { window: { from: from.toISOString(), to: to.toISOString() } },
      );
      context.log.info(`dataset ${dataset.version}: ${dataset.counts.train} train, ${dataset.counts.valid} valid`, {
        ...dataset.counts,
      });
      await context.artifacts.writeJson('dataset', dataset);
    },
    'train.retrain-model': (context) => retrainModel(retraining(), context),
    'tracking.log-model': (context) => logModel(retraining(), context),
  };
}
