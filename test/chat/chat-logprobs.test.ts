import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, expect, test, vi } from 'vitest';
import { writeTinyLlama } from '../fixtures/tiny-llama.ts';
import { type Serving, startServing } from './serving.ts';

// Each test file loads a model in this process; on a busy 2-core machine that takes a while.
vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });

let serving: Serving;
let modelDir: string;

beforeAll(async () => {
  modelDir = mkdtempSync(path.join(tmpdir(), 'bertha-chat-logprobs-'));
  const tiny = await writeTinyLlama(modelDir);
  serving = await startServing({ model: tiny.modelPath, llamaCpp: { gpu: 'off', contextSize: 512, parallel: 1 } });
});

afterAll(async () => {
  await serving?.close();
  rmSync(modelDir, { recursive: true, force: true });
});

const ask = [{ role: 'user' as const, content: 'hello world, what is the answer' }];

test('logprobs give one entry per completion token with its most likely alternatives, most likely first', async () => {
  const plain = await serving.client.chat.completions.create({
    model: 'bertha',
    messages: ask,
    max_tokens: 10,
    temperature: 0,
  });
  expect(plain.choices[0]?.logprobs).toBeNull();

  const completion = await serving.client.chat.completions.create({
    model: 'bertha',
    messages: ask,
    max_tokens: 10,
    temperature: 0,
    logprobs: true,
    top_logprobs: 3,
  });
  const choice = completion.choices[0];
  // Asking for logprobs does not change the answer.
  expect(choice?.message.content).toBe(plain.choices[0]?.message.content);
  expect(choice?.finish_reason).toBe('length');
  const content = choice?.logprobs?.content ?? [];
  expect(content.length).toBe(completion.usage?.completion_tokens);
  for (const entry of content) {
    expect(entry.logprob).toBeLessThanOrEqual(0);
    expect(entry.top_logprobs.length).toBe(3);
    const values = entry.top_logprobs.map((alternative) => alternative.logprob);
    expect(values).toEqual([...values].sort((a, b) => b - a));
    // Greedy decoding: the chosen token is the most likely one.
    expect(entry.top_logprobs[0]?.token).toBe(entry.token);
    expect(entry.top_logprobs[0]?.logprob).toBe(entry.logprob);
    if (!entry.token.startsWith('bytes:')) expect(entry.bytes).toEqual([...Buffer.from(entry.token)]);
  }
  // The tokens' bytes spell the answer; the chat answer leaves out the space the first token
  // begins with and trailing whitespace, which are sampled and counted all the same.
  const spelled = Buffer.from(content.flatMap((entry) => entry.bytes ?? [])).toString('utf8');
  expect(spelled.trimStart().startsWith(choice?.message.content ?? '-')).toBe(true);
});

test('logprobs without top_logprobs give no alternatives; top_logprobs alone or above 20 is refused', async () => {
  const completion = await serving.client.chat.completions.create({
    model: 'bertha',
    messages: ask,
    max_tokens: 4,
    logprobs: true,
  });
  const content = completion.choices[0]?.logprobs?.content ?? [];
  expect(content.length).toBe(completion.usage?.completion_tokens);
  for (const entry of content) expect(entry.top_logprobs).toEqual([]);

  for (const body of [
    { model: 'bertha', messages: ask, top_logprobs: 2 },
    { model: 'bertha', messages: ask, logprobs: true, top_logprobs: 21 },
  ]) {
    const error = await serving.client.chat.completions.create(body).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('top_logprobs');
  }
});

test('a stream carries the same logprobs as the whole answer, after its text', async () => {
  const request = { model: 'bertha', messages: ask, max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 2 };
  const whole = await serving.client.chat.completions.create(request);
  const stream = await serving.client.chat.completions.create({
    ...request,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let usage: OpenAI.CompletionUsage | undefined | null;
  const content: OpenAI.Chat.ChatCompletionTokenLogprob[] = [];
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta.content ?? '';
    content.push(...(chunk.choices[0]?.logprobs?.content ?? []));
    if (chunk.usage) usage = chunk.usage;
  }
  expect(text).toBe(whole.choices[0]?.message.content);
  expect(content.length).toBe(usage?.completion_tokens);
  expect(content.map((entry) => entry.token)).toEqual(whole.choices[0]?.logprobs?.content?.map((entry) => entry.token));
  for (const [i, entry] of content.entries()) {
    const expected = whole.choices[0]?.logprobs?.content?.[i]?.logprob as number;
    expect(Math.abs(entry.logprob - expected)).toBeLessThan(1e-4);
  }
});
