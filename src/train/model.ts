import { z } from 'zod';
import { ValidationError } from '../core/errors.ts';
import { seededRandom } from '../core/random.ts';

/**
 * ggml-opt builds its backward graph with GGML_DEFAULT_GRAPH_SIZE (2048) nodes in static
 * mode; a block costs ~150 forward + backward + optimizer nodes, so 8 blocks leave room.
 */
export const MAX_STATIC_BLOCKS = 8;

/**
 * Hyper-parameters of a Llama model as llama.cpp's LLM_ARCH_LLAMA reads them from GGUF
 * (`llama.embedding_length`, `llama.block_count`, ...). No grouped-query attention: K and V
 * have as many heads as Q.
 */
export const llamaConfigSchema = z
  .object({
    vocabSize: z
      .number()
      .int()
      .min(2)
      .max(1 << 20),
    contextLength: z.number().int().min(2).max(8192),
    embeddingLength: z.number().int().min(2).max(8192),
    blockCount: z.number().int().min(1).max(MAX_STATIC_BLOCKS),
    headCount: z.number().int().min(1).max(256),
    feedForwardLength: z.number().int().min(1).max(65536),
    ropeFreqBase: z.number().positive().default(10_000),
    rmsEps: z.number().positive().max(1e-2).default(1e-5),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.embeddingLength % c.headCount !== 0) {
      ctx.addIssue({ code: 'custom', message: 'embeddingLength must be a multiple of headCount' });
    } else if ((c.embeddingLength / c.headCount) % 2 !== 0) {
      ctx.addIssue({ code: 'custom', message: 'the head dimension must be even for RoPE' });
    }
  });

export type LlamaConfig = z.infer<typeof llamaConfigSchema>;
export type LlamaConfigInput = z.input<typeof llamaConfigSchema>;

/**
 * Projections a LoRA adapter may wrap; llama.cpp's build_lora_mm applies adapters on each of
 * them (src/models/llama.cpp). `output` is the head: with a frozen head whose weights are
 * small, adapters inside the blocks cannot move the logits far.
 */
export const LORA_TARGETS = [
  'attn_q',
  'attn_k',
  'attn_v',
  'attn_output',
  'ffn_gate',
  'ffn_up',
  'ffn_down',
  'output',
] as const;
export type LoraTarget = (typeof LORA_TARGETS)[number];

export const loraConfigSchema = z
  .object({
    rank: z.number().int().min(1).max(1024),
    alpha: z.number().positive(),
    targets: z.array(z.enum(LORA_TARGETS)).min(1),
  })
  .strict();
export type LoraConfig = z.infer<typeof loraConfigSchema>;

export function parseLlamaConfig(input: unknown): LlamaConfig {
  const parsed = llamaConfigSchema.safeParse(input);
  if (!parsed.success) {
    throw new ValidationError(`invalid model configuration: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
  }
  return parsed.data;
}

export function headDim(config: LlamaConfig): number {
  return config.embeddingLength / config.headCount;
}

/** A named weight with its ggml shape (ne0 first, i.e. the contiguous dimension first). */
export interface TensorSpec {
  name: string;
  shape: number[];
  init: 'ones' | 'normal' | 'residual' | 'lora_a' | 'zeros';
}

/** GGUF tensor names of llama.cpp's LLM_ARCH_LLAMA (src/llama-arch.cpp), `.weight` suffix included. */
export function baseTensorSpecs(config: LlamaConfig): TensorSpec[] {
  const E = config.embeddingLength;
  const F = config.feedForwardLength;
  const specs: TensorSpec[] = [{ name: 'token_embd.weight', shape: [E, config.vocabSize], init: 'normal' }];
  for (let i = 0; i < config.blockCount; i++) {
    const b = `blk.${i}`;
    specs.push(
      { name: `${b}.attn_norm.weight`, shape: [E], init: 'ones' },
      { name: `${b}.attn_q.weight`, shape: [E, E], init: 'normal' },
      { name: `${b}.attn_k.weight`, shape: [E, E], init: 'normal' },
      { name: `${b}.attn_v.weight`, shape: [E, E], init: 'normal' },
      { name: `${b}.attn_output.weight`, shape: [E, E], init: 'residual' },
      { name: `${b}.ffn_norm.weight`, shape: [E], init: 'ones' },
      { name: `${b}.ffn_gate.weight`, shape: [E, F], init: 'normal' },
      { name: `${b}.ffn_up.weight`, shape: [E, F], init: 'normal' },
      { name: `${b}.ffn_down.weight`, shape: [F, E], init: 'residual' },
    );
  }
  specs.push(
    { name: 'output_norm.weight', shape: [E], init: 'ones' },
    { name: 'output.weight', shape: [E, config.vocabSize], init: 'normal' },
  );
  return specs;
}

/**
 * llama.cpp's adapter layout (src/llama-adapter.cpp): for W of ne [in, out], `lora_a` has
 * ne [in, r] and `lora_b` ne [r, out]; the output is W x + (alpha / r) B (A x).
 */
export function loraTensorSpecs(config: LlamaConfig, lora: LoraConfig): TensorSpec[] {
  const specs: TensorSpec[] = [];
  const base = new Map(baseTensorSpecs(config).map((s) => [s.name, s]));
  const names = lora.targets.flatMap((target) =>
    target === 'output'
      ? ['output.weight']
      : Array.from({ length: config.blockCount }, (_, i) => `blk.${i}.${target}.weight`),
  );
  for (const name of names) {
    const [inDim, outDim] = (base.get(name) as TensorSpec).shape as [number, number];
    specs.push(
      { name: `${name}.lora_a`, shape: [inDim, lora.rank], init: 'lora_a' },
      { name: `${name}.lora_b`, shape: [lora.rank, outDim], init: 'zeros' },
    );
  }
  return specs;
}

export function elementsOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function parameterCount(specs: readonly TensorSpec[]): number {
  return specs.reduce((sum, s) => sum + elementsOf(s.shape), 0);
}

/** Deterministic draws (mulberry32) so that a seed reproduces a model. */
export function createRandom(seed: number): { uniform(): number; normal(): number } {
  const uniform = seededRandom(seed);
  return {
    uniform,
    normal() {
      let u = 0;
      while (u === 0) u = uniform();
      return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * uniform());
    },
  };
}

/** GPT-2 style init: N(0, 0.02), residual projections scaled by 1/sqrt(2 * layers), LoRA A ~ N(0, 1/in), B = 0. */
export function initialValues(
  spec: TensorSpec,
  config: Pick<LlamaConfig, 'blockCount'>,
  random: { normal(): number },
): Float32Array {
  const values = new Float32Array(elementsOf(spec.shape));
  const std = 0.02;
  switch (spec.init) {
    case 'ones':
      values.fill(1);
      break;
    case 'zeros':
      break;
    case 'normal':
      for (let i = 0; i < values.length; i++) values[i] = random.normal() * std;
      break;
    case 'residual': {
      const s = std / Math.sqrt(2 * config.blockCount);
      for (let i = 0; i < values.length; i++) values[i] = random.normal() * s;
      break;
    }
    case 'lora_a': {
      const s = 1 / Math.sqrt(spec.shape[0] ?? 1);
      for (let i = 0; i < values.length; i++) values[i] = random.normal() * s;
      break;
    }
  }
  return values;
}
