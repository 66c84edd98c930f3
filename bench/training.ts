import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { seededRandom } from '../src/core/random.ts';
import {
  type GgufTensorType,
  type LlamaHyperparameters,
  llamaTensorShapes,
  openGguf,
  readLlamaBase,
  TokenType,
  writeLlamaGguf,
} from '../src/gguf/index.ts';
import { GgmlType, loadGgml, metadataContext, type Ptr, writeTensor } from '../src/train/ffi/index.ts';
import { createGgufLoraTrainer, ggufLoraTensorSpecs } from '../src/train/gguf-lora.ts';
import { randomInit } from '../src/train/job.ts';
import {
  baseTensorSpecs,
  createRandom,
  initialValues,
  type LlamaConfig,
  type LoraConfig,
  loraTensorSpecs,
  parseLlamaConfig,
} from '../src/train/model.ts';
import { createLlamaTrainer } from '../src/train/session.ts';
import { STARTER_RECIPE } from '../src/train/starter.ts';
import { reportFigures, round } from './stats.ts';

/**
 * Training throughput of Bertha's ggml Llama graph (full and LoRA) against the baseline of
 * ggml's own fp32 mul_mat peak (1024x1024, same thread count), measured in the same run.
 */
const THREADS = 2;
const ggml = loadGgml();

function matmulPeakGflops(n: number, reps: number): number {
  const { fn } = ggml;
  const backend = ggml.cpuBackend(THREADS);
  const ctx = metadataContext(ggml, 8, 16);
  const a = fn.new_tensor_2d(ctx, GgmlType.F32, n, n) as Ptr;
  const b = fn.new_tensor_2d(ctx, GgmlType.F32, n, n) as Ptr;
  const c = fn.mul_mat(ctx, a, b);
  const graph = fn.new_graph_custom(ctx, 16, false) as Ptr;
  fn.build_forward_expand(graph, c);
  const buffer = fn.backend_alloc_ctx_tensors(ctx, backend) as Ptr;
  const random = createRandom(3);
  writeTensor(
    ggml,
    a,
    Float32Array.from({ length: n * n }, () => random.uniform() - 0.5),
  );
  writeTensor(
    ggml,
    b,
    Float32Array.from({ length: n * n }, () => random.uniform() - 0.5),
  );
  fn.backend_graph_compute(backend, graph);
  let best = 0;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    fn.backend_graph_compute(backend, graph);
    best = Math.max(best, (2 * n ** 3) / ((performance.now() - t0) / 1000) / 1e9);
  }
  fn.backend_buffer_free(buffer);
  fn.free(ctx);
  fn.backend_free(backend);
  return best;
}

/** Multiply-adds of one training token: 3x the forward pass (forward, input grads, weight grads). */
function trainingFlopsPerToken(config: LlamaConfig, T: number): number {
  const matmulParams = baseTensorSpecs(config)
    .filter((s) => s.shape.length === 2 && s.name !== 'token_embd.weight')
    .reduce((sum, s) => sum + (s.shape[0] as number) * (s.shape[1] as number), 0);
  const attention = 4 * T * config.embeddingLength * config.blockCount;
  return 3 * (2 * matmulParams + attention);
}

async function tokensPerSecond(
  config: LlamaConfig,
  lora: LoraConfig | undefined,
  T: number,
  B: number,
  steps: number,
): Promise<{ tokensPerSecond: number; parameters: number }> {
  const random = createRandom(11);
  const trainer = createLlamaTrainer(ggml, {
    config,
    base: randomInit(config, 5),
    ...(lora
      ? {
          lora: {
            config: lora,
            values: new Map(loraTensorSpecs(config, lora).map((s) => [s.name, initialValues(s, config, random)])),
          },
        }
      : {}),
    sequenceLength: T,
    batchSize: B,
    threads: THREADS,
    learningRate: 1e-3,
  });
  const tokens = () => Int32Array.from({ length: B * T }, () => Math.floor(random.uniform() * config.vocabSize));
  try {
    // Two warm-up steps: the first allocates the graphs.
    for (let i = 0; i < 2; i++) await trainer.step(tokens(), tokens(), 1e-3);
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) await trainer.step(tokens(), tokens(), 1e-3);
    return {
      tokensPerSecond: (steps * B * T) / ((performance.now() - t0) / 1000),
      parameters: lora ? trainer.trainableParameters : trainer.totalParameters,
    };
  } finally {
    trainer.free();
  }
}

const peak = matmulPeakGflops(1024, 10);
process.stdout.write(`ggml fp32 mul_mat 1024x1024, ${THREADS} threads: ${peak.toFixed(1)} GFLOP/s (best of 10)\n`);

const starter = parseLlamaConfig({ ...STARTER_RECIPE.model, vocabSize: STARTER_RECIPE.vocabSize });
const S = STARTER_RECIPE.sequenceLength;
const starterFull = await tokensPerSecond(starter, undefined, S, STARTER_RECIPE.batchSize, 10);
process.stdout.write(
  `starter model (${starterFull.parameters} params) full training: ${starterFull.tokensPerSecond.toFixed(0)} tokens/s\n`,
);

const medium = parseLlamaConfig({
  vocabSize: 512,
  contextLength: 128,
  embeddingLength: 256,
  blockCount: 4,
  headCount: 8,
  feedForwardLength: 704,
});
const full = await tokensPerSecond(medium, undefined, 128, 4, 8);
const flops = full.tokensPerSecond * trainingFlopsPerToken(medium, 128);
process.stdout.write(
  `${(full.parameters / 1e6).toFixed(2)}M-param model full training: ${full.tokensPerSecond.toFixed(0)} tokens/s, ` +
    `${(flops / 1e9).toFixed(1)} GFLOP/s = ${(flops / 1e9 / peak).toFixed(2)} of the mul_mat peak\n`,
);
const lora = await tokensPerSecond(
  medium,
  { rank: 8, alpha: 16, targets: ['attn_q', 'attn_v', 'ffn_up', 'ffn_down', 'output'] },
  128,
  4,
  8,
);
process.stdout.write(
  `same model, LoRA r=8 (${lora.parameters} trainable params): ${lora.tokensPerSecond.toFixed(0)} tokens/s ` +
    `(${(lora.tokensPerSecond / full.tokensPerSecond).toFixed(2)}x full)\n`,
);

/**
 * A random-weight llama GGUF of this shape, stored as `type`, with a synthetic SentencePiece vocabulary:
 * the bench feeds random token ids, so the vocabulary only has to be valid and of a realistic size.
 */
async function writeBenchBase(
  file: string,
  hparams: Omit<LlamaHyperparameters, 'nVocab'>,
  vocab: number,
  type: GgufTensorType,
) {
  const tokens = ['<unk>', '<s>', '</s>'];
  const tokenTypes: TokenType[] = [TokenType.unknown, TokenType.control, TokenType.control];
  for (let byte = 0; byte < 256; byte++) {
    tokens.push(`<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`);
    tokenTypes.push(TokenType.byte);
  }
  for (let i = tokens.length; i < vocab; i++) {
    tokens.push(`▁w${i}`);
    tokenTypes.push(TokenType.normal);
  }
  const shape = { ...hparams, nVocab: vocab };
  const random = seededRandom(7);
  const tensors = new Map<string, Float32Array>();
  for (const [name, dims] of llamaTensorShapes(shape)) {
    const [rows = 1, columns = 1] = dims;
    const values = new Float32Array(rows * (dims.length === 2 ? columns : 1));
    if (dims.length === 1) values.fill(1);
    else for (let i = 0; i < values.length; i++) values[i] = (random() - 0.5) * (2 / Math.sqrt(columns));
    tensors.set(name, values);
  }
  await writeLlamaGguf(file, {
    name: 'bench-base',
    hparams: shape,
    tokenizer: { model: 'llama', tokens, scores: tokens.map((_, i) => -i), tokenTypes, unkId: 0, bosId: 1, eosId: 2 },
    tensors,
    weightType: type,
  });
}

/**
 * Multiply-adds of one LoRA training token on a frozen base: the forward pass and the gradients of the
 * activations through every frozen matmul (2 + 2 per weight), no weight gradients; attention forward and
 * backward (3x its forward); the adapters are negligible at rank 8.
 */
function loraFlopsPerToken(matmulParams: number, T: number, hparams: { nEmbd: number; nLayer: number }): number {
  return 4 * matmulParams + 3 * 4 * T * hparams.nEmbd * hparams.nLayer;
}

async function ggufLoraTokensPerSecond(
  file: string,
  T: number,
  B: number,
  steps: number,
): Promise<{ tokensPerSecond: number; flopsFraction: number; parameters: number }> {
  const base = await readLlamaBase(file);
  const reader = await openGguf(file);
  const lora: LoraConfig = { rank: 8, alpha: 16, targets: ['attn_q', 'attn_v', 'ffn_up', 'ffn_down', 'output'] };
  const random = createRandom(13);
  const values = new Map(
    ggufLoraTensorSpecs(base, lora).map((s) => [s.name, initialValues(s, { blockCount: base.hparams.nLayer }, random)]),
  );
  const trainer = await createGgufLoraTrainer(ggml, {
    base,
    reader,
    lora: { config: lora, values },
    sequenceLength: T,
    batchSize: B,
    threads: THREADS,
    learningRate: 1e-3,
  });
  await reader.close();
  const V = base.hparams.nVocab;
  const tokens = () => Int32Array.from({ length: B * T }, () => Math.floor(random.uniform() * V));
  try {
    await trainer.step(tokens(), tokens(), 1e-3);
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) await trainer.step(tokens(), tokens(), 1e-3);
    const tokensPerSecond = (steps * B * T) / ((performance.now() - t0) / 1000);
    let matmulParams = 0;
    for (const info of base.tensors.values())
      if (info.dims.length === 2 && info.name !== 'token_embd.weight') matmulParams += info.elements;
    if (base.tiedEmbeddings) matmulParams += base.hparams.nVocab * base.hparams.nEmbd;
    const flops = tokensPerSecond * loraFlopsPerToken(matmulParams, T, base.hparams);
    return {
      tokensPerSecond,
      flopsFraction: flops / 1e9 / peak,
      parameters: trainer.totalParameters,
    };
  } finally {
    trainer.free();
  }
}

const work = await mkdtemp(path.join(tmpdir(), 'bertha-bench-training-'));
const ggufFigures: Record<string, number> = {};
const SIZES = {
  // ~11M parameters: 8 blocks of 256, an 8k vocabulary.
  '10m': {
    shape: { nCtx: 512, nEmbd: 256, nLayer: 8, nHead: 4, nHeadKv: 4, nFf: 768, ropeFreqBase: 10000, rmsEps: 1e-5 },
    vocab: 8000,
  },
  // ~97M parameters: 12 blocks of 768, grouped-query attention (12 query heads on 4 K/V heads).
  '100m': {
    shape: { nCtx: 512, nEmbd: 768, nLayer: 12, nHead: 12, nHeadKv: 4, nFf: 2048, ropeFreqBase: 10000, rmsEps: 1e-5 },
    vocab: 8000,
  },
} as const;
const RUNS: { size: keyof typeof SIZES; type: GgufTensorType; steps: number }[] = [
  { size: '10m', type: 'F16', steps: 3 },
  { size: '10m', type: 'Q8_0', steps: 3 },
  { size: '10m', type: 'Q4_0', steps: 3 },
  { size: '10m', type: 'Q4_K', steps: 3 },
  { size: '10m', type: 'Q6_K', steps: 3 },
  { size: '100m', type: 'Q8_0', steps: 2 },
  { size: '100m', type: 'Q4_K', steps: 2 },
];
const GGUF_T = 128;
const GGUF_B = 2;
try {
  for (const run of RUNS) {
    const { shape, vocab } = SIZES[run.size];
    const file = path.join(work, `${run.size}-${run.type}.gguf`);
    await writeBenchBase(file, shape, vocab, run.type);
    const result = await ggufLoraTokensPerSecond(file, GGUF_T, GGUF_B, run.steps);
    await rm(file);
    const key = `${run.type.toLowerCase()}_${run.size}`;
    ggufFigures[`lora_gguf_tokens_per_s_${key}`] = round(result.tokensPerSecond, 0);
    ggufFigures[`lora_step_flops_fraction_${key}`] = round(result.flopsFraction, 3);
    process.stdout.write(
      `LoRA r=8 on a ${(result.parameters / 1e6).toFixed(1)}M-param ${run.type} GGUF (T=${GGUF_T}, B=${GGUF_B}): ` +
        `${result.tokensPerSecond.toFixed(0)} tokens/s, ${result.flopsFraction.toFixed(3)} of the mul_mat peak\n`,
    );
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
reportFigures({
  ...ggufFigures,
  // The headline pair: the 100M Q4_K base, the type of a Q4_K_M 7B.
  lora_gguf_tokens_per_s: ggufFigures.lora_gguf_tokens_per_s_q4_k_100m ?? 0,
  lora_step_flops_fraction: ggufFigures.lora_step_flops_fraction_q4_k_100m ?? 0,
  train_tokens_per_s: round(full.tokensPerSecond, 0),
  lora_tokens_per_s: round(lora.tokensPerSecond, 0),
  starter_train_tokens_per_s: round(starterFull.tokensPerSecond, 0),
  matmul_peak_gflops: round(peak, 1),
  matmul_peak_fraction: round(flops / 1e9 / peak, 3),
  lora_speedup_vs_full: round(lora.tokensPerSecond / full.tokensPerSecond, 2),
});
