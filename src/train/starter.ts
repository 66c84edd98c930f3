import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../core/logger.ts';
import type { ReadinessCheck, ReadinessResult } from '../core/readiness.ts';
import { exportModelGguf, tokenizerMetadata } from './export.ts';
import type { LlamaConfigInput } from './model.ts';
import { runTraining } from './supervisor.ts';
import { trainBpe } from './tokenizer.ts';

/**
 * The demonstration model a fresh `bertha up` serves when no model is configured: a small
 * Llama trained from random init on corpus.txt (written for Bertha), with a BPE tokenizer
 * learned from the same text. Cached under the data dir, keyed by corpus + recipe, so a
 * later start (or another process) reuses it. It trains on 1024-token windows so that its
 * own retrieval template (system prompt, a few passages, the question and an answer) fits the
 * context it was trained on.
 */
export const STARTER_RECIPE = {
  vocabSize: 512,
  model: {
    contextLength: 1024,
    embeddingLength: 64,
    blockCount: 2,
    headCount: 4,
    feedForwardLength: 192,
  } satisfies Omit<LlamaConfigInput, 'vocabSize'>,
  steps: 240,
  warmupSteps: 20,
  batchSize: 2,
  sequenceLength: 1024,
  learningRate: 3e-3,
  seed: 1,
} as const;

export const STARTER_CORPUS = new URL('./starter/corpus.txt', import.meta.url);

export interface StarterProgress {
  phase: 'tokenizer' | 'training' | 'export' | 'ready';
  /** 0..1 over the whole preparation. */
  fraction: number;
  step?: number;
  steps?: number;
  loss?: number;
  tokensPerSecond?: number;
  etaSeconds?: number;
}

export interface StarterModel {
  modelPath: string;
  /** Bertha checkpoint (safetensors) with the tokenizer: the base for LoRA fine-tuning. */
  checkpointPath: string;
  reused: boolean;
}

export interface EnsureStarterModelOptions {
  dataDir: string;
  signal?: AbortSignal;
  onProgress?: (progress: StarterProgress) => void;
  threads?: number;
  /** Overrides the recipe's step count (the cache key follows). */
  steps?: number;
  logger?: Logger;
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

export async function ensureStarterModel(options: EnsureStarterModelOptions): Promise<StarterModel> {
  const log = options.logger?.child({ component: 'starter-model' });
  const corpus = await readFile(STARTER_CORPUS, 'utf8');
  const recipe = { ...STARTER_RECIPE, steps: options.steps ?? STARTER_RECIPE.steps };
  const key = createHash('sha256').update(corpus).update(JSON.stringify(recipe)).digest('hex').slice(0, 16);
  const dir = path.join(options.dataDir, 'models', 'starter', key);
  const modelPath = path.join(dir, 'model.gguf');
  const checkpointPath = path.join(dir, 'checkpoint.safetensors');
  const report = (progress: StarterProgress) => options.onProgress?.(progress);
  if (await exists(modelPath)) {
    report({ phase: 'ready', fraction: 1 });
    return { modelPath, checkpointPath, reused: true };
  }
  // Built beside the final folder and renamed into place, so a crash never leaves a half model.
  const work = `${dir}.partial-${process.pid}`;
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  try {
    report({ phase: 'tokenizer', fraction: 0 });
    const tokenizer = trainBpe(corpus, STARTER_RECIPE.vocabSize);
    const tokens = Int32Array.from(tokenizer.encode(corpus));
    const tokensPath = path.join(work, 'corpus.tokens');
    await writeFile(tokensPath, Buffer.from(tokens.buffer));
    log?.info({ vocabSize: tokenizer.tokens.length, tokens: tokens.length }, 'training the starter model');
    const { steps } = recipe;
    const result = await runTraining(
      {
        mode: 'full',
        model: { ...STARTER_RECIPE.model, vocabSize: tokenizer.tokens.length },
        trainTokens: tokensPath,
        steps,
        warmupSteps: STARTER_RECIPE.warmupSteps,
        batchSize: STARTER_RECIPE.batchSize,
        sequenceLength: STARTER_RECIPE.sequenceLength,
        learningRate: STARTER_RECIPE.learningRate,
        seed: STARTER_RECIPE.seed,
        threads: options.threads ?? 2,
        output: path.join(work, 'checkpoint.safetensors'),
        metadata: tokenizerMetadata(tokenizer),
      },
      {
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.logger ? { logger: options.logger } : {}),
        onProgress: (p) =>
          report({
            phase: 'training',
            fraction: 0.02 + (0.96 * p.step) / p.steps,
            step: p.step,
            steps: p.steps,
            loss: p.loss,
            tokensPerSecond: p.tokensPerSecond,
            etaSeconds: p.etaSeconds,
          }),
      },
    );
    report({ phase: 'export', fraction: 0.99 });
    await exportModelGguf(path.join(work, 'checkpoint.safetensors'), path.join(work, 'model.gguf'), {
      name: 'bertha-starter',
    });
    await rm(tokensPath);
    await writeFile(
      path.join(work, 'manifest.json'),
      `${JSON.stringify({ recipe, key, result, createdAt: new Date().toISOString() }, null, 2)}\n`,
    );
    await mkdir(path.dirname(dir), { recursive: true });
    try {
      await rename(work, dir);
    } catch (error) {
      // Another process finished first; its model is the same recipe.
      if (!(await exists(modelPath))) throw error;
    }
    log?.info(
      { modelPath, finalLoss: result.finalLoss, tokensPerSecond: result.tokensPerSecond },
      'starter model ready',
    );
    report({ phase: 'ready', fraction: 1 });
    return { modelPath, checkpointPath, reused: false };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** What `/readyz` shows while the starter model is prepared. */
export interface StarterModelStatus {
  readinessCheck: ReadinessCheck;
  onProgress(progress: StarterProgress): void;
  failed(error: Error): void;
}

export function createStarterModelStatus(): StarterModelStatus {
  let state: ReadinessResult = { ready: false, detail: 'preparing the starter model', progress: 0 };
  return {
    readinessCheck: { name: 'starter-model', check: () => state },
    onProgress(p) {
      if (p.phase === 'ready') {
        state = { ready: true, detail: 'small demonstration model trained on this machine', progress: 1 };
        return;
      }
      const detail =
        p.phase === 'training'
          ? `training the small starter model: step ${p.step}/${p.steps}, loss ${p.loss?.toFixed(2)}, about ${Math.ceil(p.etaSeconds ?? 0)} s left`
          : p.phase === 'export'
            ? 'writing the starter model GGUF'
            : 'learning the starter tokenizer';
      state = { ready: false, detail, progress: Math.round(p.fraction * 1000) / 1000 };
    },
    failed(error) {
      state = { ready: false, detail: `the starter model could not be trained: ${error.message}` };
    },
  };
}

export interface StarterModelPreparation {
  /** Settles once the model is ready (or failed: the failure is logged and shown on /readyz). */
  done: Promise<StarterModel | undefined>;
  /** Cancels training (the server is closing). */
  stop(): Promise<void>;
}

/**
 * Background preparation for `bertha up`: registers the readiness check, trains (or reuses)
 * the starter model, then hands its path to `onReady` (the app serves it).
 */
export function prepareStarterModel(options: {
  dataDir: string;
  threads: number;
  steps: number;
  logger: Logger;
  register(check: ReadinessCheck): void;
  onReady(model: StarterModel): Promise<void>;
}): StarterModelPreparation {
  const status = createStarterModelStatus();
  options.register(status.readinessCheck);
  const controller = new AbortController();
  const log = options.logger.child({ component: 'starter-model' });
  // The console shows the training too, a line per tenth, not only /readyz.
  let loggedTenths = 0;
  const done = ensureStarterModel({
    dataDir: options.dataDir,
    threads: options.threads,
    steps: options.steps,
    signal: controller.signal,
    logger: options.logger,
    // Ready only once the app serves it, not when the file exists.
    onProgress: (p) => {
      if (p.phase === 'ready') return;
      status.onProgress(p);
      const tenths = Math.floor(p.fraction * 10);
      if (p.phase === 'training' && tenths > loggedTenths) {
        loggedTenths = tenths;
        log.info(
          { step: p.step, steps: p.steps, loss: p.loss, etaSeconds: Math.ceil(p.etaSeconds ?? 0) },
          `training the starter model: ${tenths * 10}%`,
        );
      }
    },
  })
    .then(async (model) => {
      await options.onReady(model);
      status.onProgress({ phase: 'ready', fraction: 1 });
      return model;
    })
    .catch((error: unknown) => {
      if (controller.signal.aborted) return undefined;
      log.error({ err: error }, 'the starter model could not be prepared');
      status.failed(error as Error);
      return undefined;
    });
  return {
    done,
    async stop() {
      controller.abort();
      await done;
    },
  };
}
