import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { getLlama, LlamaChat, type LlamaChat as LlamaChatType, LlamaLogLevel } from 'node-llama-cpp';
import { LLAMA2_CHAT_TEMPLATE, llamaTensorShapes, writeLlamaGguf } from '../src/gguf/index.ts';
import { toChatHistory } from '../src/llm/llama-cpp.ts';
import { tinySentencePieceTokenizer } from '../test/fixtures/tiny-llama.ts';
import { percentile, reportFigures, round } from './stats.ts';

// Tokens/s and time to first token through Bertha's HTTP API (SSE streaming, answer records,
// metrics; `bertha up --model` in a child process) against node-llama-cpp called directly in
// this process (LlamaChat on a context sequence, the calls Bertha's runtime makes) on the same
// GGUF, at 1 and 4 concurrent streams.
// The model is a random-weight llama big enough that a token costs what it does in practice
// (~27M parameters, F16), so per-token overheads are measured against real decode work.
const MAX_TOKENS = Number(process.env.BENCH_MAX_TOKENS ?? 48);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6);
const THREADS = Number(process.env.BENCH_THREADS ?? availableParallelism());
const dir = mkdtempSync(path.join(tmpdir(), 'bertha-bench-serving-'));

function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32 - 0.5;
  };
}

async function writeBenchModel(): Promise<string> {
  const tokenizer = tinySentencePieceTokenizer();
  const hparams = {
    nVocab: tokenizer.tokens.length,
    nCtx: 1024,
    nEmbd: 512,
    nLayer: 8,
    nHead: 8,
    nHeadKv: 8,
    nFf: 1536,
    ropeFreqBase: 10000,
    rmsEps: 1e-5,
  };
  const random = seeded(7);
  const tensors = new Map<string, Float32Array>();
  for (const [name, shape] of llamaTensorShapes(hparams)) {
    const [rows = 1, columns = 1] = shape;
    const data = new Float32Array(rows * (shape.length === 1 ? 1 : columns));
    if (shape.length === 1) data.fill(1);
    else for (let i = 0; i < data.length; i++) data[i] = (random() * 2) / Math.sqrt(columns);
    tensors.set(name, data);
  }
  const modelPath = path.join(dir, 'bench-llama.gguf');
  await writeLlamaGguf(modelPath, {
    name: 'bench-llama',
    hparams,
    tokenizer,
    tensors,
    chatTemplate: LLAMA2_CHAT_TEMPLATE,
    weightType: 'F16',
  });
  return modelPath;
}

const messagesFor = (index: number) => [
  { role: 'system' as const, content: 'You are a helpful assistant.' },
  { role: 'user' as const, content: `question ${index}: what is the answer about the model and the data` },
];

interface StreamTiming {
  ttftMs: number;
  tokens: number;
  ms: number;
}

const progress = (message: string) => process.stderr.write(`${message}\n`);
const modelPath = await writeBenchModel();
progress('model written');

// --- raw node-llama-cpp -------------------------------------------------------------------
const llama = await getLlama({ build: 'never', gpu: false, maxThreads: THREADS, logLevel: LlamaLogLevel.error });
const rawModel = await llama.loadModel({ modelPath });
const rawContext = await rawModel.createContext({ sequences: 4, contextSize: { max: 1024 }, threads: THREADS });
progress('raw model loaded');
const rawChats: LlamaChatType[] = Array.from(
  { length: 4 },
  () => new LlamaChat({ contextSequence: rawContext.getSequence() }),
);

async function rawStream(chat: LlamaChatType, index: number): Promise<StreamTiming> {
  const started = performance.now();
  let ttftMs = 0;
  const before = chat.sequence.tokenMeter.getState();
  await chat.generateResponse(toChatHistory(messagesFor(index)), {
    maxTokens: MAX_TOKENS,
    temperature: 0,
    onTextChunk: () => {
      if (!ttftMs) ttftMs = performance.now() - started;
    },
  });
  return { ttftMs, tokens: chat.sequence.tokenMeter.diff(before).usedOutputTokens, ms: performance.now() - started };
}

// --- Bertha over HTTP: `bertha up --model` in its own process, as users run it ----------
const berthaProcess = spawn(
  process.execPath,
  [
    path.resolve('bin/bertha.js'),
    'up',
    '--port',
    '0',
    '--data-dir',
    dir,
    '--model',
    modelPath,
    ...['gpu=off', 'parallel=4', 'contextSize=1024', `maxThreads=${THREADS}`].flatMap((setting) => [
      '--set',
      `serving.llamaCpp.${setting}`,
    ]),
  ],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
const url = await new Promise<string>((resolve, reject) => {
  let output = '';
  berthaProcess.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    const match = /"url":"(http:\/\/[^"]+)".*"msg":"bertha is up"/.exec(output);
    if (match?.[1]) resolve(match[1]);
    if (output.length > 100_000) output = output.slice(-10_000);
  });
  berthaProcess.on('exit', (code) => reject(new Error(`bertha exited with ${code}`)));
});
while ((await fetch(`${url}/readyz`)).status !== 200) await new Promise((resolve) => setTimeout(resolve, 50));

async function berthaStream(index: number): Promise<StreamTiming> {
  const started = performance.now();
  const response = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model: 'bertha',
      messages: messagesFor(index),
      max_tokens: MAX_TOKENS,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    }),
  });
  if (!response.body) throw new Error(`no body: ${response.status}`);
  const decoder = new TextDecoder();
  let ttftMs = 0;
  let text = '';
  for await (const bytes of response.body) {
    text += decoder.decode(bytes as Uint8Array, { stream: true });
    if (!ttftMs && text.includes('"delta":{"content":')) ttftMs = performance.now() - started;
  }
  const usage = /"completion_tokens":(\d+)/.exec(text);
  return { ttftMs, tokens: Number(usage?.[1] ?? 0), ms: performance.now() - started };
}

async function concurrent(run: (slot: number, index: number) => Promise<StreamTiming>, streams: number, base: number) {
  const started = performance.now();
  const timings = await Promise.all(Array.from({ length: streams }, (_, slot) => run(slot, base + slot)));
  const ms = performance.now() - started;
  return { tokensPerS: (timings.reduce((sum, timing) => sum + timing.tokens, 0) / ms) * 1000, timings };
}

progress('bertha ready');

// Warm both paths once (first-use allocations), then alternate raw and Bertha so that machine
// noise hits both alike.
await rawStream(rawChats[0] as LlamaChatType, 0);
await berthaStream(0);
progress('warmed up');

const single = { raw: { tokens: 0, ms: 0, ttft: [] as number[] }, bertha: { tokens: 0, ms: 0, ttft: [] as number[] } };
const four = { raw: { tokens: 0, ms: 0 }, bertha: { tokens: 0, ms: 0 } };
let index = 1;
for (let round = 0; round < ROUNDS; round++) {
  for (const side of round % 2 === 0 ? (['raw', 'bertha'] as const) : (['bertha', 'raw'] as const)) {
    const timing = side === 'raw' ? await rawStream(rawChats[0] as LlamaChatType, index) : await berthaStream(index);
    single[side].tokens += timing.tokens;
    single[side].ms += timing.ms;
    single[side].ttft.push(timing.ttftMs);
    index += 1;
  }
  for (const side of round % 2 === 0 ? (['raw', 'bertha'] as const) : (['bertha', 'raw'] as const)) {
    const started = performance.now();
    const result =
      side === 'raw'
        ? await concurrent((slot, i) => rawStream(rawChats[slot] as LlamaChatType, i), 4, index)
        : await concurrent((_slot, i) => berthaStream(i), 4, index);
    four[side].tokens += result.timings.reduce((sum, timing) => sum + timing.tokens, 0);
    four[side].ms += performance.now() - started;
    index += 4;
  }
  progress(`round ${round + 1}/${ROUNDS}`);
}

berthaProcess.kill('SIGTERM');
await new Promise((resolve) => berthaProcess.once('exit', resolve));
await rawContext.dispose();
await rawModel.dispose();
rmSync(dir, { recursive: true, force: true });

const rate = (side: { tokens: number; ms: number }) => (side.tokens / side.ms) * 1000;
const rawTtft = percentile(single.raw.ttft, 50);
const berthaTtft = percentile(single.bertha.ttft, 50);
console.log(
  `model: random llama 8x512 F16 (~27M params), ${THREADS} threads, ${MAX_TOKENS} tokens per answer, ${ROUNDS} rounds`,
);
console.log(`1 stream:  raw ${round(rate(single.raw), 1)} tok/s, bertha ${round(rate(single.bertha), 1)} tok/s`);
console.log(`4 streams: raw ${round(rate(four.raw), 1)} tok/s, bertha ${round(rate(four.bertha), 1)} tok/s`);
console.log(`ttft p50:  raw ${round(rawTtft, 2)} ms, bertha ${round(berthaTtft, 2)} ms`);
reportFigures({
  tokens_per_s_ratio: round(rate(single.bertha) / rate(single.raw)),
  tokens_per_s_ratio_4: round(rate(four.bertha) / rate(four.raw)),
  ttft_overhead_ms: round(berthaTtft - rawTtft, 2),
  raw_tokens_per_s: round(rate(single.raw), 1),
  raw_tokens_per_s_4: round(rate(four.raw), 1),
  raw_ttft_ms: round(rawTtft, 2),
});
