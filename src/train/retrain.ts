import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { CommandTrainerSpec } from '../config/index.ts';
import { BerthaError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import {
  createGgufTokenizer,
  type GgufTokenizer,
  type LlamaBase,
  readLlamaBase,
  UnsupportedBaseError,
} from '../gguf/index.ts';
import { type ModelBundle, starterBundle } from '../models/index.ts';
import { type ObjectStore, readObject } from '../objects/index.ts';
import type { ModelRegistry } from '../tracking/index.ts';
import { runCommandTrainer } from './command.ts';
import { type BuiltDataset, type DatasetExample, readExamples } from './dataset.ts';
import { exportLoraGguf, tokenizerFromMetadata } from './export.ts';
import { readModelCheckpoint } from './job.ts';
import type { LoraTarget } from './model.ts';
import { ensureStarterModel } from './starter.ts';
import { type RunTrainingOptions, runTraining } from './supervisor.ts';

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
      /** Longest training window in tokens. */
      sequenceLength: number;
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
  /** Per-step series for the tracker (`train_loss`, `valid_loss`). */
  curves?: Record<string, { step: number; value: number }[]>;
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

/** A training child's start and steps as the pipeline step's log lines and progress bar. */
function trainingReport(report: RetrainReporter): Pick<RunTrainingOptions, 'onStart' | 'onProgress'> {
  return {
    onStart: (pid) => report.info(`training process ${pid} started`),
    onProgress: (p) => {
      report.progress(p.step / p.steps, `step ${p.step}/${p.steps}, loss ${p.loss.toFixed(3)}`);
      report.info(`step ${p.step}/${p.steps} loss ${p.loss.toFixed(4)}`, {
        tokensPerSecond: Math.round(p.tokensPerSecond),
        ...(p.validLoss !== undefined ? { validLoss: p.validLoss } : {}),
      });
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
  if (!base.checkpoint) return trainGgufLora(deps, dataset, base, work, report, signal);
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
    sequence_length: Math.min(lora.sequenceLength, modelConfig.contextLength, tokens.length - 1),
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
      ...trainingReport(report),
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

/** The projections a retraining adapts, as for the starter model; a tied head (no `output.weight`) is left alone. */
const GGUF_LORA_TARGETS: LoraTarget[] = ['attn_q', 'attn_v', 'ffn_up', 'ffn_down', 'output'];

async function tokenizeSplit(deps: RetrainDeps, key: string, tokenizer: GgufTokenizer): Promise<Int32Array> {
  const { bosId, addBos } = tokenizer.vocabulary;
  const tokens: number[] = [];
  for (const example of await readExamples(deps.objects, key)) {
    if (addBos && bosId !== undefined) tokens.push(bosId);
    for (const token of tokenizer.tokenize(exampleText(example))) tokens.push(token);
  }
  return Int32Array.from(tokens);
}

/**
 * LoRA on a GGUF Bertha did not train (Llama 2 7B, TinyLlama, Llama 3 ...): the base stays frozen in its
 * stored type and the adapter is written as a llama.cpp LoRA GGUF. A parent that is itself one adapter on
 * this base is continued from its adapter, so the new version keeps what the parent learned.
 */
async function trainGgufLora(
  deps: RetrainDeps,
  dataset: BuiltDataset,
  base: BaseModel,
  work: string,
  report: RetrainReporter,
  signal: AbortSignal,
): Promise<{ outcome: TrainingOutcome; model: Buffer }> {
  const baseGguf = (base.bundle.base as { path: string }).path;
  let llamaBase: LlamaBase;
  try {
    llamaBase = await readLlamaBase(baseGguf, signal);
  } catch (error) {
    if (!(error instanceof UnsupportedBaseError)) throw error;
    throw new RetrainingError(
      `${error.message}; configure an external trainer in trainer.command to fine-tune it (docs/training.md)`,
      { version: base.bundle.version, base: baseGguf, reason: error.code },
    );
  }
  const tokenizer = createGgufTokenizer(llamaBase.vocabulary);
  const train = await tokenizeSplit(deps, dataset.trainKey, tokenizer);
  const valid = await tokenizeSplit(deps, dataset.validKey, tokenizer);
  if (train.length < 3) throw new RetrainingError(`dataset ${dataset.version} has too little text to train on`);
  const lora = deps.trainer.lora;
  const sequenceLength = Math.min(lora.sequenceLength, llamaBase.hparams.nCtxTrain, train.length - 1);
  const trainTokens = path.join(work, 'train.tokens');
  await writeFile(trainTokens, Buffer.from(train.buffer));
  let validTokens: string | undefined;
  if (valid.length > sequenceLength) {
    validTokens = path.join(work, 'valid.tokens');
    await writeFile(validTokens, Buffer.from(valid.buffer));
  }
  const [parentAdapter, ...moreAdapters] = base.bundle.adapters;
  const continued =
    parentAdapter && moreAdapters.length === 0 && parentAdapter.scale === 1 ? parentAdapter.path : undefined;
  if (base.bundle.adapters.length > 0 && !continued) {
    report.info(
      `model ${base.bundle.version} has ${base.bundle.adapters.length} adapters or a scaled one; training a new adapter on ${baseGguf} alone`,
    );
  }
  const baseTypes = [...new Set([...llamaBase.tensors.values()].map((t) => t.type))].sort();
  const targets = GGUF_LORA_TARGETS.filter((t) => t !== 'output' || !llamaBase.tiedEmbeddings);
  const output = path.join(work, 'adapter.gguf');
  report.info(
    `LoRA on ${baseGguf} (${llamaBase.hparams.nLayer} blocks, ${baseTypes.join('/')}): ` +
      `${train.length} tokens, ${lora.steps} steps${continued ? `, continuing ${continued}` : ''}`,
  );
  const result = await runTraining(
    {
      mode: 'gguf-lora',
      baseGguf,
      ...(continued ? { initAdapter: continued } : {}),
      lora: { rank: lora.rank, alpha: lora.alpha, targets },
      trainTokens,
      ...(validTokens ? { validTokens } : {}),
      steps: lora.steps,
      batchSize: lora.batchSize,
      sequenceLength,
      learningRate: lora.learningRate,
      threads: deps.trainer.threads,
      output,
    },
    {
      signal,
      logger: deps.logger,
      ...trainingReport(report),
    },
  );
  const trained = result.lora ?? { rank: lora.rank, alpha: lora.alpha, targets };
  report.info(
    `final loss ${result.finalLoss.toFixed(3)}, ${result.tokensPerSecond.toFixed(0)} tokens/s, adapter ${result.outputBytes} bytes, peak memory ${(result.peakRssBytes / 2 ** 20).toFixed(0)} MiB`,
  );
  return {
    model: await readFile(output),
    outcome: {
      trainer: 'lora',
      kind: 'adapter',
      baseGguf,
      parentVersion: base.bundle.version,
      params: {
        trainer: 'gguf-lora',
        steps: lora.steps,
        rank: trained.rank,
        alpha: trained.alpha,
        targets: trained.targets.join(','),
        learning_rate: lora.learningRate,
        batch_size: lora.batchSize,
        sequence_length: sequenceLength,
        train_tokens: train.length,
        valid_tokens: validTokens ? valid.length : 0,
        base_types: baseTypes.join(','),
        ...(continued ? { init_adapter: continued } : {}),
      },
      metrics: {
        final_loss: result.finalLoss,
        tokens_per_second: result.tokensPerSecond,
        trainable_parameters: result.trainableParameters,
        adapter_bytes: result.outputBytes,
        peak_rss_bytes: result.peakRssBytes,
        ...(result.initialValidLoss !== undefined ? { initial_valid_loss: result.initialValidLoss } : {}),
        ...(result.finalValidLoss !== undefined ? { final_valid_loss: result.finalValidLoss } : {}),
      },
      curves: {
        train_loss: result.lossCurve.map((value, i) => ({ step: i + 1, value })),
        valid_loss: result.validCurve.map(({ step, loss }) => ({ step, value: loss })),
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
