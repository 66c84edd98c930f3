/**
 * LoRA on a served Llama-family GGUF: the base stays frozen in its stored type (F32, F16 or a quantized type)
 * inside one ggml buffer, and only the adapter's A/B tensors are trained. Gradients reach the adapters through
 * the frozen matmuls' backward (`ggml_out_prod` with a quantized first operand), so the memory a step needs
 * grows with the sequence and the adapter, not with a dequantized copy of the base.
 */
import { ValidationError } from '../core/errors.ts';
import type { GgufFileReader, LlamaBase } from '../gguf/index.ts';
import { float16BitsToFloat32, GGML_TYPES, openGguf, writeLoraGguf } from '../gguf/index.ts';
import { type Ggml, GgmlType, OptLoss, OptOptimizer, type Ptr, readF32, writeTensor } from './ffi/index.ts';
import { buildLlamaGraph, causalMask, graphNodeBudget, type LlamaGraphShape } from './graph.ts';
import {
  elementsOf,
  LORA_TARGETS,
  type LoraConfig,
  type LoraTarget,
  parameterCount,
  type TensorSpec,
} from './model.ts';
import type { TensorValues } from './session.ts';
import { adamw, checkTokens, loraScale } from './session.ts';

export function graphShapeOfBase(base: LlamaBase): LlamaGraphShape {
  const h = base.hparams;
  return {
    embeddingLength: h.nEmbd,
    blockCount: h.nLayer,
    headCount: h.nHead,
    headCountKv: h.nHeadKv,
    headDim: h.headDim,
    rmsEps: h.rmsEps,
    ropeFreqBase: h.ropeFreqBase,
    ropeFreqScale: h.ropeFreqScale,
    contextLength: h.nCtxTrain,
  };
}

/** Adapter tensors for `lora` on this base, shaped as llama.cpp's adapter loader checks them. */
export function ggufLoraTensorSpecs(base: LlamaBase, lora: LoraConfig): TensorSpec[] {
  if (lora.targets.includes('output') && base.tiedEmbeddings) {
    throw new ValidationError(
      `${base.path} ties its output projection to token_embd.weight, which llama.cpp does not adapt as 'output'; leave 'output' out of the LoRA targets`,
    );
  }
  const names = lora.targets.flatMap((target) =>
    target === 'output'
      ? ['output.weight']
      : Array.from({ length: base.hparams.nLayer }, (_, i) => `blk.${i}.${target}.weight`),
  );
  return names.flatMap((name): TensorSpec[] => {
    const [inDim, outDim] = (base.tensors.get(name)?.dims ?? []) as [number, number];
    return [
      { name: `${name}.lora_a`, shape: [inDim, lora.rank], init: 'lora_a' },
      { name: `${name}.lora_b`, shape: [lora.rank, outDim], init: 'zeros' },
    ];
  });
}

export interface GgufLoraTrainerOptions {
  base: LlamaBase;
  /** The base file, open: tensors are read from it one at a time into ggml's buffer. */
  reader: GgufFileReader;
  lora: { config: LoraConfig; values: TensorValues };
  sequenceLength: number;
  batchSize: number;
  threads: number;
  learningRate: number;
  signal?: AbortSignal;
}

export interface GgufLoraTrainer {
  trainableParameters: number;
  /** Base parameters plus the adapter's. */
  totalParameters: number;
  /** Bytes the frozen base takes in ggml's buffer (its size on disk, tensor data only). */
  baseBytes: number;
  /** One AdamW step on B windows: `inputs` and `targets` are B*T token ids, window after window. */
  step(inputs: Int32Array, targets: Int32Array, learningRate: number): Promise<number>;
  /** Mean cross-entropy on B windows without changing any weight. */
  loss(inputs: Int32Array, targets: Int32Array): Promise<number>;
  /** Next-token logits of the B windows, [B*T][vocab] flattened, through the same graph, forward only. */
  logits(inputs: Int32Array): Promise<Float32Array>;
  /** Current adapter values by tensor name. */
  adapter(): TensorValues;
  free(): void;
}

function metadataContextFor(ggml: Ggml, tensors: number, graphNodes: number, graphs: number): Ptr {
  const size = tensors * ggml.fn.tensor_overhead() + graphs * ggml.fn.graph_overhead_custom(graphNodes, true);
  const ctx = ggml.fn.init({ mem_size: size, mem_buffer: null, no_alloc: true });
  if (!ctx) throw new RangeError(`ggml_init could not reserve ${size} bytes`);
  return ctx;
}

/**
 * Loads the base once and keeps weights, adapter, AdamW moments and the scheduler between steps. The graph is
 * rebuilt every step in a fresh context sized for the model (ggml-opt's static mode caps a graph at 2048 nodes,
 * about 8 blocks); in that mode ggml-opt keeps the gradient accumulators between steps, so each step zeroes them.
 */
export async function createGgufLoraTrainer(ggml: Ggml, options: GgufLoraTrainerOptions): Promise<GgufLoraTrainer> {
  const { fn } = ggml;
  const { base, sequenceLength: T, batchSize: B } = options;
  const vocab = base.hparams.nVocab;
  if (!Number.isInteger(T) || T < 2 || T > base.hparams.nCtxTrain) {
    throw new ValidationError(`sequence length ${T} must be within 2..${base.hparams.nCtxTrain}`);
  }
  if (!Number.isInteger(B) || B < 1 || B > 256) throw new ValidationError(`batch size ${B} must be within 1..256`);
  const loraSpecs = ggufLoraTensorSpecs(base, options.lora.config);
  for (const spec of loraSpecs) {
    const values = options.lora.values.get(spec.name);
    if (values?.length !== elementsOf(spec.shape)) {
      throw new ValidationError(`LoRA tensor ${spec.name} must hold ${spec.shape.join('x')} values`);
    }
  }
  const shape = graphShapeOfBase(base);
  const budget = graphNodeBudget(shape);
  const N = T * B;

  const backend = ggml.cpuBackend(options.threads);
  const ctxWeights = metadataContextFor(ggml, base.tensors.size + loraSpecs.length + 8, 0, 0);
  const weights = new Map<string, Ptr>();
  const newTensor = (code: number, dims: readonly number[]): Ptr => {
    const [ne0 = 1, ne1] = dims;
    const t =
      ne1 === undefined ? fn.new_tensor_1d(ctxWeights, code, ne0) : fn.new_tensor_2d(ctxWeights, code, ne0, ne1);
    if (!t) throw new RangeError('ggml could not create a tensor');
    return t;
  };
  let baseBytes = 0;
  for (const info of base.tensors.values()) {
    if (info.dims.length > 2)
      throw new ValidationError(`${base.path}: tensor ${info.name} has ${info.dims.length} dimensions`);
    const t = newTensor(GGML_TYPES[info.type].code, info.dims);
    fn.set_name(t, info.name);
    weights.set(info.name, t);
    baseBytes += info.byteLength;
  }
  const adapters = new Map<string, Ptr>();
  for (const spec of loraSpecs) {
    const t = newTensor(GgmlType.F32, spec.shape);
    fn.set_name(t, spec.name);
    fn.set_param(t);
    adapters.set(spec.name, t);
  }
  const tokens = fn.new_tensor_2d(ctxWeights, GgmlType.I32, T, B) as Ptr;
  const positions = fn.new_tensor_1d(ctxWeights, GgmlType.I32, T) as Ptr;
  const mask = fn.new_tensor_2d(ctxWeights, GgmlType.F32, T, T) as Ptr;
  fn.set_input(tokens);
  const weightBuffer = fn.backend_alloc_ctx_tensors(ctxWeights, backend);
  if (!weightBuffer) {
    fn.free(ctxWeights);
    fn.backend_free(backend);
    throw new RangeError(`could not allocate ${baseBytes} bytes for the base weights`);
  }
  let sched: Ptr | null = null;
  let opt: Ptr | null = null;
  let result: Ptr | null = null;
  let ctxCompute: Ptr | null = null;
  const free = () => {
    if (result) fn.opt_result_free(result);
    if (opt) fn.opt_free(opt);
    if (sched) fn.sched_free(sched);
    if (ctxCompute) fn.free(ctxCompute);
    fn.backend_buffer_free(weightBuffer);
    fn.free(ctxWeights);
    fn.backend_free(backend);
  };
  try {
    for (const info of base.tensors.values()) {
      const bytes = await options.reader.readTensor(info, options.signal);
      const t = weights.get(info.name) as Ptr;
      if (bytes.length !== Number(fn.nbytes(t))) {
        throw new ValidationError(
          `${base.path}: tensor ${info.name} holds ${bytes.length} bytes, ggml expects ${fn.nbytes(t)}`,
        );
      }
      fn.backend_tensor_set(t, bytes, 0, bytes.length);
    }
    for (const spec of loraSpecs)
      writeTensor(ggml, adapters.get(spec.name) as Ptr, options.lora.values.get(spec.name) as Float32Array);
    writeTensor(
      ggml,
      positions,
      Int32Array.from({ length: T }, (_, i) => i),
    );
    writeTensor(ggml, mask, causalMask(T));

    sched = fn.sched_new([backend], null, 1, budget, false, false);
    if (!sched) throw new RangeError('ggml_backend_sched_new failed');
  } catch (error) {
    free();
    throw error;
  }
  const optimizerParams = ggml.allocOptimizerParams(adamw(options.learningRate));
  opt = fn.opt_init({
    ...fn.opt_default_params(sched, OptLoss.CROSS_ENTROPY),
    optimizer: OptOptimizer.ADAMW,
    get_opt_pars: ggml.constantOptimizerParams,
    get_opt_pars_ud: optimizerParams.address,
  });
  result = fn.opt_result_init();
  if (!opt || !result) {
    free();
    throw new RangeError('ggml_opt_init failed');
  }
  const optCtx = opt;
  const optResult = result;
  const largestAdapter = Math.max(...loraSpecs.map((s) => elementsOf(s.shape)));
  const zeros = new Float32Array(largestAdapter);
  const labels = new Float32Array(vocab * N);
  const scale = loraScale(options.lora.config);

  const prepare = (backward: boolean): Ptr => {
    if (ctxCompute) fn.free(ctxCompute);
    // ggml-opt duplicates the forward graph twice (gradients, optimizer step) in this context.
    ctxCompute = metadataContextFor(ggml, 4 * budget, budget, 3);
    const logits = buildLlamaGraph(fn, ctxCompute, {
      shape,
      weights,
      ropeFreqs: weights.get('rope_freqs.weight'),
      lora: { scale, tensors: adapters },
      tokens,
      positions,
      mask,
      sequenceLength: T,
      batchSize: B,
    });
    const graph = fn.new_graph_custom(ctxCompute, budget, true);
    if (!graph) throw new RangeError('ggml_new_graph_custom failed');
    fn.build_forward_expand(graph, logits);
    fn.opt_prepare_alloc(optCtx, ctxCompute, graph, tokens, logits);
    fn.opt_alloc(optCtx, backward);
    if (backward) {
      for (const t of adapters.values()) {
        const accumulator = fn.opt_grad_acc(optCtx, t);
        if (accumulator) fn.backend_tensor_set(accumulator, zeros, 0, Number(fn.nbytes(accumulator)));
      }
    }
    return logits;
  };

  const run = async (inputs: Int32Array, targets: Int32Array | undefined, backward: boolean): Promise<Ptr> => {
    if (inputs.length !== N || (targets && targets.length !== N)) throw new RangeError(`a batch is ${N} tokens`);
    checkTokens(inputs, vocab, 'inputs');
    if (targets) checkTokens(targets, vocab, 'targets');
    const logits = prepare(backward);
    labels.fill(0);
    if (targets) for (let i = 0; i < N; i++) labels[i * vocab + (targets[i] as number)] = 1;
    writeTensor(ggml, tokens, inputs);
    writeTensor(ggml, fn.opt_labels(optCtx) as Ptr, labels);
    fn.opt_result_reset(optResult);
    await new Promise<void>((resolve, reject) =>
      fn.opt_eval.async(optCtx, optResult, (error) => (error ? reject(error) : resolve())),
    );
    return logits;
  };
  const lossOf = (): number => {
    const loss = [0];
    fn.opt_result_loss(optResult, loss, [0]);
    return loss[0] as number;
  };

  const adapterParameters = parameterCount(loraSpecs);
  let baseParameters = 0;
  for (const info of base.tensors.values()) baseParameters += info.elements;
  return {
    trainableParameters: adapterParameters,
    totalParameters: baseParameters + adapterParameters,
    baseBytes,
    async step(inputs, targets, learningRate) {
      optimizerParams.update(adamw(learningRate));
      await run(inputs, targets, true);
      return lossOf();
    },
    async loss(inputs, targets) {
      await run(inputs, targets, false);
      return lossOf();
    },
    async logits(inputs) {
      return readF32(ggml, await run(inputs, undefined, false));
    },
    adapter: () => new Map(loraSpecs.map((s) => [s.name, readF32(ggml, adapters.get(s.name) as Ptr)])),
    free,
  };
}

/**
 * Writes trained adapter values as a llama.cpp LoRA GGUF. ggml's `lora_a` {in, r} and `lora_b` {r, out} are,
 * row-major, A [r, in] and B [out, r]: the layout the adapter file stores, so the values go through unchanged.
 */
export async function writeGgufLoraAdapter(
  path: string,
  options: { base: LlamaBase; lora: LoraConfig; values: TensorValues; name?: string },
  signal?: AbortSignal,
): Promise<{ bytes: number }> {
  const targets = [...options.values.keys()]
    .filter((n) => n.endsWith('.lora_a'))
    .map((n) => n.slice(0, -'.lora_a'.length));
  return writeLoraGguf(
    path,
    {
      alpha: options.lora.alpha,
      name: options.name ?? `${options.base.name ?? 'base'}-lora`,
      weights: targets.map((target) => ({
        target,
        rank: options.lora.rank,
        a: options.values.get(`${target}.lora_a`) as Float32Array,
        b: options.values.get(`${target}.lora_b`) as Float32Array,
      })),
    },
    signal,
  );
}

const ADAPTED = /^(?:blk\.(\d+)\.([a-z_]+)|(output))\.weight\.lora_([ab])$/;

/**
 * Reads a LoRA GGUF on `base` as the starting point of further training: its alpha, rank and targets, and
 * its A/B values (F32 or F16). Only adapters the trainer's graph can continue are accepted: every target on
 * every block, one rank.
 */
export async function readGgufLoraAdapter(
  path: string,
  base: LlamaBase,
): Promise<{ config: LoraConfig; values: TensorValues }> {
  const reader = await openGguf(path);
  try {
    const { metadata, tensors } = reader.header;
    const text = (key: string) => {
      const v = metadata.get(key);
      return v?.type === 'string' ? v.value : undefined;
    };
    if (text('general.type') !== 'adapter' || text('adapter.type') !== 'lora') {
      throw new ValidationError(`${path} is not a LoRA adapter GGUF`);
    }
    const alphaValue = metadata.get('adapter.lora.alpha');
    const alpha = alphaValue && typeof alphaValue.value === 'number' ? alphaValue.value : 0;
    const targets = new Set<LoraTarget>();
    const ranks = new Set<number>();
    const values: TensorValues = new Map();
    for (const info of tensors) {
      const match = ADAPTED.exec(info.name);
      const target = (match?.[2] ?? match?.[3]) as LoraTarget | undefined;
      if (!match || !target || !LORA_TARGETS.includes(target)) {
        throw new ValidationError(`${path}: tensor ${info.name} is not an adapter of a projection the trainer adapts`);
      }
      targets.add(target);
      if (match[4] === 'a') ranks.add(info.dims[1] ?? 0);
      const bytes = await reader.readTensor(info);
      if (info.type === 'F32') {
        values.set(info.name, new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)));
      } else if (info.type === 'F16') {
        const out = new Float32Array(info.elements);
        for (let i = 0; i < out.length; i++) out[i] = float16BitsToFloat32(bytes.readUInt16LE(2 * i));
        values.set(info.name, out);
      } else {
        throw new ValidationError(
          `${path}: adapter tensor ${info.name} is ${info.type}; only F32 and F16 can be trained further`,
        );
      }
    }
    const [rank, ...otherRanks] = [...ranks];
    if (rank === undefined || otherRanks.length > 0 || !(alpha > 0)) {
      throw new ValidationError(`${path}: an adapter to continue needs one rank and a positive alpha`, {
        ranks: [...ranks],
        alpha,
      });
    }
    const config: LoraConfig = { rank, alpha, targets: LORA_TARGETS.filter((t) => targets.has(t)) };
    const expected = ggufLoraTensorSpecs(base, config);
    const missing = expected.filter((s) => values.get(s.name)?.length !== elementsOf(s.shape)).map((s) => s.name);
    if (missing.length > 0 || expected.length !== values.size) {
      throw new ValidationError(
        `${path} does not adapt every block of ${base.path} the same way (missing or mis-shaped: ${missing.slice(0, 5).join(', ') || 'none'})`,
      );
    }
    return { config, values };
  } finally {
    await reader.close();
  }
}
