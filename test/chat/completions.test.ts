import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { createLogger } from '../../src/core/logger.ts';
import { createLlamaCppRuntime } from '../../src/llm/llama-cpp.ts';
import { createOpenAiRuntime } from '../../src/llm/openai.ts';
import type { LlmRuntime } from '../../src/llm/runtime.ts';
import { writeTinyLlama } from '../fixtures/tiny-llama.ts';
import { type Serving, sample, startServing } from './serving.ts';

// Each test file loads a model in this process; on a busy 2-core machine that takes a while.
vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });

let serving: Serving;
let modelDir: string;
/** The same GGUF loaded beside the server: the reference its log-probabilities must agree with. */
let reference: LlmRuntime;

beforeAll(async () => {
  modelDir = mkdtempSync(path.join(tmpdir(), 'bertha-completions-'));
  const tiny = await writeTinyLlama(modelDir);
  serving = await startServing({ model: tiny.modelPath, llamaCpp: { gpu: 'off', contextSize: 512, parallel: 1 } });
  reference = createLlamaCppRuntime({
    modelPath: tiny.modelPath,
    maxThreads: 1,
    gpu: 'off',
    parallel: 1,
    contextSize: 512,
    batchSize: 512,
    defaults: { temperature: 0, topP: 1, maxTokens: 12 },
    logger: createLogger('warn'),
  });
  await reference.load();
});

afterAll(async () => {
  await reference?.close();
  await serving?.close();
  rmSync(modelDir, { recursive: true, force: true });
});

interface LogprobsJson {
  tokens: string[];
  token_logprobs: Array<number | null>;
  top_logprobs: Array<Record<string, number> | null>;
  text_offset: number[];
}

interface CompletionJson {
  id: string;
  object: string;
  model: string;
  choices: Array<{ index: number; text: string; logprobs: LogprobsJson | null; finish_reason: string }>;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  model_version: string;
}

async function post(body: unknown): Promise<{ status: number; raw: string; json: CompletionJson }> {
  const response = await fetch(`${serving.url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const raw = await response.text();
  return { status: response.status, raw, json: JSON.parse(raw) as CompletionJson };
}

/**
 * The first choice's `top_logprobs` maps as written on the wire, in their key order (JSON.parse
 * would move keys that read as numbers, a token `7`, to the front).
 */
function topLogprobsInOrder(raw: string): Array<Array<[string, number]> | null> {
  const marker = '"top_logprobs":[';
  let at = raw.indexOf(marker) + marker.length;
  const key = /"(?:[^"\\]|\\.)*"/y;
  const value = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  const maps: Array<Array<[string, number]> | null> = [];
  while (raw[at] !== ']') {
    if (raw.startsWith('null', at)) {
      maps.push(null);
      at += 4;
    } else {
      at += 1;
      const entries: Array<[string, number]> = [];
      while (raw[at] !== '}') {
        key.lastIndex = at;
        const name = key.exec(raw)?.[0] ?? '';
        at += name.length + 1;
        value.lastIndex = at;
        const number = value.exec(raw)?.[0] ?? '';
        at += number.length;
        entries.push([JSON.parse(name) as string, Number(number)]);
        if (raw[at] === ',') at += 1;
      }
      at += 1;
      maps.push(entries);
    }
    if (raw[at] === ',') at += 1;
  }
  return maps;
}

const context = 'Question: what does the llama answer?\nAnswer:';
const continuation = ' the knowledge base';

describe('echo with logprobs (how lm-evaluation-harness scores a continuation)', () => {
  test('max_tokens 0 returns the prompt tokens, the first unscored and the rest as the runtime log-likelihood scores them', async () => {
    const prompt = context + continuation;
    const { status, raw, json } = await post({
      model: 'bertha',
      prompt,
      echo: true,
      logprobs: 3,
      max_tokens: 0,
      temperature: 0,
    });
    expect(status).toBe(200);
    expect(json.object).toBe('text_completion');
    expect(json.id).toMatch(/^cmpl-/);
    expect(json.model_version).toBe('local');
    const choice = json.choices[0];
    expect(choice?.text).toBe(prompt);
    expect(choice?.finish_reason).toBe('length');
    expect(json.usage.completion_tokens).toBe(0);

    const logprobs = choice?.logprobs as LogprobsJson;
    expect(logprobs.tokens.length).toBe(json.usage.prompt_tokens);
    expect(logprobs.token_logprobs[0]).toBeNull();
    expect(logprobs.top_logprobs[0]).toBeNull();
    expect(logprobs.text_offset[0]).toBe(0);
    for (const [i, offset] of logprobs.text_offset.entries()) {
      expect(offset).toBeGreaterThanOrEqual(logprobs.text_offset[i - 1] ?? 0);
      expect(offset).toBeLessThanOrEqual(prompt.length);
    }

    // The continuation's tokens are those that begin at or after the context's end.
    const scored = logprobs.token_logprobs.filter((_, i) => (logprobs.text_offset[i] as number) >= context.length);
    const [expected] = await reference.logLikelihood([{ context, continuation }]);
    expect(scored.length).toBe(expected?.tokens);
    const sum = scored.reduce((total: number, logprob) => total + (logprob as number), 0);
    expect(Math.abs(sum - (expected?.logprob as number))).toBeLessThan(1e-4);

    // Every scored token of the prompt: the whole text after BOS as one continuation.
    const [whole] = await reference.logLikelihood([{ context: '', continuation: prompt }]);
    const all = logprobs.token_logprobs.slice(1).reduce((total: number, logprob) => total + (logprob as number), 0);
    expect(Math.abs(all - (whole?.logprob as number))).toBeLessThan(1e-4);

    const maps = topLogprobsInOrder(raw);
    expect(maps.length).toBe(logprobs.tokens.length);
    for (const [i, entries] of maps.entries()) {
      if (i === 0) continue;
      const values = (entries ?? []).map(([, logprob]) => logprob);
      // The three most likely, most likely first, then the prompt's own token where it is not among them.
      expect(values.length === 3 || values.length === 4).toBe(true);
      expect(values.slice(0, 3)).toEqual(values.slice(0, 3).sort((a, b) => b - a));
      const chosen = (entries ?? []).find(([token]) => token === logprobs.tokens[i]);
      expect(chosen?.[1]).toBe(logprobs.token_logprobs[i]);
      if (values.length === 4) expect(entries?.at(-1)?.[0]).toBe(logprobs.tokens[i]);
      if (chosen?.[1] === values[0]) expect(entries?.[0]?.[0]).toBe(logprobs.tokens[i]);
    }
  });

  test('generated tokens carry their logprobs too: greedy decoding picks the most likely token every time', async () => {
    const request = { model: 'bertha', prompt: context, max_tokens: 8, temperature: 0, logprobs: 2 };
    const plain = await post(request);
    const choice = plain.json.choices[0];
    const logprobs = choice?.logprobs as LogprobsJson;
    expect(logprobs.tokens.length).toBe(plain.json.usage.completion_tokens);
    expect(logprobs.tokens.length).toBeGreaterThan(0);
    expect(logprobs.text_offset[0]).toBe(0);
    const maps = topLogprobsInOrder(plain.raw);
    for (const [i, entries] of maps.entries()) {
      expect(entries?.[0]?.[0]).toBe(logprobs.tokens[i]);
      expect(entries?.[0]?.[1]).toBe(logprobs.token_logprobs[i]);
      expect(entries?.length).toBe(2);
      expect(logprobs.token_logprobs[i]).toBeLessThanOrEqual(0);
    }

    // Echoed: the prompt's tokens, then the same generated tokens at offsets past the prompt.
    const echoed = await post({ ...request, echo: true });
    const both = echoed.json.choices[0];
    expect(both?.text).toBe(context + (choice?.text ?? ''));
    const echoedLogprobs = both?.logprobs as LogprobsJson;
    const promptCount = echoedLogprobs.tokens.length - logprobs.tokens.length;
    expect(promptCount).toBe(echoed.json.usage.prompt_tokens);
    expect(echoedLogprobs.tokens.slice(promptCount)).toEqual(logprobs.tokens);
    expect(echoedLogprobs.text_offset.slice(promptCount)).toEqual(
      logprobs.text_offset.map((offset) => offset + context.length),
    );
    for (const [i, logprob] of echoedLogprobs.token_logprobs.slice(promptCount).entries()) {
      expect(Math.abs((logprob as number) - (logprobs.token_logprobs[i] as number))).toBeLessThan(1e-4);
    }
  });
});

describe('the openai client', () => {
  test('completes a prompt, and an array of prompts gives one choice per prompt', async () => {
    const single = await serving.client.completions.create({
      model: 'bertha',
      prompt: 'the llama and the model',
      max_tokens: 6,
      temperature: 0,
    });
    expect(single.object).toBe('text_completion');
    expect(single.choices[0]?.logprobs).toBeNull();
    expect(single.usage?.completion_tokens).toBeLessThanOrEqual(6);

    const batch = await serving.client.completions.create({
      model: 'bertha',
      prompt: ['the llama and the model', 'hello world'],
      max_tokens: 6,
      temperature: 0,
    });
    expect(batch.choices.map((choice) => choice.index)).toEqual([0, 1]);
    // Raw prompts: the first is the same request as before, with the same greedy answer.
    expect(batch.choices[0]?.text).toBe(single.choices[0]?.text);
    expect(batch.usage?.prompt_tokens).toBeGreaterThan(single.usage?.prompt_tokens ?? 0);
  });

  test('a stop string ends the text before it', async () => {
    const greedy = await serving.client.completions.create({
      model: 'bertha',
      prompt: context,
      max_tokens: 24,
      temperature: 0,
    });
    const text = greedy.choices[0]?.text ?? '';
    const stop = text.slice(6, 9);
    expect(stop.length).toBe(3);
    const stopped = await serving.client.completions.create({
      model: 'bertha',
      prompt: context,
      max_tokens: 24,
      temperature: 0,
      stop: [stop],
    });
    expect(stopped.choices[0]?.text).toBe(text.slice(0, text.indexOf(stop)));
    expect(stopped.choices[0]?.finish_reason).toBe('stop');
  });

  test('streams the echoed prompt, the text, then the logprobs, ending with usage', async () => {
    const request = { model: 'bertha', prompt: context, max_tokens: 10, temperature: 0, echo: true, logprobs: 1 };
    const whole = await serving.client.completions.create(request);
    const stream = await serving.client.completions.create({
      ...request,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let tokens: string[] = [];
    let finish: string | null | undefined;
    let usage: OpenAI.CompletionUsage | undefined;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks += 1;
      text += chunk.choices[0]?.text ?? '';
      tokens = [...tokens, ...(chunk.choices[0]?.logprobs?.tokens ?? [])];
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(chunks).toBeGreaterThan(3);
    expect(text).toBe(whole.choices[0]?.text);
    expect(text.startsWith(context)).toBe(true);
    expect(tokens).toEqual(whole.choices[0]?.logprobs?.tokens);
    expect(finish).toBe(whole.choices[0]?.finish_reason);
    expect(usage?.completion_tokens).toBe(whole.usage?.completion_tokens);
  });

  test('completions count in the serving metrics', async () => {
    const metrics = await (await fetch(`${serving.url}/metrics`)).text();
    expect(sample(metrics, 'bertha_requests_total{model_version="local",status="completed"}')).toBeGreaterThan(0);
    expect(sample(metrics, 'bertha_generation_tokens_total{model_version="local"}')).toBeGreaterThan(0);
    expect(sample(metrics, 'bertha_requests_running{model_version="local"}')).toBe(0);
  });
});

test('the openai runtime passes completions and logprobs through to an upstream, here Bertha itself', async () => {
  const upstream = createOpenAiRuntime({
    baseUrl: `${serving.url}/v1`,
    apiKey: '',
    model: 'bertha',
    parallel: 1,
    timeoutMs: 60_000,
    defaults: { temperature: 0, topP: 1, maxTokens: 8 },
    logger: createLogger('warn'),
  });
  await upstream.load();
  try {
    // Its log-likelihoods come from `/v1/completions` with echo: the same numbers as the GGUF's own.
    const [throughApi] = await upstream.logLikelihood([{ context, continuation }]);
    const [direct] = await reference.logLikelihood([{ context, continuation }]);
    expect(throughApi?.tokens).toBe(direct?.tokens);
    expect(Math.abs((throughApi?.logprob as number) - (direct?.logprob as number))).toBeLessThan(1e-4);
    expect(throughApi?.greedy).toBe(direct?.greedy);

    const completion = await upstream.complete({
      prompt: context,
      maxTokens: 5,
      temperature: 0,
      logprobs: 2,
      promptLogprobs: true,
    });
    const local = await reference.complete({
      prompt: context,
      maxTokens: 5,
      temperature: 0,
      logprobs: 2,
      promptLogprobs: true,
    });
    expect(completion.text).toBe(local.text);
    expect(completion.promptLogprobs?.map((token) => token.token)).toEqual(
      local.promptLogprobs?.map((token) => token.token),
    );
    expect(completion.logprobs?.map((token) => token.token)).toEqual(local.logprobs?.map((token) => token.token));
    expect(completion.logprobs?.map((token) => token.top.length)).toEqual(local.logprobs?.map(() => 2));

    const answer = await upstream.generate({
      messages: [{ role: 'user', content: 'hello world' }],
      maxTokens: 4,
      temperature: 0,
      logprobs: 1,
    });
    expect(answer.logprobs?.length).toBe(answer.completionTokens);
    expect(answer.logprobs?.every((token) => token.top.length === 1)).toBe(true);
  } finally {
    await upstream.close();
  }
});

describe('errors in OpenAI format', () => {
  test('invalid parameters get 400 naming the parameter', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ model: 'bertha', prompt: 'hello', logprobs: 21 }, 'logprobs'],
      [{ model: 'bertha', max_tokens: 2 }, 'prompt'],
      [{ model: 'bertha', prompt: [1, 2, 3] }, 'prompt'],
      [{ model: 'bertha', prompt: 'hello', max_tokens: -1 }, 'max_tokens'],
    ];
    for (const [body, param] of cases) {
      const { status, json } = await post(body);
      const error = (json as unknown as { error: Record<string, unknown> }).error;
      expect(status).toBe(400);
      expect(Object.keys(error).sort()).toEqual(['code', 'message', 'param', 'type']);
      expect(error.type).toBe('invalid_request_error');
      expect(error.param).toBe(param);
    }
    const tokenIds = await post({ model: 'bertha', prompt: [[1, 2, 3]] });
    expect((tokenIds.json as unknown as { error: { message: string } }).error.message).toContain('token ids');

    const error = await serving.client.completions
      .create({ model: 'bertha', prompt: 'hello', logprobs: 21 })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
  });

  test('a prompt longer than the context gets 400 context_length_exceeded', async () => {
    const { status, json } = await post({ model: 'bertha', prompt: 'the llama model '.repeat(400), max_tokens: 1 });
    const error = (json as unknown as { error: Record<string, unknown> }).error;
    expect(status).toBe(400);
    expect(error.code).toBe('context_length_exceeded');
    expect(error.param).toBe('prompt');
  });

  test('an unknown model gets the same 404 as chat', async () => {
    const completion = await post({ model: 'gpt-4', prompt: 'hello' });
    const chat = await fetch(`${serving.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4', messages: [{ role: 'user', content: 'hello' }] }),
    });
    expect(completion.status).toBe(404);
    expect(chat.status).toBe(404);
    expect(completion.json).toEqual(await chat.json());
    const error = await serving.client.completions
      .create({ model: 'gpt-4', prompt: 'hello' })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    expect((error as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('model_not_found');
  });
});
