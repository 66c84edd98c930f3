import koffi from 'koffi';
import { BerthaError } from '../../core/errors.ts';
import { type Batch, type LibLlama, loadLibLlama, type Ptr } from './libllama.ts';

/**
 * llama.cpp's server loop, in process: one context with a sequence per slot, and every running
 * sequence's next tokens in one `llama_decode` per step (prompt chunks and sampled tokens alike),
 * on a persistent ggml threadpool. A sequence keeps its tokens in the KV cache after its task
 * ends, so the next task on it evaluates only what differs from them.
 */
export interface DecoderOptions {
  modelPath: string;
  adapters: Array<{ path: string; scale: number }>;
  /** Layers on the GPU; 0 on CPU. */
  gpuLayers: number;
  sequences: number;
  /** Tokens per sequence. */
  sequenceSize: number;
  /** Most tokens one decode takes (llama.cpp's n_batch). */
  batchSize: number;
  threads: number;
  /** Which llama.cpp node-llama-cpp loaded: the decoder binds the same one. */
  binary?: 'localBuild' | 'prebuilt' | undefined;
  /** 0..1 while the weights load. */
  onProgress?: ((progress: number) => void) | undefined;
}

/** What a task gets after a decode that computed outputs for it; valid only during the call. */
export interface TokenOutput {
  /** The model's next-token logits after this position (a view of llama.cpp's buffer). */
  logits(): Float32Array;
}

export interface TaskBase {
  seq: number;
  /** Tokens the sequence must hold before anything is sampled; the shared prefix with what it holds is reused. */
  tokens: readonly number[];
  /** At most this many leading tokens are reused from the cache (their outputs cannot be had again). */
  reuseAtMost?: number | undefined;
  signal?: AbortSignal | undefined;
}

export interface ScoreTask extends TaskBase {
  /** Outputs wanted after every position from here to the last token. */
  scoreFrom: number;
  onScore(position: number, output: TokenOutput): void;
}

export interface GenerateTask extends TaskBase, Partial<Pick<ScoreTask, 'scoreFrom' | 'onScore'>> {
  /** A llama_sampler chain; the task frees it when it ends. */
  sampler: Ptr;
  maxTokens: number;
  /** Called with each sampled token; false ends generation (the token is then not evaluated). */
  onToken(token: number, output: TokenOutput): boolean;
}

export interface TaskResult {
  /** Prompt tokens taken from the sequence's cache instead of evaluated. */
  reused: number;
  /** Tokens sampled. */
  sampled: number;
  cancelled: boolean;
}

export interface Decoder {
  readonly sequenceSize: number;
  readonly vocabSize: number;
  readonly vocab: Ptr;
  /** Threads of the pool that decode (at most the pool's size); only while no task runs. */
  setThreads(threads: number): void;
  readonly lib: LibLlama;
  /** Decodes run since the decoder opened, and how many sequences each of the last 512 carried. */
  readonly stats: { decodes: number; sequencesPerDecode: number[] };
  /** Tokens sequence `seq` holds in its KV cache. */
  held(seq: number): readonly number[];
  generate(task: GenerateTask): Promise<TaskResult>;
  score(task: ScoreTask): Promise<TaskResult>;
  close(): Promise<void>;
}

export class DecodeError extends BerthaError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('decode_failed', message, 500, details);
  }
}

interface Running {
  seq: number;
  /** Tokens still to evaluate before sampling. */
  pending: number[];
  /** Position in the sequence of `pending[0]`. */
  position: number;
  /** Cells from here on are dropped from the sequence before its first batch (between decodes). */
  trimFrom: number | undefined;
  scoreFrom: number;
  onScore: ScoreTask['onScore'] | undefined;
  generate: GenerateTask | undefined;
  sampled: number;
  reused: number;
  signal: AbortSignal | undefined;
  resolve(result: TaskResult): void;
  reject(error: unknown): void;
}

const sharedPrefix = (a: readonly number[], b: readonly number[]) => {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
};

export async function openDecoder(options: DecoderOptions): Promise<Decoder> {
  const lib = loadLibLlama(options.binary);
  const { fn } = lib;
  const modelParams = fn.model_default_params();
  modelParams.n_gpu_layers = options.gpuLayers;
  const model = fn.model_load_from_file(options.modelPath, modelParams);
  if (!model) throw new DecodeError(`llama.cpp cannot load ${options.modelPath}`, { modelPath: options.modelPath });
  options.onProgress?.(1);
  const contextParams = fn.context_default_params();
  Object.assign(contextParams, {
    n_ctx: options.sequenceSize * options.sequences,
    n_batch: options.batchSize,
    n_ubatch: Math.min(options.batchSize, 512),
    n_seq_max: options.sequences,
    n_threads: options.threads,
    n_threads_batch: options.threads,
    // As llama.cpp's server with a set number of slots: a KV stream per sequence, so a
    // sequence attends over its own cells only.
    kv_unified: false,
    no_perf: true,
  });
  const created = fn.init_from_model(model, contextParams);
  if (!created) {
    fn.model_free(model);
    throw new DecodeError(`llama.cpp cannot create a context for ${options.modelPath}`, {
      contextSize: contextParams.n_ctx,
    });
  }
  const ctx: Ptr = created;
  const pool = lib.threadpool(options.threads);
  fn.attach_threadpool(ctx, pool.pool, pool.pool);
  const adapterPointers: Ptr[] = [];
  for (const adapter of options.adapters) {
    const pointer = fn.adapter_lora_init(model, adapter.path);
    if (!pointer) {
      fn.free(ctx);
      pool.free();
      fn.model_free(model);
      throw new DecodeError(`llama.cpp cannot load the LoRA adapter ${adapter.path}`, { adapter: adapter.path });
    }
    adapterPointers.push(pointer);
  }
  if (adapterPointers.length > 0) {
    fn.set_adapters_lora(
      ctx,
      BigUint64Array.from(adapterPointers),
      adapterPointers.length,
      Float32Array.from(options.adapters.map((adapter) => adapter.scale)),
    );
  }
  const vocab = fn.model_get_vocab(model);
  const vocabSize = fn.vocab_n_tokens(vocab);
  const sequenceSize = fn.n_ctx_seq(ctx);
  const memory = fn.get_memory(ctx);

  // llama.cpp caps n_batch at the context's size.
  const capacity = fn.n_batch(ctx);
  const batch: Batch = fn.batch_init(capacity, 0, 1);
  const tokenIds = new Int32Array(koffi.view(batch.token, capacity * 4));
  const positions = new Int32Array(koffi.view(batch.pos, capacity * 4));
  const seqCounts = new Int32Array(koffi.view(batch.n_seq_id, capacity * 4));
  const outputs = new Int8Array(koffi.view(batch.logits, capacity));
  const seqIdPointers = new BigUint64Array(koffi.view(batch.seq_id, capacity * 8));
  const seqIds = Array.from({ length: capacity }, (_, i) => new Int32Array(koffi.view(seqIdPointers[i] as bigint, 4)));
  seqCounts.fill(1);

  const held: number[][] = Array.from({ length: options.sequences }, () => []);
  const running = new Map<number, Running>();
  let looping: Promise<void> | undefined;
  let closed = false;
  // The last few hundred decodes' sequence counts: what batching achieved, for tests and benchmarks.
  const stats = { decodes: 0, sequencesPerDecode: [] as number[] };

  const decode = (n: number) =>
    new Promise<number>((resolve, reject) => {
      batch.n_tokens = n;
      fn.decode.async(ctx, batch, (error, result) => (error ? reject(error) : resolve(result)));
    });

  const outputAt = (index: number): TokenOutput => ({
    logits() {
      const pointer = fn.get_logits_ith(ctx, index);
      if (!pointer) throw new DecodeError(`llama.cpp has no logits for batch entry ${index}`);
      return new Float32Array(koffi.view(pointer, vocabSize * 4));
    },
  });

  function finish(task: Running, error?: unknown) {
    running.delete(task.seq);
    if (task.generate) fn.sampler_free(task.generate.sampler);
    if (error) task.reject(error);
    else task.resolve({ reused: task.reused, sampled: task.sampled, cancelled: task.signal?.aborted === true });
  }

  /** One batch: each task's pending tokens in turn, as many as fit. */
  async function step(): Promise<void> {
    const entries: Array<{ task: Running; from: number; count: number; firstPosition: number }> = [];
    let n = 0;
    // Sampled tokens first, then prompt chunks in the room left, as llama.cpp's server fills a batch.
    const order = [...running.values()].sort((a, b) => Number(b.sampled > 0) - Number(a.sampled > 0));
    for (const task of order) {
      // Applied even to a task that ends here: `held` already says the cells are gone.
      if (task.trimFrom !== undefined) {
        fn.memory_seq_rm(memory, task.seq, task.trimFrom, -1);
        task.trimFrom = undefined;
      }
      if (task.signal?.aborted) {
        finish(task);
        continue;
      }
      if (closed) {
        finish(task, new DecodeError('the decoder is closing'));
        continue;
      }
      const count = Math.min(task.pending.length, capacity - n);
      if (count === 0) continue;
      const firstPosition = task.position;
      for (let i = 0; i < count; i++) {
        const position = firstPosition + i;
        tokenIds[n + i] = task.pending[i] as number;
        positions[n + i] = position;
        (seqIds[n + i] as Int32Array)[0] = task.seq;
        const last = i === task.pending.length - 1;
        outputs[n + i] = (task.onScore && position >= task.scoreFrom) || (last && task.generate) ? 1 : 0;
      }
      entries.push({ task, from: n, count, firstPosition });
      n += count;
    }
    if (n === 0) return;
    stats.decodes++;
    stats.sequencesPerDecode.push(entries.length);
    if (stats.sequencesPerDecode.length > 512) stats.sequencesPerDecode.shift();
    const rc = await decode(n);
    if (rc !== 0) {
      // 1: no KV cell free for the batch (a sequence's window is full); anything else is llama.cpp's error.
      for (const { task } of entries) {
        fn.memory_seq_rm(memory, task.seq, -1, -1);
        held[task.seq] = [];
        finish(task, new DecodeError(`llama_decode failed with ${rc}`, { rc }));
      }
      return;
    }
    for (const { task, from, count, firstPosition } of entries) {
      if (running.get(task.seq) !== task) continue;
      const evaluated = task.pending.splice(0, count);
      (held[task.seq] as number[]).push(...evaluated);
      task.position += count;
      try {
        if (task.onScore) {
          for (let i = 0; i < count; i++) {
            if (firstPosition + i >= task.scoreFrom) task.onScore(firstPosition + i, outputAt(from + i));
          }
        }
        if (task.pending.length > 0) continue;
        const generation = task.generate;
        if (!generation || task.sampled >= generation.maxTokens || task.signal?.aborted) {
          finish(task);
          continue;
        }
        const index = from + count - 1;
        const token = fn.sampler_sample(generation.sampler, ctx, index);
        task.sampled++;
        const more = generation.onToken(token, outputAt(index));
        if (more && task.sampled < generation.maxTokens && !task.signal?.aborted) task.pending.push(token);
        else finish(task);
      } catch (error) {
        finish(task, error);
      }
    }
  }

  function loop(): Promise<void> {
    looping ??= (async () => {
      try {
        while (running.size > 0) await step();
      } finally {
        looping = undefined;
      }
    })();
    return looping;
  }

  function start(task: TaskBase, extra: Pick<Running, 'scoreFrom' | 'onScore' | 'generate'>): Promise<TaskResult> {
    const refused = closed
      ? 'the decoder is closed'
      : running.has(task.seq)
        ? `sequence ${task.seq} is busy`
        : task.tokens.length === 0
          ? 'nothing to evaluate'
          : undefined;
    if (refused) {
      if (extra.generate) fn.sampler_free(extra.generate.sampler);
      return Promise.reject(new DecodeError(refused));
    }
    const cache = held[task.seq] as number[];
    // The last token is always evaluated: its output is what the task wants.
    const reuse = Math.min(sharedPrefix(cache, task.tokens), task.tokens.length - 1, task.reuseAtMost ?? Infinity);
    const trimFrom = reuse < cache.length ? reuse : undefined;
    cache.length = reuse;
    return new Promise<TaskResult>((resolve, reject) => {
      running.set(task.seq, {
        seq: task.seq,
        trimFrom,
        pending: task.tokens.slice(reuse),
        position: reuse,
        sampled: 0,
        reused: reuse,
        signal: task.signal,
        resolve,
        reject,
        ...extra,
      });
      loop().catch((error: unknown) => {
        for (const pending of running.values()) finish(pending, error);
      });
    });
  }

  return {
    sequenceSize,
    vocabSize,
    vocab,
    lib,
    stats,
    held: (seq) => held[seq] ?? [],
    generate(task) {
      const scoreFrom = task.onScore ? (task.scoreFrom ?? 0) : Number.POSITIVE_INFINITY;
      return start(
        { ...task, reuseAtMost: Math.min(task.reuseAtMost ?? Number.POSITIVE_INFINITY, scoreFrom) },
        { scoreFrom, onScore: task.onScore, generate: task },
      );
    },
    setThreads(threads) {
      if (running.size > 0) throw new DecodeError('cannot change threads while decoding');
      fn.set_n_threads(ctx, threads, threads);
    },
    score(task) {
      return start(
        { ...task, reuseAtMost: Math.min(task.reuseAtMost ?? Number.POSITIVE_INFINITY, task.scoreFrom) },
        {
          scoreFrom: task.scoreFrom,
          onScore: task.onScore,
          generate: undefined,
        },
      );
    },
    async close() {
      if (closed) return;
      closed = true;
      // The loop ends every task at its next step; the context is freed only once no decode runs.
      await looping?.catch(() => undefined);
      fn.batch_free(batch);
      fn.free(ctx);
      pool.free();
      fn.model_free(model);
    },
  };
}
