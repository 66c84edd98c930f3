import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { CommandTrainerSpec } from '../config/index.ts';
import { BerthaError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { type ModelBundle, starterBundle } from '../models/index.ts';
import { type ObjectStore, readObject } from '../objects/index.ts';
import type { ModelRegistry } from '../tracking/index.ts';
import { runCommandTrainer } from './command.ts';
import { type BuiltDataset, type DatasetExample, readExamples } from './dataset.ts';
import { exportLoraGguf, tokenizerFromMetadata } from './export.ts';
import { readModelCheckpoint } from './job.ts';
import { ensureStarterModel } from './starter.ts';
import { runTraining } from './supervisor.ts';

/** What retraining needs: where the data is, which model it adapts, and how to train. */
export interface RetrainDeps {
  objects: ObjectStore;
  registry: ModelRegistry;
  logger: Logger;
  dataDir: string;
  /** Registered model whose versions retraining adds (`config.tracking.model`). */
  model: string;
  /** What `bertha up` serves when the registry has no champion (`configuredBundle`). */
  servedBundle: ModelBundle | undefined;
  /** Passages a bundle built here retrieves (`serving.retrievalTopK`), as the served bundles do. */
  retrievalTopK: number;
  trainer: {
    threads: number;
    /** The starter model's recipe steps, so its cached checkpoint is found. */
    starterSteps: number;
    lora: {
      steps: number;
      rank: number;
      alpha: number;
      learningRate: number;
      batchSize: number;
      /** Share of the dataset build-dataset holds out for evaluation. */
      validationFraction: number;
    };
    command?: CommandTrainerSpec | undefined;
  };
}

/** How a long training reports back (a pipeline step's log and progress). */
export interface RetrainReporter {
  info(message: string, fields?: Record<string, unknown>): void;
  progress(fraction: number, message: string): void;
}

export class RetrainingError extends BerthaError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('retraining_failed', message, 422, details);
  }
}

/** What a retraining produced, besides the model file. */
export interface TrainingOutcome {
  trainer: 'lora' | 'command';
  /** `adapter`: the model is a LoRA GGUF on `baseGguf`; `model`: a whole GGUF. */
  kind: 'adapter' | 'model';
  baseGguf: string;
  parentVersion: string;
  params: Record<string, string | number>;
  metrics: Record<string, number>;
}

export interface BaseModel {
  bundle: ModelBundle;
  /** The Bertha checkpoint beside the GGUF, when Bertha trained it. */
  checkpoint: string | undefined;
}

const exists = (file: string) =>
  stat(file).then(
    () => true,
    () => false,
  );

/** `<model>/<n>` or `<n>` of the configured model; anything else names no registry version. */
function registryVersion(deps: RetrainDeps, modelVersion: string): string | undefined {
  const named = /^(?:(.+)\/)?(\d+)$/.exec(modelVersion);
  return named && (named[1] === undefined || named[1] === deps.model) ? named[2] : undefined;
}

/** The version the next retraining would start from, by the rules of `resolveBase`, without loading anything. */
export async function baseVersion(deps: RetrainDeps, modelVersion: string): Promise<string> {
  const number = registryVersion(deps, modelVersion);
  if (number) {
    const found = await deps.registry.getBundle(deps.model, number).catch(() => undefined);
    if (found) return found.version;
  }
  const champion = await deps.registry.resolveAlias(deps.model, 'champion');
  return champion?.version ?? deps.servedBundle?.version ?? 'starter';
}

/**
 * The registry version already trained on this dataset version from the same base, if any: a
 * trigger that fires again on unchanged data (an alert still firing after a restart) must not
 * train a second copy of the same model.
 */
export async function findTrainedVersion(
  deps: RetrainDeps,
  modelVersion: string,
  dataset: BuiltDataset,
): Promise<{ base: string; existing: string } | undefined> {
  const base = await baseVersion(deps, modelVersion);
  const page = await deps.registry.store.searchModelVersions({
    filter: `name = '${deps.model}' and tags.\`bertha.dataset_version\` = '${dataset.version}'`,
    maxResults: 100,
  });
  for (const candidate of page.items) {
    const bundle = await deps.registry.getBundle(candidate.name, candidate.version).catch(() => undefined);
    if (bundle?.lineage?.parentVersion === base) return { base, existing: bundle.version };
  }
  return undefined;
}

/**
 * The model to retrain (and the champion to compare with): the degraded registry version when the event names one, else the
 * champion, else what `bertha up` serves, else the starter model. A GGUF that Bertha trained
 * has its checkpoint (`checkpoint.safetensors`) beside it; that is what LoRA adapts.
 */
export async function resolveBase(deps: RetrainDeps, modelVersion: string, signal: AbortSignal): Promise<BaseModel> {
  let bundle: ModelBundle | undefined;
  const number = registryVersion(deps, modelVersion);
  if (number) {
    bundle = await deps.registry.getBundle(deps.model, number).catch((error: unknown) => {
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
      bundle: starterBundle(starter.modelPath, { retrievalTopK: deps.retrievalTopK }),
      checkpoint: starter.checkpointPath,
    };
  }
  if (bundle.base.kind !== 'gguf') return { bundle, checkpoint: undefined };
  const beside = path.join(path.dirname(bundle.base.path), 'checkpoint.safetensors');
  return { bundle, checkpoint: (await exists(beside)) ? beside : undefined };
}

/** The dataset as plain text for a causal LM: question and answer, or a knowledge passage. */
function exampleText(example: DatasetExample): string {
  return example.kind === 'feedback' ? `${example.prompt}\n${example.completion}\n\n` : `${example.text}\n\n`;
}

async function trainWithCommand(
  deps: RetrainDeps,
  command: CommandTrainerSpec,
  dataset: BuiltDataset,
  base: BaseModel,
  work: string,
  report: RetrainReporter,
  signal: AbortSignal,
): Promise<{ outcome: TrainingOutcome; model: Buffer }> {
  const baseGguf = (base.bundle.base as { path: string }).path;
  const train = path.join(work, 'train.jsonl');
  const valid = path.join(work, 'valid.jsonl');
  await writeFile(train, await readObject(deps.objects, dataset.trainKey));
  await writeFile(valid, await readObject(deps.objects, dataset.validKey));
  report.info(`command trainer on ${baseGguf}`, { argv: command.command });
  const result = await runCommandTrainer(
    command,
    { train, valid, base: baseGguf, output: path.join(work, 'out') },
    {
      signal,
      logger: deps.logger,
      onProgress: (p) => {
        if (p.steps) report.progress(p.step / p.steps, `step ${p.step}/${p.steps}`);
        report.info(`step ${p.step}${p.steps ? `/${p.steps}` : ''}`, { ...p });
      },
    },
  );
  return {
    model: await readFile(result.path),
    outcome: {
      trainer: 'command',
      kind: result.kind,
      baseGguf,
      parentVersion: base.bundle.version,
      params: { trainer: 'command', argv: command.command.join(' ') },
      metrics: result.metrics,
    },
  };
}

async function trainLora(
  deps: RetrainDeps,
  dataset: BuiltDataset,
  base: BaseModel,
  work: string,
  report: RetrainReporter,
  signal: AbortSignal,
): Promise<{ outcome: TrainingOutcome; model: Buffer }> {
  const baseGguf = (base.bundle.base as { path: string }).path;
  if (!base.checkpoint) {
    throw new RetrainingError(
      `model ${base.bundle.version} (${baseGguf}) has no Bertha checkpoint, so LoRA on this machine cannot ` +
        'adapt it; configure an external trainer in trainer.command (docs/training.md)',
      { version: base.bundle.version, base: baseGguf },
    );
  }
  const { metadata, config: modelConfig } = await readModelCheckpoint(base.checkpoint);
  const tokenizer = tokenizerFromMetadata(metadata);
  const text = (await readExamples(deps.objects, dataset.trainKey)).map(exampleText).join('');
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
  report.info(`LoRA on ${base.checkpoint}: ${tokens.length} tokens, ${lora.steps} steps`, params);
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
      signal,
      logger: deps.logger,
      onStart: (pid) => report.info(`training process ${pid} started`),
      onProgress: (p) => {
        report.progress(p.step / p.steps, `step ${p.step}/${p.steps}, loss ${p.loss.toFixed(3)}`);
        report.info(`step ${p.step}/${p.steps} loss ${p.loss.toFixed(4)}`, {
          tokensPerSecond: Math.round(p.tokensPerSecond),
        });
      },
    },
  );
  const adapter = path.join(work, 'adapter.gguf');
  await exportLoraGguf(result.output, adapter);
  report.info(`final loss ${result.finalLoss.toFixed(3)}, ${result.tokensPerSecond.toFixed(0)} tokens/s`);
  return {
    model: await readFile(adapter),
    outcome: {
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
    },
  };
}

/**
 * Retrains the base `modelVersion` names (see `resolveBase`) on a built dataset: LoRA on this
 * machine, or the configured command trainer. Returns the model file (a LoRA GGUF or a whole
 * GGUF) and what went into it, or, for a model served by an upstream server, why there is
 * nothing to train here (the prompt arm is that model's only challenger).
 */
export async function retrain(
  deps: RetrainDeps,
  dataset: BuiltDataset,
  modelVersion: string,
  report: RetrainReporter,
  signal: AbortSignal,
): Promise<{ outcome: TrainingOutcome; model: Buffer } | { skipped: string }> {
  if (dataset.counts.train === 0) {
    throw new RetrainingError(
      `dataset ${dataset.version} has no training examples (feedback window ${dataset.window.from} .. ${dataset.window.to})`,
    );
  }
  const base = await resolveBase(deps, modelVersion, signal);
  if (base.bundle.base.kind !== 'gguf') {
    return {
      skipped: `model ${base.bundle.version} is served by an upstream server (${base.bundle.base.model}): no weights to fine-tune here`,
    };
  }
  const work = await mkdtemp(path.join(tmpdir(), 'bertha-retrain-'));
  try {
    const command = deps.trainer.command;
    return command
      ? await trainWithCommand(deps, command, dataset, base, work, report, signal)
      : await trainLora(deps, dataset, base, work, report, signal);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
