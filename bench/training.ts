import { GgmlType, loadGgml, metadataContext, type Ptr, writeTensor } from '../src/train/ffi/index.ts';
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

reportFigures({
  train_tokens_per_s: round(full.tokensPerSecond, 0),
  lora_tokens_per_s: round(lora.tokensPerSecond, 0),
  starter_train_tokens_per_s: round(starterFull.tokensPerSecond, 0),
  matmul_peak_gflops: round(peak, 1),
  matmul_peak_fraction: round(flops / 1e9 / peak, 3),
  lora_speedup_vs_full: round(lora.tokensPerSecond / full.tokensPerSecond, 2),
});
