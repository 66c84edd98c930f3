import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { writeTinyLlama } from '../fixtures/tiny-llama.ts';
import { eventually, type Serving, sample, startServing } from './serving.ts';

// Each test loads a model in this process; on a busy 2-core machine that takes a while.
vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });

let serving: Serving;
let modelDir: string;

beforeAll(async () => {
  modelDir = mkdtempSync(path.join(tmpdir(), 'bertha-model-'));
  // Endless: the disconnect test needs an answer still running when the client leaves.
  const tiny = await writeTinyLlama(modelDir, { endless: true });
  serving = await startServing({
    model: tiny.modelPath,
    llamaCpp: { gpu: 'off', contextSize: 512, parallel: 2 },
    pricing: { perComputeSecond: 2 },
  });
});

afterAll(async () => {
  await serving?.close();
  rmSync(modelDir, { recursive: true, force: true });
});

const ask = [{ role: 'user' as const, content: 'hello world, what is the answer' }];

describe('non-streaming completions', () => {
  test('return the answer with usage counts and store it as an answer record in the Llama 2 chat format', async () => {
    const completion = await serving.client.chat.completions.create({
      model: 'bertha',
      messages: ask,
      max_tokens: 12,
      temperature: 0,
    });
    expect(completion.object).toBe('chat.completion');
    expect(completion.choices[0]?.message.role).toBe('assistant');
    expect(completion.choices[0]?.finish_reason).toBe('length');
    expect(completion.usage?.completion_tokens).toBe(12);
    expect(completion.usage?.prompt_tokens).toBeGreaterThan(10);
    expect(completion.usage?.total_tokens).toBe((completion.usage?.prompt_tokens ?? 0) + 12);

    const record = await serving.bertha.answers.get(completion.id);
    expect(record).toMatchObject({
      status: 'completed',
      model: 'bertha',
      modelVersion: 'local',
      answer: completion.choices[0]?.message.content,
      promptTokens: completion.usage?.prompt_tokens,
      completionTokens: 12,
      finishReason: 'length',
      params: { temperature: 0, maxTokens: 12 },
    });
    // The model's own template from its GGUF metadata: Llama 2 chat.
    expect(record?.prompt).toContain(
      '[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nhello world, what is the answer [/INST]',
    );
    expect(record?.computeMs).toBeGreaterThan(0);
    // Local models cost compute time: 2 per second as configured.
    expect(record?.cost).toBeCloseTo(((record?.computeMs ?? 0) / 1000) * 2, 6);
    expect(record?.ttftMs).toBeGreaterThan(0);
    expect(record?.latencyMs).toBeGreaterThanOrEqual(record?.ttftMs ?? 0);
  });

  test('the same seed gives the same sampled answer', async () => {
    const request = { model: 'bertha', messages: ask, max_tokens: 10, temperature: 1, top_p: 0.9, seed: 42 };
    const first = await serving.client.chat.completions.create(request);
    const second = await serving.client.chat.completions.create(request);
    expect(second.choices[0]?.message.content).toBe(first.choices[0]?.message.content);
  });

  test('a stop sequence ends the answer before it', async () => {
    const greedy = await serving.client.chat.completions.create({
      model: 'bertha',
      messages: ask,
      max_tokens: 24,
      temperature: 0,
    });
    const text = greedy.choices[0]?.message.content ?? '';
    const stop = text.slice(6, 9);
    expect(stop.length).toBe(3);
    const stopped = await serving.client.chat.completions.create({
      model: 'bertha',
      messages: ask,
      max_tokens: 24,
      temperature: 0,
      stop: [stop],
    });
    expect(stopped.choices[0]?.message.content).toBe(text.slice(0, text.indexOf(stop)));
    expect(stopped.choices[0]?.finish_reason).toBe('stop');
  });

  test('turns that share a conversation id are listed together', async () => {
    const conversation = `conv-test-${Date.now()}`;
    for (const content of ['first question', 'second question']) {
      await serving.client.chat.completions.create({
        model: 'bertha',
        messages: [{ role: 'user', content }],
        max_tokens: 3,
        // @ts-expect-error Bertha's extension field, ignored by other servers
        conversation_id: conversation,
      });
    }
    const response = await fetch(`${serving.url}/v1/conversations/${conversation}/answers`);
    const body = (await response.json()) as {
      data: Array<{ conversation_id: string; messages: Array<{ content: string }> }>;
    };
    expect(body.data.map((answer) => answer.messages[0]?.content)).toEqual(['first question', 'second question']);
  });
});

describe('streaming completions', () => {
  test('stream the answer as SSE chunks ending with usage, and record the same text', async () => {
    const stream = await serving.client.chat.completions.create({
      model: 'bertha',
      messages: ask,
      max_tokens: 16,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let id = '';
    let finish: string | null | undefined;
    let usage: OpenAI.CompletionUsage | undefined | null;
    let chunks = 0;
    for await (const chunk of stream) {
      id = chunk.id;
      chunks += 1;
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(chunks).toBeGreaterThan(3);
    expect(finish).toBe('length');
    expect(usage?.completion_tokens).toBe(16);
    // An earlier test asked the same question: its prompt was still in a context sequence.
    expect(usage?.prompt_tokens_details?.cached_tokens).toBeGreaterThan(0);
    expect(usage?.prompt_tokens_details?.cached_tokens).toBeLessThan(usage?.prompt_tokens ?? 0);
    const record = await serving.bertha.answers.get(id);
    expect(record?.cachedPromptTokens).toBe(usage?.prompt_tokens_details?.cached_tokens);
    expect(record?.answer).toBe(text);
    expect(record?.status).toBe('completed');
    expect(record?.completionTokens).toBe(16);
  });

  test('the raw stream is text/event-stream that ends with data: [DONE] and carries sources', async () => {
    const response = await fetch(`${serving.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'bertha', messages: ask, max_tokens: 4, stream: true }),
    });
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    const body = await response.text();
    const events = body.split('\n\n').filter(Boolean);
    expect(events.at(-1)).toBe('data: [DONE]');
    const first = JSON.parse(events[0]?.slice('data: '.length) ?? '{}') as Record<string, unknown>;
    expect(first.sources).toEqual([]);
    expect(first.conversation_id).toMatch(/^conv_/);
  });

  test('a client that disconnects mid-stream stops generation and the answer is recorded as cancelled', async () => {
    const controller = new AbortController();
    const stream = await serving.client.chat.completions.create(
      {
        model: 'bertha',
        messages: ask,
        max_tokens: 400,
        temperature: 1,
        stream: true,
      },
      { signal: controller.signal },
    );
    let id = '';
    let received = 0;
    for await (const chunk of stream) {
      id = chunk.id;
      if (chunk.choices[0]?.delta.content) received += 1;
      if (received === 2) {
        // Chunks that already arrived may still be buffered in the client: stop reading too.
        controller.abort();
        break;
      }
    }
    expect(received).toBe(2);
    const record = await eventually(async () => {
      const answer = await serving.bertha.answers.get(id);
      return answer?.status === 'cancelled' ? answer : undefined;
    });
    expect(record.completionTokens).toBeLessThan(400);
    expect(record.completionTokens).toBeGreaterThanOrEqual(2);
    const metrics = await (await fetch(`${serving.url}/metrics`)).text();
    expect(sample(metrics, 'bertha_requests_running{model_version="local"}')).toBe(0);
    expect(sample(metrics, 'bertha_requests_total{model_version="local",status="cancelled"}')).toBeGreaterThanOrEqual(
      1,
    );
  });
});

describe('errors in OpenAI format', () => {
  test('an invalid request gets 400 with the OpenAI error body naming the parameter', async () => {
    const error = await serving.client.chat.completions
      .create({ model: 'bertha', messages: ask, temperature: 7 })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    const apiError = error as InstanceType<typeof OpenAI.BadRequestError>;
    expect(apiError.status).toBe(400);
    expect(apiError.type).toBe('invalid_request_error');
    expect(apiError.param).toBe('temperature');

    const response = await fetch(`${serving.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"model": "bertha", "messages": [',
    });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: Record<string, unknown> };
    expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  });

  test('an unknown model gets 404 model_not_found', async () => {
    const error = await serving.client.chat.completions
      .create({ model: 'gpt-4', messages: ask })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    expect((error as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('model_not_found');
  });
});

test('GET /v1/models lists the served model', async () => {
  const models = await serving.client.models.list();
  expect(models.data.map((model) => model.id)).toEqual(['bertha']);
  expect((await serving.client.models.retrieve('bertha')).id).toBe('bertha');
});

test('/metrics exports request, latency, token, speed, cost and queue series per model version', async () => {
  await serving.client.chat.completions.create({ model: 'bertha', messages: ask, max_tokens: 5 });
  const metrics = await (await fetch(`${serving.url}/metrics`)).text();
  const version = '{model_version="local"}';
  expect(sample(metrics, 'bertha_requests_total{model_version="local",status="completed"}')).toBeGreaterThanOrEqual(1);
  expect(sample(metrics, `bertha_time_to_first_token_seconds_count${version}`)).toBeGreaterThanOrEqual(1);
  expect(sample(metrics, `bertha_e2e_request_latency_seconds_count${version}`)).toBeGreaterThanOrEqual(1);
  expect(sample(metrics, `bertha_prompt_tokens_total${version}`)).toBeGreaterThan(0);
  // Earlier tests asked the same question, so its prompt was in a sequence's cache.
  expect(sample(metrics, `bertha_prompt_tokens_cached_total${version}`)).toBeGreaterThan(0);
  expect(sample(metrics, `bertha_prompt_tokens_cached_total${version}`)).toBeLessThan(
    sample(metrics, `bertha_prompt_tokens_total${version}`) ?? 0,
  );
  expect(sample(metrics, `bertha_generation_tokens_total${version}`)).toBeGreaterThanOrEqual(5);
  expect(sample(metrics, `bertha_generation_tokens_per_second_count${version}`)).toBeGreaterThanOrEqual(1);
  expect(sample(metrics, `bertha_answer_cost_total${version}`)).toBeGreaterThan(0);
  expect(sample(metrics, `bertha_compute_seconds_total${version}`)).toBeGreaterThan(0);
  expect(sample(metrics, `bertha_requests_waiting${version}`)).toBe(0);
});
