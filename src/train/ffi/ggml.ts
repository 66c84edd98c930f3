import { join } from 'node:path';
import type { LibraryHandle } from 'koffi';
import koffi from 'koffi';
import { BerthaError } from '../../core/errors.ts';
import { ggmlBinDir, PINNED_GGML_COMMIT, PINNED_GGML_VERSION } from '../../native/llama-cpp-libs.ts';

/**
 * Bindings to the ggml shared libraries that node-llama-cpp@3.21.1 ships (ggml 0.23.0,
 * commit 5b4ebc5, inside llama.cpp 80fb11ac). Signatures and struct layouts are copied from
 * that commit's ggml.h, ggml-backend.h, ggml-alloc.h and ggml-opt.h; a different build could
 * lay its structs out differently, so `loadGgml` refuses any other version.
 *
 * Pointers are BigInt addresses (koffi 3), null when C returns NULL. A failed GGML_ASSERT
 * aborts the whole process: callers validate shapes first and run training in a child.
 */
export { ggmlBinDir, PINNED_GGML_COMMIT, PINNED_GGML_VERSION };

export type Ptr = bigint;

export class GgmlLibraryError extends BerthaError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('ggml_unavailable', message, 500, details);
  }
}

/** enum ggml_type (ggml.h) */
export const GgmlType = { F32: 0, F16: 1, I32: 26 } as const;
/** enum ggml_opt_loss_type (ggml-opt.h) */
export const OptLoss = { MEAN: 0, SUM: 1, CROSS_ENTROPY: 2, MSE: 3 } as const;
/** enum ggml_opt_optimizer_type (ggml-opt.h) */
export const OptOptimizer = { ADAMW: 0, SGD: 1 } as const;
/** GGML_ROPE_TYPE_NORMAL: adjacent pairs rotate, the convention of llama.cpp's LLM_ARCH_LLAMA. */
export const ROPE_TYPE_NORMAL = 0;
/** enum ggml_backend_dev_type: GGML_BACKEND_DEVICE_TYPE_CPU */
const DEVICE_TYPE_CPU = 0;
/** enum ggml_log_level: GGML_LOG_LEVEL_WARN */
const LOG_LEVEL_WARN = 3;

/** struct ggml_init_params (ggml.h) */
export const initParamsType = koffi.struct('ggml_init_params', {
  mem_size: 'size_t',
  mem_buffer: 'void *',
  no_alloc: 'bool',
});
/** struct ggml_opt_optimizer_params (ggml-opt.h): two nested anonymous structs, flattened here (same layout: all floats). */
export const optimizerParamsType = koffi.struct('ggml_opt_optimizer_params', {
  adamw_alpha: 'float',
  adamw_beta1: 'float',
  adamw_beta2: 'float',
  adamw_eps: 'float',
  adamw_wd: 'float',
  sgd_alpha: 'float',
  sgd_wd: 'float',
});
/** struct ggml_opt_params (ggml-opt.h) */
export const optParamsType = koffi.struct('ggml_opt_params', {
  backend_sched: 'void *',
  ctx_compute: 'void *',
  inputs: 'void *',
  outputs: 'void *',
  loss_type: 'int',
  build_type: 'int',
  opt_period: 'int32_t',
  get_opt_pars: 'void *',
  get_opt_pars_ud: 'void *',
  optimizer: 'int',
});
const setThreadsProto = koffi.proto('void ggml_backend_set_n_threads_t(void *backend, int n_threads)');
const logCallbackProto = koffi.proto('void ggml_log_callback(int level, const char *text, void *user_data)');

export interface OptParams {
  backend_sched: Ptr | null;
  ctx_compute: Ptr | null;
  inputs: Ptr | null;
  outputs: Ptr | null;
  loss_type: number;
  build_type: number;
  opt_period: number;
  get_opt_pars: Ptr | null;
  get_opt_pars_ud: Ptr | null;
  optimizer: number;
}

export interface OptimizerParams {
  adamw_alpha: number;
  adamw_beta1: number;
  adamw_beta2: number;
  adamw_eps: number;
  adamw_wd: number;
  sgd_alpha: number;
  sgd_wd: number;
}

type AsyncCall<A extends unknown[], R> = ((...args: A) => R) & {
  async: (...args: [...A, (error: unknown, result: R) => void]) => void;
};

type Fn<A extends unknown[], R> = (...args: A) => R;

const SIGNATURES = {
  // ggml.h: contexts, tensors, ops, graphs
  version: ['base', 'const char *ggml_version()'],
  commit: ['base', 'const char *ggml_commit()'],
  init: ['base', 'void *ggml_init(ggml_init_params params)'],
  free: ['base', 'void ggml_free(void *ctx)'],
  tensor_overhead: ['base', 'size_t ggml_tensor_overhead()'],
  graph_overhead_custom: ['base', 'size_t ggml_graph_overhead_custom(size_t size, bool grads)'],
  new_tensor_1d: ['base', 'void *ggml_new_tensor_1d(void *ctx, int type, int64_t ne0)'],
  new_tensor_2d: ['base', 'void *ggml_new_tensor_2d(void *ctx, int type, int64_t ne0, int64_t ne1)'],
  set_name: ['base', 'void *ggml_set_name(void *tensor, const char *name)'],
  set_param: ['base', 'void ggml_set_param(void *tensor)'],
  set_input: ['base', 'void ggml_set_input(void *tensor)'],
  set_output: ['base', 'void ggml_set_output(void *tensor)'],
  nbytes: ['base', 'size_t ggml_nbytes(void *tensor)'],
  nelements: ['base', 'int64_t ggml_nelements(void *tensor)'],
  get_rows: ['base', 'void *ggml_get_rows(void *ctx, void *a, void *b)'],
  rms_norm: ['base', 'void *ggml_rms_norm(void *ctx, void *a, float eps)'],
  mul: ['base', 'void *ggml_mul(void *ctx, void *a, void *b)'],
  add: ['base', 'void *ggml_add(void *ctx, void *a, void *b)'],
  mul_mat: ['base', 'void *ggml_mul_mat(void *ctx, void *a, void *b)'],
  out_prod: ['base', 'void *ggml_out_prod(void *ctx, void *a, void *b)'],
  rope_ext: [
    'base',
    'void *ggml_rope_ext(void *ctx, void *a, void *b, void *c, int n_dims, int mode, int n_ctx_orig, float freq_base, float freq_scale, float ext_factor, float attn_factor, float beta_fast, float beta_slow)',
  ],
  soft_max_ext: ['base', 'void *ggml_soft_max_ext(void *ctx, void *a, void *mask, float scale, float max_bias)'],
  permute: ['base', 'void *ggml_permute(void *ctx, void *a, int axis0, int axis1, int axis2, int axis3)'],
  cont: ['base', 'void *ggml_cont(void *ctx, void *a)'],
  reshape_1d: ['base', 'void *ggml_reshape_1d(void *ctx, void *a, int64_t ne0)'],
  reshape_2d: ['base', 'void *ggml_reshape_2d(void *ctx, void *a, int64_t ne0, int64_t ne1)'],
  reshape_4d: ['base', 'void *ggml_reshape_4d(void *ctx, void *a, int64_t ne0, int64_t ne1, int64_t ne2, int64_t ne3)'],
  swiglu_split: ['base', 'void *ggml_swiglu_split(void *ctx, void *a, void *b)'],
  scale: ['base', 'void *ggml_scale(void *ctx, void *a, float s)'],
  repeat_4d: ['base', 'void *ggml_repeat_4d(void *ctx, void *a, int64_t ne0, int64_t ne1, int64_t ne2, int64_t ne3)'],
  new_graph_custom: ['base', 'void *ggml_new_graph_custom(void *ctx, size_t size, bool grads)'],
  build_forward_expand: ['base', 'void ggml_build_forward_expand(void *cgraph, void *tensor)'],
  graph_n_nodes: ['base', 'int ggml_graph_n_nodes(void *cgraph)'],
  log_set: ['base', 'void ggml_log_set(void *log_callback, void *user_data)'],
  // ggml-backend.h / ggml-alloc.h
  backend_load_all_from_path: ['ggml', 'void ggml_backend_load_all_from_path(const char *dir_path)'],
  backend_init_by_type: ['ggml', 'void *ggml_backend_init_by_type(int type, const char *params)'],
  backend_get_device: ['base', 'void *ggml_backend_get_device(void *backend)'],
  backend_dev_backend_reg: ['base', 'void *ggml_backend_dev_backend_reg(void *device)'],
  backend_reg_get_proc_address: ['base', 'void *ggml_backend_reg_get_proc_address(void *reg, const char *name)'],
  backend_name: ['base', 'const char *ggml_backend_name(void *backend)'],
  backend_free: ['base', 'void ggml_backend_free(void *backend)'],
  backend_graph_compute: ['base', 'int ggml_backend_graph_compute(void *backend, void *cgraph)'],
  backend_alloc_ctx_tensors: ['base', 'void *ggml_backend_alloc_ctx_tensors(void *ctx, void *backend)'],
  backend_buffer_free: ['base', 'void ggml_backend_buffer_free(void *buffer)'],
  backend_tensor_set: [
    'base',
    'void ggml_backend_tensor_set(void *tensor, const void *data, size_t offset, size_t size)',
  ],
  backend_tensor_get: [
    'base',
    'void ggml_backend_tensor_get(void *tensor, _Out_ void *data, size_t offset, size_t size)',
  ],
  sched_new: [
    'base',
    'void *ggml_backend_sched_new(void **backends, void **bufts, int n_backends, size_t graph_size, bool parallel, bool op_offload)',
  ],
  sched_free: ['base', 'void ggml_backend_sched_free(void *sched)'],
  // ggml-opt.h
  opt_default_params: ['base', 'ggml_opt_params ggml_opt_default_params(void *backend_sched, int loss_type)'],
  opt_init: ['base', 'void *ggml_opt_init(ggml_opt_params params)'],
  opt_free: ['base', 'void ggml_opt_free(void *opt_ctx)'],
  opt_prepare_alloc: [
    'base',
    'void ggml_opt_prepare_alloc(void *opt_ctx, void *ctx_compute, void *gf, void *inputs, void *outputs)',
  ],
  opt_grad_acc: ['base', 'void *ggml_opt_grad_acc(void *opt_ctx, void *node)'],
  opt_alloc: ['base', 'void ggml_opt_alloc(void *opt_ctx, bool backward)'],
  opt_eval: ['base', 'void ggml_opt_eval(void *opt_ctx, void *result)'],
  opt_outputs: ['base', 'void *ggml_opt_outputs(void *opt_ctx)'],
  opt_labels: ['base', 'void *ggml_opt_labels(void *opt_ctx)'],
  opt_result_init: ['base', 'void *ggml_opt_result_init()'],
  opt_result_free: ['base', 'void ggml_opt_result_free(void *result)'],
  opt_result_reset: ['base', 'void ggml_opt_result_reset(void *result)'],
  opt_result_loss: ['base', 'void ggml_opt_result_loss(void *result, _Out_ double *loss, _Out_ double *unc)'],
} as const satisfies Record<string, readonly ['base' | 'ggml', string]>;

type P = Ptr | null;

/** The typed face of the bindings; every entry is one C function of SIGNATURES. */
export interface GgmlBindings {
  version: Fn<[], string>;
  commit: Fn<[], string>;
  init: Fn<[{ mem_size: number; mem_buffer: null; no_alloc: boolean }], P>;
  free: Fn<[Ptr], void>;
  tensor_overhead: Fn<[], number>;
  graph_overhead_custom: Fn<[number, boolean], number>;
  new_tensor_1d: Fn<[Ptr, number, number], P>;
  new_tensor_2d: Fn<[Ptr, number, number, number], P>;
  set_name: Fn<[Ptr, string], P>;
  set_param: Fn<[Ptr], void>;
  set_input: Fn<[Ptr], void>;
  set_output: Fn<[Ptr], void>;
  nbytes: Fn<[Ptr], number>;
  nelements: Fn<[Ptr], number | bigint>;
  get_rows: Fn<[Ptr, Ptr, Ptr], Ptr>;
  rms_norm: Fn<[Ptr, Ptr, number], Ptr>;
  mul: Fn<[Ptr, Ptr, Ptr], Ptr>;
  add: Fn<[Ptr, Ptr, Ptr], Ptr>;
  mul_mat: Fn<[Ptr, Ptr, Ptr], Ptr>;
  out_prod: Fn<[Ptr, Ptr, Ptr], Ptr>;
  rope_ext: Fn<
    [Ptr, Ptr, Ptr, Ptr | null, number, number, number, number, number, number, number, number, number],
    Ptr
  >;
  soft_max_ext: Fn<[Ptr, Ptr, Ptr, number, number], Ptr>;
  permute: Fn<[Ptr, Ptr, number, number, number, number], Ptr>;
  cont: Fn<[Ptr, Ptr], Ptr>;
  reshape_1d: Fn<[Ptr, Ptr, number], Ptr>;
  reshape_2d: Fn<[Ptr, Ptr, number, number], Ptr>;
  reshape_4d: Fn<[Ptr, Ptr, number, number, number, number], Ptr>;
  swiglu_split: Fn<[Ptr, Ptr, Ptr], Ptr>;
  scale: Fn<[Ptr, Ptr, number], Ptr>;
  repeat_4d: Fn<[Ptr, Ptr, number, number, number, number], Ptr>;
  new_graph_custom: Fn<[Ptr, number, boolean], P>;
  build_forward_expand: Fn<[Ptr, Ptr], void>;
  graph_n_nodes: Fn<[Ptr], number>;
  log_set: Fn<[unknown, null], void>;
  backend_load_all_from_path: Fn<[string], void>;
  backend_init_by_type: Fn<[number, null], P>;
  backend_get_device: Fn<[Ptr], P>;
  backend_dev_backend_reg: Fn<[Ptr], P>;
  backend_reg_get_proc_address: Fn<[Ptr, string], P>;
  backend_name: Fn<[Ptr], string>;
  backend_free: Fn<[Ptr], void>;
  backend_graph_compute: AsyncCall<[Ptr, Ptr], number>;
  backend_alloc_ctx_tensors: Fn<[Ptr, Ptr], P>;
  backend_buffer_free: Fn<[Ptr], void>;
  backend_tensor_set: Fn<[Ptr, ArrayBufferView, number, number], void>;
  backend_tensor_get: Fn<[Ptr, ArrayBufferView, number, number], void>;
  sched_new: Fn<[Ptr[], null, number, number, boolean, boolean], P>;
  sched_free: Fn<[Ptr], void>;
  opt_default_params: Fn<[Ptr, number], OptParams>;
  opt_init: Fn<[OptParams], P>;
  opt_free: Fn<[Ptr], void>;
  opt_prepare_alloc: Fn<[Ptr, Ptr, Ptr, Ptr, Ptr], void>;
  opt_grad_acc: Fn<[Ptr, Ptr], P>;
  opt_alloc: Fn<[Ptr, boolean], void>;
  opt_eval: AsyncCall<[Ptr, Ptr], void>;
  opt_outputs: Fn<[Ptr], P>;
  opt_labels: Fn<[Ptr], P>;
  opt_result_init: Fn<[], P>;
  opt_result_free: Fn<[Ptr], void>;
  opt_result_reset: Fn<[Ptr], void>;
  opt_result_loss: Fn<[Ptr, number[], number[]], void>;
}

export interface Ggml {
  binDir: string;
  fn: GgmlBindings;
  /** Address of `ggml_opt_get_constant_optimizer_params`, which returns the struct its userdata points to. */
  constantOptimizerParams: Ptr;
  /** A heap-allocated `ggml_opt_optimizer_params` that outlives the optimizer context that reads it. */
  allocOptimizerParams(params: OptimizerParams): { address: Ptr; update(params: OptimizerParams): void };
  /** A CPU backend with `nThreads` threads, set through the backend registry. */
  cpuBackend(nThreads: number): Ptr;
}

function libraryFile(binDir: string, stem: string): string {
  return join(binDir, process.platform === 'darwin' ? `${stem}.dylib` : `${stem}.so`);
}

let loaded: Ggml | undefined;
let logCallback: unknown;

/**
 * Loads libggml-base then libggml (which needs it), checks the pinned version, binds every
 * signature (a missing symbol throws here, not mid-training) and loads the CPU backend variants.
 */
export function loadGgml(): Ggml {
  if (loaded) return loaded;
  const binDir = ggmlBinDir();
  let libs: Record<'base' | 'ggml', LibraryHandle>;
  try {
    libs = {
      base: koffi.load(libraryFile(binDir, 'libggml-base')),
      ggml: koffi.load(libraryFile(binDir, 'libggml.v0.4.0')),
    };
  } catch (error) {
    throw new GgmlLibraryError(`cannot load ggml from ${binDir}: ${(error as Error).message}`);
  }
  const fn: Record<string, unknown> = {};
  for (const [name, [lib, signature]] of Object.entries(SIGNATURES)) {
    try {
      fn[name] = libs[lib].func(signature);
    } catch (error) {
      throw new GgmlLibraryError(`ggml does not export the pinned signature '${signature}'`, {
        binDir,
        cause: (error as Error).message,
      });
    }
  }
  const bindings = fn as unknown as GgmlBindings;
  const version = bindings.version();
  const commit = bindings.commit();
  if (version !== PINNED_GGML_VERSION || commit !== PINNED_GGML_COMMIT) {
    throw new GgmlLibraryError(
      `ggml ${version} (${commit}) is installed, but Bertha's struct layouts are for ggml ${PINNED_GGML_VERSION} (${PINNED_GGML_COMMIT}); install node-llama-cpp@3.21.1`,
      { version, commit },
    );
  }
  // ggml prints every graph allocation at INFO; keep warnings and errors on stderr, where the supervisor reads them.
  logCallback = koffi.register((level: number, text: string) => {
    if (level >= LOG_LEVEL_WARN) process.stderr.write(text);
  }, koffi.pointer(logCallbackProto));
  bindings.log_set(logCallback, null);
  bindings.backend_load_all_from_path(binDir);

  const constantOptimizerParams = koffi.address(libs.base.symbol('ggml_opt_get_constant_optimizer_params')) as Ptr;
  loaded = {
    binDir,
    fn: bindings,
    constantOptimizerParams,
    allocOptimizerParams(params) {
      const memory = koffi.alloc(optimizerParamsType, 1);
      const write = (p: OptimizerParams) => koffi.encode(memory, optimizerParamsType, p);
      write(params);
      return { address: koffi.address(memory) as Ptr, update: write };
    },
    cpuBackend(nThreads) {
      if (!Number.isInteger(nThreads) || nThreads < 1) throw new GgmlLibraryError(`invalid thread count ${nThreads}`);
      const backend = bindings.backend_init_by_type(DEVICE_TYPE_CPU, null);
      if (!backend) throw new GgmlLibraryError('ggml has no CPU backend');
      const device = bindings.backend_get_device(backend);
      const reg = device ? bindings.backend_dev_backend_reg(device) : null;
      const setThreads = reg ? bindings.backend_reg_get_proc_address(reg, 'ggml_backend_set_n_threads') : null;
      if (!setThreads) {
        bindings.backend_free(backend);
        throw new GgmlLibraryError('the CPU backend does not expose ggml_backend_set_n_threads');
      }
      koffi.call(setThreads, setThreadsProto, backend, nThreads);
      return backend;
    },
  };
  return loaded;
}
