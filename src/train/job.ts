import { readFile, stat } from 'node:fs/promises';
import { z } from 'zod';
import { ValidationError } from '../core/errors.ts';
import { openGguf, readLlamaBase } from '../gguf/index.ts';
import { type Checkpoint, readCheckpoint, writeCheckpoint } from './checkpoint.ts';
import { loadGgml } from './ffi/index.ts';
import { createGgufLoraTrainer, ggufLoraTensorSpecs, readGgufLoraAdapter, writeGgufLoraAdapter } from './gguf-lora.ts';
import {
  baseTensorSpecs,
  createRandom,
  initialValues,
  type LlamaConfig,
  type LoraConfig,
  llamaConfigSchema,
  loraConfigSchema,
  loraTensorSpecs,
  parseLlamaConfig,
} from './model.ts';
import { createLlamaTrainer, type TensorValues } from './session.ts';

/** What the training child process is asked to do; JSON so that it crosses the process boundary. */
export const trainingJobSchema = z
  .object({
    /** `gguf-lora`: LoRA on a served GGUF (`baseGguf`), frozen in its stored type; the others work on Bertha checkpoints. */
    mode: z.enum(['full', 'lora', 'gguf-lora']),
    /** Full training from random init needs the model shape; otherwise it comes from `base`. */
    model: llamaConfigSchema.optional(),
    /** A Bertha checkpoint (safetensors) to start from; required for LoRA. */
    base: z.string().optional(),
    /** A llama GGUF to adapt (`gguf-lora`). */
    baseGguf: z.string().optional(),
    /** A LoRA GGUF on `baseGguf` to continue from (`gguf-lora`): its rank, alpha and targets replace `lora`'s. */
    initAdapter: z.string().optional(),
    lora: loraConfigSchema.optional(),
    /** Token ids as little-endian int32, one file per split. */
    trainTokens: z.string(),
    validTokens: z.string().optional(),
    steps: z.number().int().min(1).max(1_000_000),
    batchSize: z.number().int().min(1).max(256),
    sequenceLength: z.number().int().min(2),
    learningRate: z.number().positive().max(1),
    warmupSteps: z.number().int().min(0).default(0),
    seed: z.number().int().default(1),
    threads: z.number().int().min(1).max(256).default(2),
    /** Validation loss every N steps (and at the end); 0 = only at the end. */
    evalEvery: z.number().int().min(0).default(0),
    /** Where the trained checkpoint (full) or adapter (LoRA) is written: safetensors, or a LoRA GGUF for `gguf-lora`. */
    output: z.string(),
    /** Extra safetensors metadata for the output (the tokenizer, say); a base checkpoint's is carried over. */
    metadata: z.record(z.string(), z.string()).default({}),
  })
  .strict()
  .superRefine((job, ctx) => {
    if (job.mode === 'lora' && (!job.base || !job.lora)) {
      ctx.addIssue({ code: 'custom', message: 'LoRA training needs a base checkpoint and a lora section' });
    }
    if (job.mode === 'full' && !job.model && !job.base) {
      ctx.addIssue({ code: 'custom', message: 'full training needs a model shape or a base checkpoint' });
    }
    if (job.mode === 'gguf-lora' && (!job.baseGguf || (!job.lora && !job.initAdapter))) {
      ctx.addIssue({ code: 'custom', message: 'LoRA on a GGUF needs baseGguf and a lora section or an initAdapter' });
    }
  });
export type TrainingJob = z.infer<typeof trainingJobSchema>;
export type TrainingJobInput = z.input<typeof trainingJobSchema>;

export interface TrainingProgress {
  step: number;
  steps: number;
  loss: number;
  validLoss?: number;
  tokensPerSecond: number;
  etaSeconds: number;
  elapsedSeconds: number;
}

export interface TrainingResult {
  output: string;
  steps: number;
  /** Mean training loss over the last tenth of the steps. */
  finalLoss: number;
  initialValidLoss?: number;
  finalValidLoss?: number;
  tokensPerSecond: number;
  trainableParameters: number;
  totalParameters: number;
  /** LoRA: whether every base tensor was bit-identical after training. */
  baseUnchanged?: boolean;
  /** Training loss of every step, in order. */
  lossCurve: number[];
  /** Validation loss at step 0 (before training) and at every evaluation. */
  validCurve: { step: number; loss: number }[];
  /** Bytes written to `output`. */
  outputBytes: number;
  /** The training process's peak resident memory. */
  peakRssBytes: number;
  /** The LoRA targets and rank actually trained (an `initAdapter` decides them for `gguf-lora`). */
  lora?: LoraConfig;
}

export const CHECKPOINT_KIND = 'bertha.kind';
export const CHECKPOINT_CONFIG = 'bertha.config';
export const CHECKPOINT_LORA = 'bertha.lora';

export function modelCheckpoint(
  config: LlamaConfig,
  values: TensorValues,
  extra: Record<string, string> = {},
): Checkpoint {
  const shapes = new Map(baseTensorSpecs(config).map((s) => [s.name, s.shape]));
  return {
    metadata: { [CHECKPOINT_KIND]: 'llama', [CHECKPOINT_CONFIG]: JSON.stringify(config), ...extra },
    tensors: new Map([...values].map(([name, data]) => [name, { shape: shapes.get(name) as number[], data }])),
  };
}

export function adapterCheckpoint(config: LlamaConfig, lora: LoraConfig, values: TensorValues): Checkpoint {
  const shapes = new Map(loraTensorSpecs(config, lora).map((s) => [s.name, s.shape]));
  return {
    metadata: {
      [CHECKPOINT_KIND]: 'lora',
      [CHECKPOINT_CONFIG]: JSON.stringify(config),
      [CHECKPOINT_LORA]: JSON.stringify(lora),
    },
    tensors: new Map([...values].map(([name, data]) => [name, { shape: shapes.get(name) as number[], data }])),
  };
}

export async function readModelCheckpoint(
  path: string,
): Promise<{ config: LlamaConfig; values: TensorValues; metadata: Record<string, string> }> {
  const checkpoint = await readCheckpoint(path);
  if (checkpoint.metadata[CHECKPOINT_KIND] !== 'llama')
    throw new ValidationError(`${path} is not a Bertha model checkpoint`);
  const config = parseLlamaConfig(JSON.parse(checkpoint.metadata[CHECKPOINT_CONFIG] ?? '{}'));
  return {
    config,
    values: new Map([...checkpoint.tensors].map(([n, t]) => [n, t.data])),
    metadata: checkpoint.metadata,
  };
}

export async function readAdapterCheckpoint(
  path: string,
): Promise<{ config: LlamaConfig; lora: LoraConfig; values: TensorValues }> {
  const checkpoint = await readCheckpoint(path);
  if (checkpoint.metadata[CHECKPOINT_KIND] !== 'lora')
    throw new ValidationError(`${path} is not a Bertha LoRA checkpoint`);
  return {
    config: parseLlamaConfig(JSON.parse(checkpoint.metadata[CHECKPOINT_CONFIG] ?? '{}')),
    lora: loraConfigSchema.parse(JSON.parse(checkpoint.metadata[CHECKPOINT_LORA] ?? '{}')),
    values: new Map([...checkpoint.tensors].map(([n, t]) => [n, t.data])),
  };
}

export async function readTokens(path: string): Promise<Int32Array> {
  const bytes = await readFile(path);
  if (bytes.length % 4 !== 0) throw new ValidationError(`${path} is not a file of int32 token ids`);
  const tokens = new Int32Array(bytes.length / 4);
  new Uint8Array(tokens.buffer).set(bytes);
  return tokens;
}

export function randomInit(config: LlamaConfig, seed: number): TensorValues {
  const random = createRandom(seed);
  return new Map(baseTensorSpecs(config).map((s) => [s.name, initialValues(s, config, random)]));
}

function sameBits(a: TensorValues, b: TensorValues): boolean {
  for (const [name, values] of a) {
    const other = b.get(name);
    if (!other || !Buffer.from(values.buffer).equals(Buffer.from(other.buffer))) return false;
  }
  return true;
}

/** Learning rate: linear warm-up, then cosine decay to a tenth. */
function learningRateAt(job: TrainingJob, step: number): number {
  if (step <= job.warmupSteps) return (job.learningRate * step) / Math.max(1, job.warmupSteps);
  const progress = (step - job.warmupSteps) / Math.max(1, job.steps - job.warmupSteps);
  return job.learningRate * (0.1 + 0.45 * (1 + Math.cos(Math.PI * progress)));
}

type Random = ReturnType<typeof createRandom>;

/** A trainer ready for the job's loop, whichever kind of base it adapts. */
interface JobSession {
  contextLength: number;
  trainer: {
    trainableParameters: number;
    totalParameters: number;
    step(inputs: Int32Array, targets: Int32Array, learningRate: number): Promise<number>;
    loss(inputs: Int32Array, targets: Int32Array): Promise<number>;
  };
  /** Writes `job.output`; returns what the result reports about it. */
  save(): Promise<Pick<TrainingResult, 'baseUnchanged' | 'lora'>>;
  free(): void;
}

async function checkpointSession(job: TrainingJob, random: Random): Promise<JobSession> {
  const base = job.base ? await readModelCheckpoint(job.base) : undefined;
  const config = base?.config ?? (job.model as LlamaConfig);
  const baseValues = base?.values ?? randomInit(config, job.seed);
  const lora = job.mode === 'lora' ? (job.lora as LoraConfig) : undefined;
  const loraValues = lora
    ? new Map(loraTensorSpecs(config, lora).map((s) => [s.name, initialValues(s, config, random)]))
    : undefined;
  const trainer = createLlamaTrainer(loadGgml(), {
    config,
    base: baseValues,
    ...(lora && loraValues ? { lora: { config: lora, values: loraValues } } : {}),
    sequenceLength: job.sequenceLength,
    batchSize: job.batchSize,
    threads: job.threads,
    learningRate: job.learningRate,
  });
  return {
    contextLength: config.contextLength,
    trainer,
    async save() {
      if (lora) {
        const baseUnchanged = sameBits(baseValues, trainer.baseValues());
        await writeCheckpoint(job.output, adapterCheckpoint(config, lora, trainer.trained()));
        return { baseUnchanged, lora };
      }
      const carried = Object.fromEntries(
        Object.entries(base?.metadata ?? {}).filter(([k]) => k !== CHECKPOINT_KIND && k !== CHECKPOINT_CONFIG),
      );
      await writeCheckpoint(job.output, modelCheckpoint(config, trainer.trained(), { ...carried, ...job.metadata }));
      return {};
    },
    free: () => trainer.free(),
  };
}

async function ggufLoraSession(job: TrainingJob, random: Random): Promise<JobSession> {
  const path = job.baseGguf as string;
  const base = await readLlamaBase(path);
  if (job.sequenceLength > base.hparams.nCtxTrain) {
    throw new ValidationError(
      `sequenceLength ${job.sequenceLength} exceeds the model's context length ${base.hparams.nCtxTrain}`,
    );
  }
  let lora: LoraConfig;
  let values: TensorValues;
  if (job.initAdapter) {
    ({ config: lora, values } = await readGgufLoraAdapter(job.initAdapter, base));
  } else {
    lora = job.lora as LoraConfig;
    values = new Map(
      ggufLoraTensorSpecs(base, lora).map((s) => [
        s.name,
        initialValues(s, { blockCount: base.hparams.nLayer }, random),
      ]),
    );
  }
  const reader = await openGguf(path);
  try {
    const trainer = await createGgufLoraTrainer(loadGgml(), {
      base,
      reader,
      lora: { config: lora, values },
      sequenceLength: job.sequenceLength,
      batchSize: job.batchSize,
      threads: job.threads,
      learningRate: job.learningRate,
    });
    return {
      contextLength: base.hparams.nCtxTrain,
      trainer,
      async save() {
        await writeGgufLoraAdapter(job.output, { base, lora, values: trainer.adapter() });
        return { lora };
      },
      free: () => trainer.free(),
    };
  } finally {
    await reader.close();
  }
}

/**
 * Runs one training job in this process. Meant for the training child process: a failed
 * ggml assertion ends the process, so the server and pipeline steps call `runTraining`.
 */
export async function runTrainingJob(
  input: TrainingJobInput,
  onProgress: (progress: TrainingProgress) => void,
  shouldStop: () => boolean = () => false,
): Promise<TrainingResult> {
  const parsed = trainingJobSchema.safeParse(input);
  if (!parsed.success)
    throw new ValidationError(`invalid training job: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
  const job = parsed.data;
  const T = job.sequenceLength;
  const B = job.batchSize;
  const train = await readTokens(job.trainTokens);
  const valid = job.validTokens ? await readTokens(job.validTokens) : undefined;
  if (train.length < T + 1)
    throw new ValidationError(`the training set has ${train.length} tokens, a window needs ${T + 1}`);
  if (valid && valid.length < T + 1)
    throw new ValidationError(`the validation set has ${valid.length} tokens, a window needs ${T + 1}`);
  if (job.mode !== 'gguf-lora') {
    const contextLength = job.base
      ? (await readModelCheckpoint(job.base)).config.contextLength
      : job.model?.contextLength;
    if (contextLength !== undefined && T > contextLength) {
      throw new ValidationError(`sequenceLength ${T} exceeds the model's context length ${contextLength}`);
    }
  }
  // One stream for the adapter's initial values, then the windows, so that a seed reproduces a run.
  const random = createRandom(job.seed + 1);
  const session = job.mode === 'gguf-lora' ? await ggufLoraSession(job, random) : await checkpointSession(job, random);
  const { trainer } = session;
  const inputs = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  const fill = (source: Int32Array, offsets: number[]) => {
    offsets.forEach((o, b) => {
      inputs.set(source.subarray(o, o + T), b * T);
      targets.set(source.subarray(o + 1, o + T + 1), b * T);
    });
  };
  // Deterministic validation: up to 4 batches of windows spread evenly over the held-out tokens.
  const validLoss = async (): Promise<number | undefined> => {
    if (!valid) return undefined;
    const span = valid.length - T - 1;
    const windows = Math.min(4 * B, Math.max(B, Math.floor(valid.length / T)));
    const offsets = Array.from({ length: Math.ceil(windows / B) * B }, (_, i) =>
      Math.floor((span * i) / Math.max(1, Math.ceil(windows / B) * B - 1)),
    );
    let total = 0;
    for (let i = 0; i < offsets.length; i += B) {
      fill(valid, offsets.slice(i, i + B));
      total += await trainer.loss(inputs, targets);
    }
    return total / (offsets.length / B);
  };

  try {
    const initialValidLoss = await validLoss();
    const losses: number[] = [];
    const validCurve = initialValidLoss === undefined ? [] : [{ step: 0, loss: initialValidLoss }];
    let finalValidLoss = initialValidLoss;
    let timed = 0;
    let timedTokens = 0;
    const started = performance.now();
    let step = 0;
    while (step < job.steps && !shouldStop()) {
      step++;
      fill(
        train,
        Array.from({ length: B }, () => Math.floor(random.uniform() * (train.length - T))),
      );
      const t0 = performance.now();
      const loss = await trainer.step(inputs, targets, learningRateAt(job, step));
      if (!Number.isFinite(loss))
        throw new ValidationError(`training diverged at step ${step} (loss ${loss}); lower the learning rate`);
      // The first step allocates the graphs; leave it out of the speed.
      if (step > 1 || job.steps === 1) {
        timed += performance.now() - t0;
        timedTokens += B * T;
      }
      losses.push(loss);
      const tokensPerSecond = timed > 0 ? (timedTokens * 1000) / timed : 0;
      let stepValid: number | undefined;
      if ((job.evalEvery > 0 && step % job.evalEvery === 0) || step === job.steps) {
        stepValid = await validLoss();
        finalValidLoss = stepValid;
        if (stepValid !== undefined) validCurve.push({ step, loss: stepValid });
      }
      onProgress({
        step,
        steps: job.steps,
        loss,
        ...(stepValid !== undefined ? { validLoss: stepValid } : {}),
        tokensPerSecond,
        etaSeconds: tokensPerSecond > 0 ? ((job.steps - step) * B * T) / tokensPerSecond : 0,
        elapsedSeconds: (performance.now() - started) / 1000,
      });
    }
    const tail = losses.slice(-Math.max(1, Math.ceil(losses.length / 10)));
    const saved = await session.save();
    return {
      output: job.output,
      steps: step,
      finalLoss: tail.reduce((a, b) => a + b, 0) / tail.length,
      ...(initialValidLoss !== undefined ? { initialValidLoss } : {}),
      ...(finalValidLoss !== undefined ? { finalValidLoss } : {}),
      tokensPerSecond: timed > 0 ? (timedTokens * 1000) / timed : 0,
      trainableParameters: trainer.trainableParameters,
      totalParameters: trainer.totalParameters,
      ...saved,
      lossCurve: losses,
      validCurve,
      outputBytes: (await stat(job.output)).size,
      // maxRSS is in kilobytes.
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
    };
  } finally {
    session.free();
  }
}
