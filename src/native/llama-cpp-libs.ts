import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { BerthaError } from '../core/errors.ts';

/**
 * The llama.cpp build Bertha binds directly (the trainer's ggml, the runtime's libllama):
 * node-llama-cpp@3.21.1 ships ggml 0.23.0 (commit 5b4ebc5) inside llama.cpp 80fb11ac. Struct
 * layouts are copied from that commit's headers, so a different build is refused.
 */
export const PINNED_GGML_VERSION = '0.23.0';
export const PINNED_GGML_COMMIT = '5b4ebc5';
/** What a build from the bundled source (`npm run build:llama`) reports as ggml's commit: llama.cpp's own. */
export const PINNED_LLAMA_CPP_COMMIT = '80fb11a';

/** Folder of node-llama-cpp's prebuilt binaries for this platform (libggml-base.so and friends). */
export function ggmlBinDir(): string {
  const platformPackage = `@node-llama-cpp/${process.platform}-${process.arch}`;
  const require = createRequire(import.meta.url);
  let entry: string;
  try {
    // The package exports only dist/index.js; its bins/ folder sits beside dist/.
    entry = require.resolve(platformPackage, { paths: [dirname(require.resolve('node-llama-cpp'))] });
  } catch (error) {
    throw new BerthaError('ggml_unavailable', `${platformPackage} is not installed; run npm ci`, 500, {
      cause: String(error),
    });
  }
  return join(dirname(dirname(entry)), 'bins', `${process.platform}-${process.arch}`);
}

/**
 * What `npm run build:llama` passes to node-llama-cpp's source build, and every `getLlama` asks
 * for, so that they find that build (node-llama-cpp keys local builds by their cmake options;
 * without one it loads the prebuilt binary). No OpenMP: Bertha's decoder attaches ggml's own
 * persistent threadpool, and calls `llama_decode` from whichever libuv worker is free, where
 * OpenMP would keep a spinning thread team per calling thread.
 */
export const LLAMA_CMAKE_OPTIONS: Readonly<Record<string, string>> = { GGML_OPENMP: 'OFF' };
