import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../core/logger.ts';

/**
 * The thread count `serving.llamaCpp.maxThreads: auto` serves a model with: the fastest of a few
 * candidates, timed on this machine with this model at its first load and kept under the data
 * dir. No fixed rule is right everywhere: one thread per core is what llama.cpp's server takes,
 * but a busy or oversubscribed host, or a model too small to split, can decode faster on fewer.
 */
export interface ThreadChoice {
  threads: number;
  /** `measured` at this load, or `cached` from an earlier one. */
  source: 'measured' | 'cached';
  /** Single-stream decode speed per candidate thread count, as measured. */
  tokensPerSecond: Record<string, number>;
  measuredAt: string;
  measureMs: number;
}

/**
 * Greedy single-stream decoding at a given thread count, from a short prompt, for as long as
 * `onToken` returns true (an end-of-generation token does not end it).
 */
export type DecodeProbe = (threads: number, onToken: () => boolean) => Promise<void>;

export interface ChooseThreadsOptions {
  probe: DecodeProbe;
  modelPath: string;
  /** The most threads a context may use: one per core. */
  cores: number;
  /** The GPU llama.cpp runs on, or `false`: part of what the choice is valid for. */
  gpu: string | false;
  /** Which llama.cpp binary decodes (a local build or the prebuilt one): part of what the choice is valid for. */
  binary: string;
  /** JSON file holding earlier choices; unset: measured at every load. */
  cacheFile?: string | undefined;
  logger: Logger;
  signal?: AbortSignal | undefined;
}

interface StoredChoice {
  threads: number;
  tokensPerSecond: Record<string, number>;
  measuredAt: string;
  /** How long the measurement took. */
  measureMs: number;
}

interface ChoiceFile {
  choices: Record<string, StoredChoice>;
}

/**
 * Tokens generated before the clock starts: the first steps pay for allocation and cold caches.
 * The clock starts earlier once `WARMUP_MS` have passed: steps that slow dwarf those costs.
 */
const WARMUP_TOKENS = 4;
const WARMUP_MS = 150;
/** Later rounds run on a warm context: one untimed token starts the clock. */
const REWARM_TOKENS = 1;
/** A timed run stops at this many tokens or after `TIMED_MS`, whichever comes first. */
const TIMED_TOKENS = 24;
const TIMED_MS = 400;
/** Candidates are timed in turn this many times; each keeps its best run (the host may be busy). */
const ROUNDS = 2;
/** A candidate below this fraction of the leader's speed has lost: it is not timed further. */
const CLEAR_LOSS = 0.5;

/** 1, 2, half the cores and all of them: at most four, none above the core count. */
export function threadCandidates(cores: number): number[] {
  const all = Math.max(1, Math.floor(cores));
  return [...new Set([1, 2, Math.floor(all / 2), all])].filter((n) => n >= 1 && n <= all).sort((a, b) => a - b);
}

/** What a choice is valid for: the model file as it is now (path, size, mtime), the cores, the GPU and the binary. */
async function choiceKey({ modelPath, cores, gpu, binary }: ChooseThreadsOptions): Promise<string> {
  const file = await stat(modelPath);
  return `${path.resolve(modelPath)}|${file.size}|${Math.trunc(file.mtimeMs)}|${cores} cores|${gpu || 'cpu'}|${binary}`;
}

async function readChoices(cacheFile: string): Promise<ChoiceFile> {
  try {
    const parsed = JSON.parse(await readFile(cacheFile, 'utf8')) as Partial<ChoiceFile>;
    return { choices: parsed.choices ?? {} };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { choices: {} };
    throw error;
  }
}

async function storeChoice(cacheFile: string, key: string, choice: StoredChoice): Promise<void> {
  const stored = await readChoices(cacheFile).catch(() => ({ choices: {} }) as ChoiceFile);
  stored.choices[key] = choice;
  await mkdir(path.dirname(cacheFile), { recursive: true });
  // Written aside and renamed, so that a reader never sees half a file.
  const aside = `${cacheFile}.${process.pid}.tmp`;
  await writeFile(aside, `${JSON.stringify(stored, null, 2)}\n`);
  await rename(aside, cacheFile);
}

/**
 * Greedy single-stream decode speed in tokens/s at `threads`, after `warmup` tokens (or
 * `WARMUP_MS`) untimed. A run slower than `giveUpBelow` tokens/s after `WARMUP_MS` ends early
 * with its speed so far.
 */
async function decodeSpeed(probe: DecodeProbe, threads: number, warmup: number, giveUpBelow: number): Promise<number> {
  const evaluating = performance.now();
  let produced = 0;
  let untimed = 0;
  let started = 0;
  let timedMs = 0;
  let gaveUp: number | undefined;
  await probe(threads, () => {
    produced++;
    const now = performance.now();
    const overall = (produced * 1000) / (now - evaluating);
    // Already a clear loss counting the prompt's step: more tokens would only cost time.
    if (now - evaluating >= WARMUP_MS && overall < giveUpBelow) {
      gaveUp = overall;
      return false;
    }
    if (started === 0) {
      if (produced >= warmup || now - evaluating >= WARMUP_MS) {
        started = now;
        untimed = produced;
      }
      return true;
    }
    timedMs = now - started;
    return produced - untimed < TIMED_TOKENS && timedMs < TIMED_MS;
  });
  if (gaveUp !== undefined) return gaveUp;
  const timed = produced - untimed;
  if (started === 0 || timed <= 0 || timedMs <= 0) throw new Error(`decode probe produced ${produced} tokens`);
  return (timed * 1000) / timedMs;
}

/** Times each candidate in turn, each keeping its best run. */
async function measure(options: ChooseThreadsOptions, candidates: number[]): Promise<Record<string, number>> {
  const best: Record<string, number> = {};
  for (let round = 0; round < ROUNDS; round++) {
    // Every other round in reverse, so that no candidate always runs first on a cold machine.
    const order = round % 2 === 0 ? candidates : [...candidates].reverse();
    for (const threads of order) {
      const leader = Math.max(0, ...Object.values(best));
      // Under half the leader's speed after a round is a clear loss: not worth timing again.
      if (round > 0 && (best[threads] ?? 0) < leader * CLEAR_LOSS) continue;
      options.signal?.throwIfAborted();
      const warmup = round === 0 ? WARMUP_TOKENS : REWARM_TOKENS;
      const speed = await decodeSpeed(options.probe, threads, warmup, leader * CLEAR_LOSS);
      best[threads] = Math.max(best[threads] ?? 0, speed);
    }
  }
  return best;
}

let measuring: Promise<unknown> = Promise.resolve();

/**
 * The cached choice for this model file, cores and GPU, else a fresh measurement (stored when a
 * cache file is given). Measurements run one at a time in the process: two at once would slow
 * each other and time the contention instead of the model.
 */
export async function chooseThreads(options: ChooseThreadsOptions): Promise<ThreadChoice> {
  const candidates = threadCandidates(options.cores);
  const key = await choiceKey(options);
  if (options.cacheFile) {
    const cached = (
      await readChoices(options.cacheFile).catch((error: Error) => {
        options.logger.warn(
          { file: options.cacheFile, err: error },
          'cannot read the stored thread choices; measuring',
        );
        return { choices: {} } as ChoiceFile;
      })
    ).choices[key];
    if (cached && Number.isInteger(cached.threads) && cached.threads >= 1 && cached.threads <= options.cores) {
      return { ...cached, measureMs: cached.measureMs ?? 0, source: 'cached' };
    }
  }
  // Stored inside the queue too, so that two choices never rewrite the file at once.
  const run = measuring.then(() => measureAndStore(options, candidates, key));
  measuring = run.catch(() => undefined);
  return { ...(await run), source: 'measured' };
}

async function measureAndStore(
  options: ChooseThreadsOptions,
  candidates: number[],
  key: string,
): Promise<StoredChoice> {
  const started = performance.now();
  // One core leaves nothing to choose from.
  const speeds = candidates.length > 1 ? await measure(options, candidates) : { 1: 0 };
  const tokensPerSecond = Object.fromEntries(
    Object.entries(speeds).map(([threads, speed]) => [threads, Math.round(speed * 10) / 10]),
  );
  // Ties go to fewer threads: entries come in ascending order and the sort is stable.
  const [fastest] = Object.entries(tokensPerSecond).sort(([, a], [, b]) => b - a);
  const choice: StoredChoice = {
    threads: Number(fastest?.[0] ?? 1),
    tokensPerSecond,
    measuredAt: new Date().toISOString(),
    measureMs: Math.round(performance.now() - started),
  };
  if (options.cacheFile) {
    await storeChoice(options.cacheFile, key, choice).catch((error: Error) =>
      options.logger.warn(
        { file: options.cacheFile, err: error },
        'cannot store the thread choice; it is measured again next start',
      ),
    );
  }
  return choice;
}
