import {
  type Ggml,
  GgmlType,
  metadataContext,
  type OptimizerParams,
  OptLoss,
  OptOptimizer,
  type Ptr,
  readF32,
  writeTensor,
} from './ffi/index.ts';
import { buildLlamaGraph, causalMask, graphShapeOf } from './graph.ts';
import {
  baseTensorSpecs,
  elementsOf,
  type LlamaConfig,
  type LoraConfig,
  loraTensorSpecs,
  parameterCount,
  type TensorSpec,
} from './model.ts';

export type TensorValues = Map<string, Float32Array>;

export interface LlamaTrainerOptions {
  config: LlamaConfig;
  /** Values of every base tensor. */
  base: TensorValues;
  /** Present: train only these adapters, the base stays frozen. Absent: train every base tensor. */
  lora?: { config: LoraConfig; values: TensorValues };
  sequenceLength: number;
  batchSize: number;
  threads: number;
  learningRate: number;
}

export interface LlamaTrainer {
  trainableParameters: number;
  totalParameters: number;
  /** One AdamW step on B windows: `inputs` and `targets` are B*T token ids, window after window. */
  step(inputs: Int32Array, targets: Int32Array, learningRate: number): Promise<number>;
  /** Mean cross-entropy on B windows without changing any weight. */
  loss(inputs: Int32Array, targets: Int32Array): Promise<number>;
  /** Current values of the trained tensors (base tensors for full training, A/B for LoRA). */
  trained(): TensorValues;
  /** Current values of every base tensor. */
  baseValues(): TensorValues;
  free(): void;
}

/** The graph's node budget for the scheduler; ggml-opt sizes its own graphs. */
const SCHED_GRAPH_SIZE = 16_384;
const COMPUTE_TENSORS = 32_768;

/** AdamW as every Bertha trainer runs it: no weight decay, beta2 0.99 for short runs. */
export function adamw(learningRate: number): OptimizerParams {
  return {
    adamw_alpha: learningRate,
    adamw_beta1: 0.9,
    adamw_beta2: 0.99,
    adamw_eps: 1e-8,
    adamw_wd: 0,
    sgd_alpha: learningRate,
    sgd_wd: 0,
  };
}

/** llama.cpp scales an adapter's output by alpha / rank (build_lora_mm). */
export function loraScale(lora: LoraConfig): number {
  return lora.alpha / lora.rank;
}

function checkValues(specs: readonly TensorSpec[], values: TensorValues, what: string): void {
  for (const spec of specs) {
    const v = values.get(spec.name);
    if (!v) throw new RangeError(`${what} lacks tensor ${spec.name}`);
    if (v.length !== elementsOf(spec.shape)) {
      throw new RangeError(
        `${what} tensor ${spec.name} has ${v.length} values, the model needs ${spec.shape.join('x')}`,
      );
    }
  }
}

export function checkTokens(tokens: Int32Array, vocabSize: number, what: string): void {
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i] as number;
    if (t < 0 || t >= vocabSize)
      throw new RangeError(`${what}: token ${t} at ${i} is outside the vocabulary (${vocabSize})`);
  }
}

/**
 * Builds the training graph once (ggml-opt's static mode: gradients are zeroed for us between
 * steps) and keeps the weights, AdamW moments and graphs on the CPU backend between steps.
 * Everything is validated here, before ggml sees it: a shape mismatch inside ggml aborts.
 */
export function createLlamaTrainer(ggml: Ggml, options: LlamaTrainerOptions): LlamaTrainer {
  const { fn } = ggml;
  const { config, sequenceLength: T, batchSize: B } = options;
  if (!Number.isInteger(T) || T < 2 || T > config.contextLength) {
    throw new RangeError(`sequence length ${T} must be within 2..${config.contextLength}`);
  }
  if (!Number.isInteger(B) || B < 1 || B > 256) throw new RangeError(`batch size ${B} must be within 1..256`);
  const baseSpecs = baseTensorSpecs(config);
  checkValues(baseSpecs, options.base, 'base weights');
  const loraSpecs = options.lora ? loraTensorSpecs(config, options.lora.config) : [];
  if (options.lora) checkValues(loraSpecs, options.lora.values, 'LoRA adapter');
  const trainBase = !options.lora;
  const N = T * B;

  const backend = ggml.cpuBackend(options.threads);
  const ctxWeights = metadataContext(ggml, baseSpecs.length + loraSpecs.length + 8);
  const tensors = new Map<string, Ptr>();
  const create = (spec: TensorSpec, trainable: boolean): Ptr => {
    const [ne0, ne1] = spec.shape as [number, number | undefined];
    const t =
      ne1 === undefined
        ? fn.new_tensor_1d(ctxWeights, GgmlType.F32, ne0)
        : fn.new_tensor_2d(ctxWeights, GgmlType.F32, ne0, ne1);
    if (!t) throw new RangeError(`ggml could not create ${spec.name}`);
    fn.set_name(t, spec.name);
    if (trainable) fn.set_param(t);
    tensors.set(spec.name, t);
    return t;
  };
  for (const spec of baseSpecs) create(spec, trainBase);
  for (const spec of loraSpecs) create(spec, true);
  const tokens = fn.new_tensor_2d(ctxWeights, GgmlType.I32, T, B) as Ptr;
  const positions = fn.new_tensor_1d(ctxWeights, GgmlType.I32, T) as Ptr;
  const mask = fn.new_tensor_2d(ctxWeights, GgmlType.F32, T, T) as Ptr;
  fn.set_input(tokens);
  const weightBuffer = fn.backend_alloc_ctx_tensors(ctxWeights, backend);
  if (!weightBuffer) throw new RangeError('could not allocate the weight buffer');
  for (const spec of baseSpecs)
    writeTensor(ggml, tensors.get(spec.name) as Ptr, options.base.get(spec.name) as Float32Array);
  for (const spec of loraSpecs) {
    writeTensor(ggml, tensors.get(spec.name) as Ptr, options.lora?.values.get(spec.name) as Float32Array);
  }
  writeTensor(
    ggml,
    positions,
    Int32Array.from({ length: T }, (_, i) => i),
  );
  writeTensor(ggml, mask, causalMask(T));

  const ctxCompute = metadataContext(ggml, COMPUTE_TENSORS, 2048);
  const baseTensors = new Map(baseSpecs.map((s) => [s.name, tensors.get(s.name) as Ptr]));
  const loraTensors = new Map(loraSpecs.map((s) => [s.name, tensors.get(s.name) as Ptr]));
  const logits = buildLlamaGraph(fn, ctxCompute, {
    shape: graphShapeOf(config),
    weights: baseTensors,
    ...(options.lora ? { lora: { scale: loraScale(options.lora.config), tensors: loraTensors } } : {}),
    tokens,
    positions,
    mask,
    sequenceLength: T,
    batchSize: B,
  });

  const sched = fn.sched_new([backend], null, 1, SCHED_GRAPH_SIZE, false, false);
  if (!sched) throw new RangeError('ggml_backend_sched_new failed');
  const optimizerParams = ggml.allocOptimizerParams(adamw(options.learningRate));
  const params = fn.opt_default_params(sched, OptLoss.CROSS_ENTROPY);
  const opt = fn.opt_init({
    ...params,
    ctx_compute: ctxCompute,
    inputs: tokens,
    outputs: logits,
    optimizer: OptOptimizer.ADAMW,
    get_opt_pars: ggml.constantOptimizerParams,
    get_opt_pars_ud: optimizerParams.address,
  });
  if (!opt) throw new RangeError('ggml_opt_init failed');
  const result = fn.opt_result_init() as Ptr;
  const labels = new Float32Array(config.vocabSize * N);

  const run = async (inputs: Int32Array, targets: Int32Array, backward: boolean): Promise<number> => {
    if (inputs.length !== N || targets.length !== N) throw new RangeError(`a batch is ${N} tokens`);
    checkTokens(inputs, config.vocabSize, 'inputs');
    checkTokens(targets, config.vocabSize, 'targets');
    fn.opt_alloc(opt, backward);
    labels.fill(0);
    for (let i = 0; i < N; i++) labels[i * config.vocabSize + (targets[i] as number)] = 1;
    writeTensor(ggml, tokens, inputs);
    writeTensor(ggml, fn.opt_labels(opt) as Ptr, labels);
    fn.opt_result_reset(result);
    await new Promise<void>((resolve, reject) =>
      fn.opt_eval.async(opt, result, (error) => (error ? reject(error) : resolve())),
    );
    const loss = [0];
    fn.opt_result_loss(result, loss, [0]);
    return loss[0] as number;
  };

  const read = (specs: readonly TensorSpec[]): TensorValues =>
    new Map(specs.map((s) => [s.name, readF32(ggml, tensors.get(s.name) as Ptr)]));

  return {
    trainableParameters: parameterCount(trainBase ? baseSpecs : loraSpecs),
    totalParameters: parameterCount(baseSpecs) + parameterCount(loraSpecs),
    step(inputs, targets, learningRate) {
      optimizerParams.update(adamw(learningRate));
      return run(inputs, targets, true);
    },
    loss: (inputs, targets) => run(inputs, targets, false),
    trained: () => read(trainBase ? baseSpecs : loraSpecs),
    baseValues: () => read(baseSpecs),
    free() {
      fn.opt_result_free(result);
      fn.opt_free(opt);
      fn.sched_free(sched);
      fn.backend_buffer_free(weightBuffer);
      fn.free(ctxCompute);
      fn.free(ctxWeights);
      fn.backend_free(backend);
    },
  };
}

/** Next-token logits [T][vocab] of one sequence through the same graph, forward only. */
export async function forwardLogits(
  ggml: Ggml,
  options: {
    config: LlamaConfig;
    base: TensorValues;
    lora?: { config: LoraConfig; values: TensorValues };
    threads: number;
  },
  sequence: Int32Array,
): Promise<Float32Array[]> {
  const { fn } = ggml;
  const { config } = options;
  const T = sequence.length;
  if (T < 1 || T > config.contextLength)
    throw new RangeError(`sequence length ${T} must be within 1..${config.contextLength}`);
  checkTokens(sequence, config.vocabSize, 'sequence');
  const baseSpecs = baseTensorSpecs(config);
  checkValues(baseSpecs, options.base, 'base weights');
  const loraSpecs = options.lora ? loraTensorSpecs(config, options.lora.config) : [];
  if (options.lora) checkValues(loraSpecs, options.lora.values, 'LoRA adapter');

  const backend = ggml.cpuBackend(options.threads);
  const ctx = metadataContext(ggml, baseSpecs.length + loraSpecs.length + 64 * (config.blockCount + 1), 4096);
  try {
    const tensors = new Map<string, Ptr>();
    for (const spec of [...baseSpecs, ...loraSpecs]) {
      const [ne0, ne1] = spec.shape as [number, number | undefined];
      const t = (
        ne1 === undefined ? fn.new_tensor_1d(ctx, GgmlType.F32, ne0) : fn.new_tensor_2d(ctx, GgmlType.F32, ne0, ne1)
      ) as Ptr;
      tensors.set(spec.name, t);
    }
    const tokens = fn.new_tensor_2d(ctx, GgmlType.I32, T, 1) as Ptr;
    const positions = fn.new_tensor_1d(ctx, GgmlType.I32, T) as Ptr;
    const mask = fn.new_tensor_2d(ctx, GgmlType.F32, T, T) as Ptr;
    const logits = buildLlamaGraph(fn, ctx, {
      shape: graphShapeOf(config),
      weights: new Map(baseSpecs.map((s) => [s.name, tensors.get(s.name) as Ptr])),
      ...(options.lora
        ? {
            lora: {
              scale: loraScale(options.lora.config),
              tensors: new Map(loraSpecs.map((s) => [s.name, tensors.get(s.name) as Ptr])),
            },
          }
        : {}),
      tokens,
      positions,
      mask,
      sequenceLength: T,
      batchSize: 1,
    });
    const graph = fn.new_graph_custom(ctx, 4096, false) as Ptr;
    fn.build_forward_expand(graph, logits);
    const buffer = fn.backend_alloc_ctx_tensors(ctx, backend);
    if (!buffer) throw new RangeError('could not allocate the forward graph');
    try {
      for (const spec of baseSpecs)
        writeTensor(ggml, tensors.get(spec.name) as Ptr, options.base.get(spec.name) as Float32Array);
      for (const spec of loraSpecs) {
        writeTensor(ggml, tensors.get(spec.name) as Ptr, options.lora?.values.get(spec.name) as Float32Array);
      }
      writeTensor(ggml, tokens, sequence);
      writeTensor(
        ggml,
        positions,
        Int32Array.from({ length: T }, (_, i) => i),
      );
      writeTensor(ggml, mask, causalMask(T));
      const status = await new Promise<number>((resolve, reject) =>
        fn.backend_graph_compute.async(backend, graph, (error, value) => (error ? reject(error) : resolve(value))),
      );
      if (status !== 0) throw new RangeError(`ggml_backend_graph_compute returned ${status}`);
      const flat = readF32(ggml, logits);
      const V = config.vocabSize;
      return Array.from({ length: T }, (_, t) => flat.slice(t * V, (t + 1) * V));
    } finally {
      fn.backend_buffer_free(buffer);
    }
  } finally {
    fn.free(ctx);
    fn.backend_free(backend);
  }
}
