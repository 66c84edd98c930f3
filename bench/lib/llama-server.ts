import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { freePort } from '../../test/helpers/free-port.ts';

/**
 * llama.cpp's own `llama-server`, built from the llama.cpp source node-llama-cpp ships, as the
 * serving baseline: same kernels, same GGUF, llama.cpp's own batching and HTTP front.
 * The build (~5 min on 2 cores) is kept under ~/.cache/bertha, outside the repository, and
 * reused by every later run; nothing is downloaded.
 */
const llamaDir = path.resolve('node_modules/node-llama-cpp/llama');
const bundle = path.join(llamaDir, 'gitRelease.bundle');

export type LlamaServerBuild = { binary: string; commit: string } | { skipped: string };

function has(command: string, args = ['--version']): boolean {
  return spawnSync(command, args, { stdio: 'ignore' }).status === 0;
}

function run(command: string, args: string[], cwd: string, log: (line: string) => void): void {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (result.status !== 0) {
    log((result.stdout ?? '').slice(-4000) + (result.stderr ?? '').slice(-4000));
    throw new Error(`${command} ${args.join(' ')} failed (${result.status ?? result.signal})`);
  }
}

/** The cached binary for the bundled commit, built first when absent; `skipped` says why there is none. */
export function llamaServerBinary(log: (line: string) => void): LlamaServerBuild {
  if (!existsSync(bundle)) return { skipped: `no llama.cpp source bundle at ${bundle}` };
  if (!has('git')) return { skipped: 'git is not installed' };
  const heads = spawnSync('git', ['bundle', 'list-heads', bundle], { encoding: 'utf8' });
  const commit = /^([0-9a-f]{40})/.exec(heads.stdout ?? '')?.[1];
  if (!commit) return { skipped: `cannot read the commit of ${bundle}` };
  const cacheRoot = path.join(process.env.XDG_CACHE_HOME ?? path.join(homedir(), '.cache'), 'bertha');
  const home = path.join(cacheRoot, `llama-server-${commit.slice(0, 8)}`);
  const binary = path.join(home, 'build', 'bin', 'llama-server');
  if (existsSync(binary)) return { binary, commit };
  const missing = ['cmake', 'c++', 'cc'].filter((tool) => !has(tool));
  if (missing.length > 0) return { skipped: `${missing.join(', ')} not installed: cannot build llama-server` };

  // Built aside and renamed into place, so an interrupted build is never taken for a finished one.
  const staging = `${home}.building-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  const source = path.join(staging, 'src');
  const started = performance.now();
  log(`building llama-server ${commit.slice(0, 8)} from ${bundle} into ${home} (about 5 minutes on 2 cores)`);
  try {
    run('git', ['clone', '--quiet', bundle, source], staging, log);
    // node-llama-cpp's own build applies these to the same source; none ship with some releases.
    const patchDir = path.join(llamaDir, 'patches');
    const patches = existsSync(patchDir) ? readdirSync(patchDir).filter((file) => file.endsWith('.diff')) : [];
    for (const patch of patches.sort()) run('git', ['apply', path.join(patchDir, patch)], source, log);
    run(
      'cmake',
      [
        '-S',
        source,
        '-B',
        path.join(staging, 'build'),
        ...(has('ninja') ? ['-G', 'Ninja'] : []),
        '-DCMAKE_BUILD_TYPE=Release',
        // Otherwise the build fetches the web UI from Hugging Face.
        '-DLLAMA_USE_PREBUILT_UI=OFF',
        '-DLLAMA_OPENSSL=OFF',
        '-DLLAMA_BUILD_TESTS=OFF',
        '-DLLAMA_BUILD_EXAMPLES=OFF',
        // One self-contained binary: the cache directory can move.
        '-DBUILD_SHARED_LIBS=OFF',
        '-DGGML_CUDA=OFF',
        '-DGGML_VULKAN=OFF',
      ],
      staging,
      log,
    );
    run('cmake', ['--build', path.join(staging, 'build'), '--target', 'llama-server', '--parallel'], staging, log);
    rmSync(source, { recursive: true, force: true });
    renameSync(staging, home);
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    return { skipped: `building llama-server failed: ${(error as Error).message}` };
  }
  log(`llama-server built in ${Math.round((performance.now() - started) / 1000)} s`);
  return { binary, commit };
}

export interface LlamaServer {
  url: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

export interface LlamaServerOptions {
  binary: string;
  modelPath: string;
  /** Slots, as Bertha's `serving.llamaCpp.parallel`. */
  parallel: number;
  /** Tokens per slot, as Bertha's `serving.llamaCpp.contextSize`. */
  contextSize: number;
  threads: number;
}

/** Starts llama-server on a free loopback port and resolves once its /health answers 200. */
export async function startLlamaServer(options: LlamaServerOptions): Promise<LlamaServer> {
  const port = await freePort();
  const child = spawn(
    options.binary,
    [
      ...['--model', options.modelPath, '--host', '127.0.0.1', '--port', String(port)],
      ...['--parallel', String(options.parallel), '--ctx-size', String(options.parallel * options.contextSize)],
      ...['--threads', String(options.threads), '--threads-batch', String(options.threads)],
      // Bertha keeps no prompt cache beyond its sequences' own KV cache, and serves no web UI.
      ...['--cache-ram', '0', '--no-webui', '--log-verbosity', '1'],
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-8000);
  });
  const url = `http://127.0.0.1:${port}`;
  let stopping = false;
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code, signal) => {
      const message = `llama-server exited with ${code ?? signal}:\n${stderr}`;
      // A crash mid-run otherwise shows only as a refused connection in the bench.
      if (!stopping) process.stderr.write(`${message}\n`);
      reject(new Error(message));
    }),
  );
  exited.catch(() => undefined);
  const deadline = performance.now() + 120_000;
  for (;;) {
    const status = await Promise.race([
      fetch(`${url}/health`).then(
        (response) => response.status,
        () => 0,
      ),
      exited,
    ]);
    if (status === 200) break;
    if (performance.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`llama-server not healthy after 120 s:\n${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    url,
    process: child,
    async stop() {
      if (child.exitCode !== null) return;
      stopping = true;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await gone;
    },
  };
}

/** Resident memory of a process in bytes (Linux), or undefined where /proc cannot tell. */
export function residentBytes(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const kb = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb ? Number(kb) * 1024 : undefined;
  } catch {
    return undefined;
  }
}
