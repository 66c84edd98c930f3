import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import {
  getLlama,
  LlamaChat,
  type LlamaChat as LlamaChatType,
  type LlamaContext,
  LlamaLogLevel,
  type LlamaModel,
  type Token,
  TokenBias,
} from 'node-llama-cpp';
import { LLAMA2_CHAT_TEMPLATE, llamaTensorShapes, writeLlamaGguf } from '../src/gguf/index.ts';
import { toChatHistory } from '../src/llm/llama-cpp.ts';
import { LLAMA_CMAKE_OPTIONS } from '../src/native/llama-cpp-libs.ts';
import { tinySentencePieceTokenizer } from '../test/fixtures/tiny-llama.ts';
import { type LlamaServer, llamaServerBinary, residentBytes, startLlamaServer } from './lib/llama-server.ts';
import { percentile, reportFigures, round } from './stats.ts';

// Tokens/s and time to first token through Bertha's HTTP API (SSE streaming, answer records,
// metrics; `bertha up --model` in a child process) against two baselines on the same GGUF, at 1
// and 4 concurrent streams: node-llama-cpp called directly in this process (LlamaChat on a
// context sequence, the calls Bertha's runtime made before it decoded through its own loop over
// libllama, src/llm/native/), and llama.cpp's own llama-server built
// from the llama.cpp source node-llama-cpp ships (skipped, with a message, without a compiler).
// The models are random-weight llamas big enough that a token costs what it does in practice:
// ~27M parameters (8x512, F16) and, for the `big_` figures, ~309M (24x1024, F16).
// BENCH_WEIGHTS=Q8_0 or Q4_K (output Q6_K, as llama-quantize's Q4_K_M) writes them quantized:
// node-llama-cpp's prebuilt binary evaluates F16 prompts at half a native build's speed and
// quantized ones alike (docs/performance.md, serving).
const MAX_TOKENS = Number(process.env.BENCH_MAX_TOKENS ?? 48);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6);
const BIG_ROUNDS = Number(process.env.BENCH_BIG_ROUNDS ?? 3);
const THREADS = Number(process.env.BENCH_THREADS ?? availableParallelism());
const WEIGHT_TYPES = ['F16', 'Q8_0', 'Q4_K'] as const;
const WEIGHTS = process.env.BENCH_WEIGHTS ?? 'F16';
if (!WEIGHT_TYPES.some((type) => type === WEIGHTS)) {
  throw new Error(`BENCH_WEIGHTS must be one of ${WEIGHT_TYPES.join(', ')}, got ${WEIGHTS}`);
}
const WEIGHT_TYPE = WEIGHTS as (typeof WEIGHT_TYPES)[number];
const PARALLEL = 4;
const CONTEXT_SIZE = 1024;
const dir = mkdtempSync(path.join(tmpdir(), 'bertha-bench-serving-'));

interface ModelShape {
  label: string;
  nLayer: number;
  nEmbd: number;
  nFf: number;
}
const BENCH_MODEL: ModelShape = {
  label: `random llama 8x512 ${WEIGHT_TYPE} (~27M params)`,
  nLayer: 8,
  nEmbd: 512,
  nFf: 1536,
};
const BIG_MODEL: ModelShape = {
  label: `random llama 24x1024 ${WEIGHT_TYPE} (~309M params)`,
  nLayer: 24,
  nEmbd: 1024,
  nFf: 2816,
};

function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32 - 0.5;
  };
}

const tokenizer = tinySentencePieceTokenizer();

async function writeBenchModel(shape: ModelShape): Promise<string> {
  const hparams = {
    nVocab: tokenizer.tokens.length,
    nCtx: CONTEXT_SIZE,
    nEmbd: shape.nEmbd,
    nLayer: shape.nLayer,
    nHead: shape.nEmbd / 64,
    nHeadKv: shape.nEmbd / 64,
    nFf: shape.nFf,
    ropeFreqBase: 10000,
    rmsEps: 1e-5,
  };
  const random = seeded(7);
  const tensors = new Map<string, Float32Array>();
  for (const [name, tensorShape] of llamaTensorShapes(hparams)) {
    const [rows = 1, columns = 1] = tensorShape;
    const data = new Float32Array(rows * (tensorShape.length === 1 ? 1 : columns));
    if (tensorShape.length === 1) data.fill(1);
    else for (let i = 0; i < data.length; i++) data[i] = (random() * 2) / Math.sqrt(columns);
    tensors.set(name, data);
  }
  const modelPath = path.join(dir, `bench-llama-${shape.nLayer}x${shape.nEmbd}.gguf`);
  await writeLlamaGguf(modelPath, {
    name: 'bench-llama',
    hparams,
    tokenizer,
    tensors,
    chatTemplate: LLAMA2_CHAT_TEMPLATE,
    weightType: WEIGHT_TYPE,
    ...(WEIGHT_TYPE === 'Q4_K' ? { tensorTypes: { 'output.weight': 'Q6_K' } } : {}),
  });
  return modelPath;
}

// A random-weight model emits lone UTF-8 continuation bytes, which llama-server's output parser
// answers with a 500 after ~30 tokens; EOS is banned too so that every answer has MAX_TOKENS
// tokens on every side and the streams stay concurrent to the end.
const bannedTokens = tokenizer.tokens.flatMap((piece, id) =>
  /^<0x[0-9A-F]{2}>$/.test(piece) || id === tokenizer.eosId ? [id] : [],
);
const logitBias = Object.fromEntries(bannedTokens.map((id) => [String(id), -100]));

const messagesFor = (index: number) => [
  { role: 'system' as const, content: 'You are a helpful assistant.' },
  { role: 'user' as const, content: `question ${index}: what is the answer about the model and the data` },
];

interface StreamTiming {
  ttftMs: number;
  tokens: number;
  ms: number;
}

type Side = 'raw' | 'bertha' | 'llamaServer';
type StreamRunner = (slot: number, index: number) => Promise<StreamTiming>;

const progress = (message: string) => process.stderr.write(`${message}\n`);

// --- raw node-llama-cpp -------------------------------------------------------------------
// The binary Bertha serves with: a local build from `npm run build:llama` where there is one.
const llama = await getLlama({
  build: 'never',
  cmakeOptions: { ...LLAMA_CMAKE_OPTIONS },
  gpu: false,
  maxThreads: THREADS,
  logLevel: LlamaLogLevel.error,
});

async function rawRunner(model: LlamaModel): Promise<{ run: StreamRunner; context: LlamaContext }> {
  const context = await model.createContext({
    sequences: PARALLEL,
    contextSize: { max: CONTEXT_SIZE },
    threads: THREADS,
  });
  const chats: LlamaChatType[] = Array.from(
    { length: PARALLEL },
    () => new LlamaChat({ contextSequence: context.getSequence() }),
  );
  const tokenBias = new TokenBias(model.tokenizer);
  // TokenBias.set skips EOS; Bertha fills the same map for `logit_bias` (node-llama-cpp is pinned).
  const biases = (tokenBias as unknown as { _biases: Map<Token, number> })._biases;
  for (const id of bannedTokens) biases.set(id as Token, -100);
  const run: StreamRunner = async (slot, index) => {
    const chat = chats[slot] as LlamaChatType;
    const started = performance.now();
    let ttftMs = 0;
    const before = chat.sequence.tokenMeter.getState();
    await chat.generateResponse(toChatHistory(messagesFor(index)), {
      maxTokens: MAX_TOKENS,
      temperature: 0,
      tokenBias,
      onTextChunk: () => {
        if (!ttftMs) ttftMs = performance.now() - started;
      },
    });
    return { ttftMs, tokens: chat.sequence.tokenMeter.diff(before).usedOutputTokens, ms: performance.now() - started };
  };
  return { run, context };
}

// --- Bertha over HTTP: `bertha up --model` in its own process, as users run it ----------
async function startBertha(modelPath: string, dataDir: string): Promise<{ url: string; process: ChildProcess }> {
  const child = spawn(
    process.execPath,
    [
      path.resolve('bin/bertha.js'),
      'up',
      '--port',
      '0',
      '--data-dir',
      dataDir,
      '--model',
      modelPath,
      ...['gpu=off', `parallel=${PARALLEL}`, `contextSize=${CONTEXT_SIZE}`, `maxThreads=${THREADS}`].flatMap(
        (setting) => ['--set', `serving.llamaCpp.${setting}`],
      ),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const url = await new Promise<string>((resolve, reject) => {
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /"url":"(http:\/\/[^"]+)".*"msg":"bertha is up"/.exec(output);
      if (match?.[1]) resolve(match[1]);
      if (output.length > 100_000) output = output.slice(-10_000);
    });
    child.on('exit', (code) => reject(new Error(`bertha exited with ${code}`)));
  });
  while ((await fetch(`${url}/readyz`)).status !== 200) await new Promise((resolve) => setTimeout(resolve, 50));
  return { url, process: child };
}

/** One streamed chat completion through an OpenAI-compatible server (Bertha's or llama-server's). */
function httpRunner(url: string): StreamRunner {
  return async (_slot, index) => {
    const started = performance.now();
    const response = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'bertha',
        messages: messagesFor(index),
        max_tokens: MAX_TOKENS,
        temperature: 0,
        logit_bias: logitBias,
        stream: true,
        stream_options: { include_usage: true },
      }),
    });
    if (!response.body || response.status !== 200) throw new Error(`${url}: ${response.status}`);
    const decoder = new TextDecoder();
    let ttftMs = 0;
    let text = '';
    for await (const bytes of response.body) {
      text += decoder.decode(bytes as Uint8Array, { stream: true });
      if (!ttftMs && /"content":"[^"]/.test(text)) ttftMs = performance.now() - started;
    }
    if (text.includes('"error"')) throw new Error(`${url}: ${text.slice(-500)}`);
    const usage = /"completion_tokens":(\d+)/.exec(text);
    return { ttftMs, tokens: Number(usage?.[1] ?? 0), ms: performance.now() - started };
  };
}

async function concurrent(run: StreamRunner, streams: number, base: number) {
  const timings = await Promise.all(Array.from({ length: streams }, (_, slot) => run(slot, base + slot)));
  return timings.reduce((sum, timing) => sum + timing.tokens, 0);
}

interface Measured {
  single: { tokens: number; ms: number; ttft: number[] };
  four: { tokens: number; ms: number };
}

/**
 * Rotates the order of the sides round by round, so that each takes every place in turn:
 * machine noise hits every side alike, and so does idleness (on these VMs the first prompt a
 * process evaluates after a few idle seconds takes about twice as long, so a side always run
 * in the middle would only ever be timed cold).
 */
async function measure(runners: Partial<Record<Side, StreamRunner>>, rounds: number, label: string) {
  const sides = Object.keys(runners) as Side[];
  const results = {} as Record<Side, Measured>;
  for (const side of sides) results[side] = { single: { tokens: 0, ms: 0, ttft: [] }, four: { tokens: 0, ms: 0 } };
  let index = 0;
  // First use pays for allocations on every side: not timed.
  for (const side of sides) {
    await (runners[side] as StreamRunner)(0, index++);
    await concurrent(runners[side] as StreamRunner, PARALLEL, index);
    index += PARALLEL;
  }
  for (let round = 0; round < rounds; round++) {
    const order = sides.map((_, i) => sides[(i + round) % sides.length] as Side);
    for (const side of order) {
      const timing = await (runners[side] as StreamRunner)(0, index++);
      results[side].single.tokens += timing.tokens;
      results[side].single.ms += timing.ms;
      results[side].single.ttft.push(timing.ttftMs);
    }
    for (const side of order) {
      const started = performance.now();
      results[side].four.tokens += await concurrent(runners[side] as StreamRunner, PARALLEL, index);
      results[side].four.ms += performance.now() - started;
      index += PARALLEL;
    }
    progress(`${label}: round ${round + 1}/${rounds}`);
  }
  return results;
}

const rate = (side: { tokens: number; ms: number }) => (side.tokens / side.ms) * 1000;

interface ModelFigures {
  results: Record<Side, Measured>;
  rss: Partial<Record<Side, number>>;
}

/** Loads `shape` on every side available, measures, and stops what it started. */
async function benchModel(shape: ModelShape, rounds: number, binary: string | undefined): Promise<ModelFigures> {
  const modelPath = await writeBenchModel(shape);
  progress(`${shape.label}: model written`);
  const model = await llama.loadModel({ modelPath });
  const raw = await rawRunner(model);
  const dataDir = mkdtempSync(path.join(dir, 'bertha-'));
  const bertha = await startBertha(modelPath, dataDir);
  let server: LlamaServer | undefined;
  try {
    if (binary) {
      server = await startLlamaServer({
        binary,
        modelPath,
        parallel: PARALLEL,
        contextSize: CONTEXT_SIZE,
        threads: THREADS,
      });
    }
    progress(`${shape.label}: servers ready`);
    const results = await measure(
      {
        raw: raw.run,
        bertha: httpRunner(bertha.url),
        ...(server ? { llamaServer: httpRunner(server.url) } : {}),
      },
      rounds,
      shape.label,
    );
    const rss = {
      bertha: residentBytes(bertha.process.pid),
      ...(server ? { llamaServer: residentBytes(server.process.pid) } : {}),
    };
    return { results, rss };
  } finally {
    await server?.stop();
    bertha.process.kill('SIGTERM');
    if (bertha.process.exitCode === null) await new Promise((resolve) => bertha.process.once('exit', resolve));
    await raw.context.dispose();
    await model.dispose();
  }
}

function describe(label: string, { results, rss }: ModelFigures): void {
  const line = (name: string, pick: (measured: Measured) => string) =>
    `${name} ${Object.entries(results)
      .map(([side, measured]) => `${side} ${pick(measured)}`)
      .join(', ')}`;
  console.log(`model: ${label}`);
  console.log(line('1 stream: ', (m) => `${round(rate(m.single), 1)} tok/s`));
  console.log(line(`${PARALLEL} streams:`, (m) => `${round(rate(m.four), 1)} tok/s`));
  // Every sample, not only the p50: a prompt is warm or cold depending on what its sequence held before.
  console.log(
    line(
      'ttft p50: ',
      (m) => `${round(percentile(m.single.ttft, 50), 2)} ms (${m.single.ttft.map((ms) => Math.round(ms)).join(', ')})`,
    ),
  );
  const mib = (bytes: number | undefined) => (bytes === undefined ? '?' : `${Math.round(bytes / 2 ** 20)} MiB`);
  if (rss.llamaServer !== undefined)
    console.log(`rss: bertha ${mib(rss.bertha)}, llama-server ${mib(rss.llamaServer)}`);
}

/** The `*_vs_llama_server` figures, or none where llama-server did not run. */
function versusLlamaServer({ results, rss }: ModelFigures): Record<string, number> {
  const server = results.llamaServer;
  if (!server) return {};
  const ttft = (measured: Measured) => percentile(measured.single.ttft, 50);
  return {
    tokens_per_s_ratio_vs_llama_server: round(rate(results.bertha.single) / rate(server.single)),
    tokens_per_s_ratio_vs_llama_server_4: round(rate(results.bertha.four) / rate(server.four)),
    ttft_ratio_vs_llama_server: round(ttft(results.bertha) / ttft(server)),
    ...(rss.bertha && rss.llamaServer ? { rss_ratio_vs_llama_server: round(rss.bertha / rss.llamaServer) } : {}),
    llama_server_tokens_per_s: round(rate(server.single), 1),
    llama_server_tokens_per_s_4: round(rate(server.four), 1),
  };
}

const build = llamaServerBinary(progress);
if ('skipped' in build) progress(`llama-server comparison skipped: ${build.skipped}`);
const binary = 'binary' in build ? build.binary : undefined;

const small = await benchModel(BENCH_MODEL, ROUNDS, binary);
// The big model is there to be compared with llama-server: without it, or with no rounds, skipped.
const big = binary && BIG_ROUNDS > 0 ? await benchModel(BIG_MODEL, BIG_ROUNDS, binary) : undefined;
rmSync(dir, { recursive: true, force: true });

console.log(
  `${THREADS} threads, ${MAX_TOKENS} tokens per answer, ${ROUNDS} rounds (big model: ${BIG_ROUNDS}); node-llama-cpp ${llama.buildType === 'localBuild' ? 'local build (npm run build:llama)' : 'prebuilt binary'}`,
);
describe(BENCH_MODEL.label, small);
if (big) describe(BIG_MODEL.label, big);
const rawTtft = percentile(small.results.raw.single.ttft, 50);
reportFigures({
  tokens_per_s_ratio: round(rate(small.results.bertha.single) / rate(small.results.raw.single)),
  tokens_per_s_ratio_4: round(rate(small.results.bertha.four) / rate(small.results.raw.four)),
  ttft_overhead_ms: round(percentile(small.results.bertha.single.ttft, 50) - rawTtft, 2),
  raw_tokens_per_s: round(rate(small.results.raw.single), 1),
  raw_tokens_per_s_4: round(rate(small.results.raw.four), 1),
  raw_ttft_ms: round(rawTtft, 2),
  ...versusLlamaServer(small),
  ...(big
    ? Object.fromEntries(Object.entries(versusLlamaServer(big)).map(([key, value]) => [`big_${key}`, value]))
    : {}),
});
