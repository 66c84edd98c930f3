import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import koffi from 'koffi';
import { BerthaError } from '../../core/errors.ts';
import {
  ggmlBinDir,
  PINNED_GGML_COMMIT,
  PINNED_GGML_VERSION,
  PINNED_LLAMA_CPP_COMMIT,
} from '../../native/llama-cpp-libs.ts';

/**
 * Bindings to the libllama that node-llama-cpp@3.21.1 has already loaded into this process
 * (llama.cpp 80fb11ac, prebuilt or built here by `npm run build:llama`): the runtime decodes
 * through them instead of node-llama-cpp's context, so that it can attach a persistent ggml
 * threadpool and decode every running sequence in one call, as llama.cpp's own server does.
 * Signatures and struct layouts are copied from that commit's llama.h and ggml.h; any other
 * ggml build is refused, since its structs may be laid out differently (the prebuilt binaries
 * report ggml's own commit, a build from the bundled source llama.cpp's).
 *
 * Pointers are BigInt addresses (koffi 3), null when C returns NULL.
 */
export type Ptr = bigint;

export class LlamaLibraryError extends BerthaError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('llama_unavailable', message, 500, details);
  }
}

/** struct llama_model_params (llama.h) */
const modelParamsType = koffi.struct('llama_model_params', {
  devices: 'void *',
  tensor_buft_overrides: 'void *',
  n_gpu_layers: 'int32_t',
  split_mode: 'int',
  load_mode: 'int',
  lazy_mode: 'int',
  main_gpu: 'int32_t',
  tensor_split: 'void *',
  progress_callback: 'void *',
  progress_callback_user_data: 'void *',
  kv_overrides: 'void *',
  vocab_only: 'bool',
  check_tensors: 'bool',
  use_extra_bufts: 'bool',
  no_host: 'bool',
  no_alloc: 'bool',
  load_mtp: 'bool',
});

/** struct llama_context_params (llama.h) */
const contextParamsType = koffi.struct('llama_context_params', {
  n_ctx: 'uint32_t',
  n_batch: 'uint32_t',
  n_ubatch: 'uint32_t',
  n_seq_max: 'uint32_t',
  n_rs_seq: 'uint32_t',
  n_outputs_max: 'uint32_t',
  n_outputs_max_per_seq: 'uint32_t',
  n_threads: 'int32_t',
  n_threads_batch: 'int32_t',
  ctx_type: 'int',
  rope_scaling_type: 'int',
  pooling_type: 'int',
  attention_type: 'int',
  flash_attn_type: 'int',
  rope_freq_base: 'float',
  rope_freq_scale: 'float',
  yarn_ext_factor: 'float',
  yarn_attn_factor: 'float',
  yarn_beta_fast: 'float',
  yarn_beta_slow: 'float',
  yarn_orig_ctx: 'uint32_t',
  defrag_thold: 'float',
  cb_eval: 'void *',
  cb_eval_user_data: 'void *',
  type_k: 'int',
  type_v: 'int',
  abort_callback: 'void *',
  abort_callback_data: 'void *',
  embeddings: 'bool',
  offload_kqv: 'bool',
  no_perf: 'bool',
  op_offload: 'bool',
  swa_full: 'bool',
  kv_unified: 'bool',
  samplers: 'void *',
  n_samplers: 'size_t',
  ctx_other: 'void *',
});

/** struct llama_batch (llama.h) */
const batchType = koffi.struct('llama_batch', {
  n_tokens: 'int32_t',
  token: 'void *',
  embd: 'void *',
  pos: 'void *',
  n_seq_id: 'void *',
  seq_id: 'void *',
  logits: 'void *',
});

/** struct llama_sampler_chain_params (llama.h) */
const chainParamsType = koffi.struct('llama_sampler_chain_params', { no_perf: 'bool' });

/** struct llama_logit_bias (llama.h) */
export const logitBiasType = koffi.struct('llama_logit_bias', { token: 'int32_t', bias: 'float' });

/** sizeof(struct ggml_threadpool_params): GGML_MAX_N_THREADS (512) bools of cpumask, then four fields; rounded up. */
const THREADPOOL_PARAMS_BYTES = 544;

export interface ModelParams {
  n_gpu_layers: number;
  vocab_only: boolean;
  [field: string]: unknown;
}

export interface ContextParams {
  n_ctx: number;
  n_batch: number;
  n_ubatch: number;
  n_seq_max: number;
  n_threads: number;
  n_threads_batch: number;
  kv_unified: boolean;
  no_perf: boolean;
  [field: string]: unknown;
}

export interface Batch {
  n_tokens: number;
  token: Ptr;
  embd: Ptr | null;
  pos: Ptr;
  n_seq_id: Ptr;
  seq_id: Ptr;
  logits: Ptr;
}

type Fn<A extends unknown[], R> = (...args: A) => R;
type AsyncFn<A extends unknown[], R> = Fn<A, R> & {
  async: (...args: [...A, (error: unknown, result: R) => void]) => void;
};
type P = Ptr | null;

export interface LlamaBindings {
  model_default_params: Fn<[], ModelParams>;
  context_default_params: Fn<[], ContextParams>;
  model_load_from_file: Fn<[string, ModelParams], P>;
  model_free: Fn<[Ptr], void>;
  model_get_vocab: Fn<[Ptr], Ptr>;
  init_from_model: Fn<[Ptr, ContextParams], P>;
  free: Fn<[Ptr], void>;
  n_ctx: Fn<[Ptr], number>;
  n_ctx_seq: Fn<[Ptr], number>;
  n_batch: Fn<[Ptr], number>;
  vocab_n_tokens: Fn<[Ptr], number>;
  vocab_is_eog: Fn<[Ptr, number], boolean>;
  attach_threadpool: Fn<[Ptr, Ptr, Ptr], void>;
  detach_threadpool: Fn<[Ptr], void>;
  set_n_threads: Fn<[Ptr, number, number], void>;
  adapter_lora_init: Fn<[Ptr, string], P>;
  set_adapters_lora: Fn<[Ptr, BigUint64Array, number, Float32Array], number>;
  get_memory: Fn<[Ptr], Ptr>;
  memory_seq_rm: Fn<[Ptr, number, number, number], boolean>;
  memory_clear: Fn<[Ptr, boolean], void>;
  batch_init: Fn<[number, number, number], Batch>;
  batch_free: Fn<[Batch], void>;
  decode: AsyncFn<[Ptr, Batch], number>;
  get_logits_ith: Fn<[Ptr, number], P>;
  sampler_chain_init: Fn<[{ no_perf: boolean }], Ptr>;
  sampler_chain_add: Fn<[Ptr, Ptr], void>;
  sampler_init_greedy: Fn<[], Ptr>;
  sampler_init_dist: Fn<[number], Ptr>;
  sampler_init_top_p: Fn<[number, number], Ptr>;
  sampler_init_temp: Fn<[number], Ptr>;
  sampler_init_penalties: Fn<[number, number, number, number, number], Ptr>;
  sampler_init_logit_bias: Fn<[number, number, Array<{ token: number; bias: number }>], Ptr>;
  sampler_init_grammar: Fn<[Ptr, string, string], P>;
  sampler_init_grammar_lazy_patterns: Fn<[Ptr, string, string, string[], number, number[] | null, number], P>;
  sampler_sample: Fn<[Ptr, Ptr, number], number>;
  sampler_free: Fn<[Ptr], void>;
  threadpool_params_init: Fn<[Ptr, number], void>;
  backend_reg_by_name: Fn<[string], P>;
  backend_reg_get_proc_address: Fn<[Ptr, string], P>;
  ggml_version: Fn<[], string>;
  ggml_commit: Fn<[], string>;
}

type Library = 'llama' | 'base' | 'ggml';

const SIGNATURES: Record<keyof LlamaBindings, [Library, string]> = {
  model_default_params: ['llama', 'llama_model_params llama_model_default_params(void)'],
  context_default_params: ['llama', 'llama_context_params llama_context_default_params(void)'],
  model_load_from_file: ['llama', 'void *llama_model_load_from_file(const char *path, llama_model_params params)'],
  model_free: ['llama', 'void llama_model_free(void *model)'],
  model_get_vocab: ['llama', 'void *llama_model_get_vocab(void *model)'],
  init_from_model: ['llama', 'void *llama_init_from_model(void *model, llama_context_params params)'],
  free: ['llama', 'void llama_free(void *ctx)'],
  n_ctx: ['llama', 'uint32_t llama_n_ctx(void *ctx)'],
  n_ctx_seq: ['llama', 'uint32_t llama_n_ctx_seq(void *ctx)'],
  n_batch: ['llama', 'uint32_t llama_n_batch(void *ctx)'],
  vocab_n_tokens: ['llama', 'int32_t llama_vocab_n_tokens(void *vocab)'],
  vocab_is_eog: ['llama', 'bool llama_vocab_is_eog(void *vocab, int32_t token)'],
  attach_threadpool: ['llama', 'void llama_attach_threadpool(void *ctx, void *threadpool, void *threadpool_batch)'],
  detach_threadpool: ['llama', 'void llama_detach_threadpool(void *ctx)'],
  set_n_threads: ['llama', 'void llama_set_n_threads(void *ctx, int32_t n_threads, int32_t n_threads_batch)'],
  adapter_lora_init: ['llama', 'void *llama_adapter_lora_init(void *model, const char *path)'],
  set_adapters_lora: [
    'llama',
    'int32_t llama_set_adapters_lora(void *ctx, uint64_t *adapters, size_t n_adapters, float *scales)',
  ],
  get_memory: ['llama', 'void *llama_get_memory(void *ctx)'],
  memory_seq_rm: ['llama', 'bool llama_memory_seq_rm(void *mem, int32_t seq_id, int32_t p0, int32_t p1)'],
  memory_clear: ['llama', 'void llama_memory_clear(void *mem, bool data)'],
  batch_init: ['llama', 'llama_batch llama_batch_init(int32_t n_tokens, int32_t embd, int32_t n_seq_max)'],
  batch_free: ['llama', 'void llama_batch_free(llama_batch batch)'],
  decode: ['llama', 'int32_t llama_decode(void *ctx, llama_batch batch)'],
  get_logits_ith: ['llama', 'void *llama_get_logits_ith(void *ctx, int32_t i)'],
  sampler_chain_init: ['llama', 'void *llama_sampler_chain_init(llama_sampler_chain_params params)'],
  sampler_chain_add: ['llama', 'void llama_sampler_chain_add(void *chain, void *smpl)'],
  sampler_init_greedy: ['llama', 'void *llama_sampler_init_greedy(void)'],
  sampler_init_dist: ['llama', 'void *llama_sampler_init_dist(uint32_t seed)'],
  sampler_init_top_p: ['llama', 'void *llama_sampler_init_top_p(float p, size_t min_keep)'],
  sampler_init_temp: ['llama', 'void *llama_sampler_init_temp(float t)'],
  sampler_init_penalties: [
    'llama',
    'void *llama_sampler_init_penalties(int32_t n_vocab, int32_t penalty_last_n, float penalty_repeat, float penalty_freq, float penalty_present)',
  ],
  sampler_init_logit_bias: [
    'llama',
    'void *llama_sampler_init_logit_bias(int32_t n_vocab, int32_t n_logit_bias, const llama_logit_bias *logit_bias)',
  ],
  sampler_init_grammar: [
    'llama',
    'void *llama_sampler_init_grammar(void *vocab, const char *grammar_str, const char *grammar_root)',
  ],
  sampler_init_grammar_lazy_patterns: [
    'llama',
    'void *llama_sampler_init_grammar_lazy_patterns(void *vocab, const char *grammar_str, const char *grammar_root, const char **trigger_patterns, size_t num_trigger_patterns, const int32_t *trigger_tokens, size_t num_trigger_tokens)',
  ],
  sampler_sample: ['llama', 'int32_t llama_sampler_sample(void *smpl, void *ctx, int32_t idx)'],
  sampler_free: ['llama', 'void llama_sampler_free(void *smpl)'],
  threadpool_params_init: ['base', 'void ggml_threadpool_params_init(void *params, int n_threads)'],
  backend_reg_by_name: ['ggml', 'void *ggml_backend_reg_by_name(const char *name)'],
  backend_reg_get_proc_address: ['base', 'void *ggml_backend_reg_get_proc_address(void *reg, const char *name)'],
  ggml_version: ['base', 'const char *ggml_version(void)'],
  ggml_commit: ['base', 'const char *ggml_commit(void)'],
};

const threadpoolNewProto = koffi.proto('void *ggml_threadpool_new_t(void *params)');
const threadpoolFreeProto = koffi.proto('void ggml_threadpool_free_t(void *threadpool)');

export interface LibLlama {
  /** The folder the libraries were loaded from. */
  dir: string;
  fn: LlamaBindings;
  /**
   * A persistent pool of `threads` CPU threads (ggml's default polling), as llama.cpp's server
   * attaches to its context; without one, ggml starts and joins fresh threads for every graph.
   */
  threadpool(threads: number): { pool: Ptr; free(): void };
}

/** Every file this process has mapped (Linux); empty where that cannot be read. */
function mappedFiles(): string[] {
  if (process.platform !== 'linux') return [];
  try {
    return readFileSync('/proc/self/maps', 'utf8')
      .split('\n')
      .map((line) => line.split(/\s+/).at(-1) ?? '')
      .filter((file) => file.startsWith('/'));
  } catch {
    return [];
  }
}

/**
 * The folder of the libllama node-llama-cpp's addon has mapped into this process, from a local
 * build (`localBuild`) or its prebuilt package; node-llama-cpp's prebuilt folder when none is
 * mapped yet. Binding the very library the addon uses keeps one copy of llama.cpp's state.
 */
function loadedLibraryDir(mapped: string[], binary: 'localBuild' | 'prebuilt'): string {
  const libllamas = mapped.filter((file) => /\/libllama[^/]*\.so$/.test(file));
  const file = libllamas.find((candidate) => candidate.includes('/localBuilds/') === (binary === 'localBuild'));
  return file ? dirname(file) : ggmlBinDir();
}

/** The mapped library in `dir` whose name matches (a local build's names carry a hash), else the prebuilt name. */
function libraryIn(mapped: string[], dir: string, pattern: RegExp, fallback: string): string {
  const file = mapped.find(
    (candidate) => candidate.startsWith(`${dir}/`) && pattern.test(candidate.slice(dir.length + 1)),
  );
  return file ?? join(dir, process.platform === 'darwin' ? `${fallback}.dylib` : `${fallback}.so`);
}

const loaded = new Map<string, LibLlama>();

/**
 * Binds libllama and the ggml libraries beside it, from the binary node-llama-cpp loaded. Call
 * after node-llama-cpp's `getLlama()`, which initialises the backend and loads the CPU variant
 * for this machine.
 */
export function loadLibLlama(binary: 'localBuild' | 'prebuilt' = 'prebuilt'): LibLlama {
  const mapped = mappedFiles();
  const dir = loadedLibraryDir(mapped, binary);
  const bound = loaded.get(dir);
  if (bound) return bound;
  const files: Record<Library, string> = {
    llama: libraryIn(mapped, dir, /^libllama(\.v[\w.]+)?\.(so|dylib)$/, 'libllama.v0.4.0'),
    base: libraryIn(mapped, dir, /^libggml-base\.(so|dylib)$/, 'libggml-base'),
    ggml: libraryIn(mapped, dir, /^libggml(\.v[\w.]+)?\.(so|dylib)$/, 'libggml.v0.4.0'),
  };
  const libs = {} as Record<Library, ReturnType<typeof koffi.load>>;
  for (const [name, file] of Object.entries(files) as Array<[Library, string]>) {
    try {
      libs[name] = koffi.load(file);
    } catch (error) {
      throw new LlamaLibraryError(`cannot load ${file}: ${(error as Error).message}`, { dir });
    }
  }
  const fn: Record<string, unknown> = {};
  for (const [name, [lib, signature]] of Object.entries(SIGNATURES)) {
    try {
      fn[name] = libs[lib].func(signature);
    } catch (error) {
      throw new LlamaLibraryError(`llama.cpp does not export the pinned signature '${signature}'`, {
        dir,
        cause: (error as Error).message,
      });
    }
  }
  const bindings = fn as unknown as LlamaBindings;
  const version = bindings.ggml_version();
  const commit = bindings.ggml_commit();
  if (version !== PINNED_GGML_VERSION || (commit !== PINNED_GGML_COMMIT && commit !== PINNED_LLAMA_CPP_COMMIT)) {
    throw new LlamaLibraryError(
      `ggml ${version} (${commit}) is loaded, but Bertha's llama.cpp struct layouts are for ggml ${PINNED_GGML_VERSION} (${PINNED_GGML_COMMIT}); install node-llama-cpp@3.21.1`,
      { version, commit, dir },
    );
  }
  const library: LibLlama = {
    dir,
    fn: bindings,
    threadpool(threads) {
      const reg = bindings.backend_reg_by_name('CPU');
      const create = reg ? bindings.backend_reg_get_proc_address(reg, 'ggml_threadpool_new') : null;
      const destroy = reg ? bindings.backend_reg_get_proc_address(reg, 'ggml_threadpool_free') : null;
      if (!create || !destroy) throw new LlamaLibraryError('the CPU backend offers no ggml_threadpool_new');
      const params = koffi.alloc('uint8_t', THREADPOOL_PARAMS_BYTES);
      try {
        bindings.threadpool_params_init(koffi.address(params) as Ptr, threads);
        const pool = koffi.call(create, threadpoolNewProto, koffi.address(params)) as Ptr | null;
        if (!pool) throw new LlamaLibraryError(`cannot start a ggml threadpool of ${threads} threads`);
        let freed = false;
        return {
          pool,
          free() {
            if (freed) return;
            freed = true;
            koffi.call(destroy, threadpoolFreeProto, pool);
          },
        };
      } finally {
        koffi.free(params);
      }
    },
  };
  loaded.set(dir, library);
  return library;
}

export { batchType, chainParamsType, contextParamsType, modelParamsType };
