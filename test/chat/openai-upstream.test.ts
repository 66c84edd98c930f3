import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test, vi } from 'vitest';
import { writeTinyLlama } from '../fixtures/tiny-llama.ts';
import { writeToolCallingLlama } from '../fixtures/tool-calling-model.ts';
import { eventually, type Serving, sample, startServing } from './serving.ts';

// Each test loads a model in this process; on a busy 2-core machine that takes a while.
vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });

// The openai runtime against a real OpenAI-compatible server on loopback: a second Bertha
// serving the tiny GGUF through llama-cpp.
let modelDir: string;
let upstream: Serving;

beforeAll(async () => {
  modelDir = mkdtempSync(path.join(tmpdir(), 'bertha-model-'));
  const tiny = await writeTinyLlama(modelDir);
  upstream = await startServing({ model: tiny.modelPath, modelName: 'tiny-llama' });
});

afterAll(async () => {
  await upstream?.close();
  rmSync(modelDir, { recursive: true, force: true });
});

test('an upstream model answers through the openai runtime, priced per 1k tokens, streaming and not', async () => {
  const serving = await startServing({
    upstream: { baseUrl: `${upstream.url}/v1`, apiKey: 'sk-test', model: 'tiny-llama' },
    modelVersion: 'upstream-tiny',
    pricing: { promptPer1k: 1, completionPer1k: 2 },
  });
  try {
    const messages = [{ role: 'user' as const, content: 'hello world' }];
    const completion = await serving.client.chat.completions.create({
      model: 'bertha',
      messages,
      max_tokens: 8,
      temperature: 0,
    });
    const direct = await upstream.client.chat.completions.create({
      model: 'tiny-llama',
      messages: [{ role: 'system', content: 'You are a helpful assistant.' }, ...messages],
      max_tokens: 8,
      temperature: 0,
    });
    expect(completion.choices[0]?.message.content).toBe(direct.choices[0]?.message.content);
    const { prompt_tokens_details: cached, ...counts } = completion.usage ?? { prompt_tokens_details: undefined };
    const { prompt_tokens_details: _, ...directCounts } = direct.usage ?? { prompt_tokens_details: undefined };
    expect(counts).toEqual(directCounts);
    const record = await serving.bertha.answers.get(completion.id);
    // The upstream's cache report passes through (the upstream here is a Bertha on llama.cpp).
    expect(record?.cachedPromptTokens).toBe(cached?.cached_tokens);
    const usage = direct.usage ?? { prompt_tokens: 0, completion_tokens: 0 };
    expect(record?.modelVersion).toBe('upstream-tiny');
    expect(record?.cost).toBeCloseTo(usage.prompt_tokens / 1000 + (usage.completion_tokens / 1000) * 2, 9);

    const stream = await serving.client.chat.completions.create({
      model: 'bertha',
      messages,
      max_tokens: 8,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let completionTokens: number | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      if (chunk.usage) completionTokens = chunk.usage.completion_tokens;
    }
    expect(text).toBe(direct.choices[0]?.message.content);
    expect(completionTokens).toBe(8);
    const metrics = await (await fetch(`${serving.url}/metrics`)).text();
    expect(sample(metrics, 'bertha_answer_cost_total{model_version="upstream-tiny"}')).toBeGreaterThan(0);
  } finally {
    await serving.close();
  }
});

test('an upstream that does not serve the configured model keeps Bertha not ready', async () => {
  const serving = await startServing(
    { upstream: { baseUrl: `${upstream.url}/v1`, model: 'no-such-model' } },
    { waitForModel: false },
  );
  try {
    const detail = await eventually(() => {
      const status = serving.bertha.chat.status();
      return status.detail.includes('failed') ? status.detail : undefined;
    });
    expect(detail).toContain("does not serve 'no-such-model'");
  } finally {
    await serving.close();
  }
});

test("tool calls pass through the openai runtime both ways: the upstream's calls come back, the results go up", async () => {
  const toolModel = await writeToolCallingLlama(modelDir);
  const toolUpstream = await startServing({
    model: toolModel.modelPath,
    modelName: 'tiny-qwen',
    llamaCpp: { gpu: 'off', contextSize: 2048 },
  });
  const serving = await startServing({
    upstream: { baseUrl: `${toolUpstream.url}/v1`, apiKey: 'sk-test', model: 'tiny-qwen' },
    modelVersion: 'upstream-qwen',
  });
  try {
    const tools = [
      {
        type: 'function' as const,
        function: {
          name: 'get_weather',
          parameters: { type: 'object', properties: { unit: { enum: ['celsius', 'fahrenheit'] } } },
        },
      },
    ];
    const messages = [{ role: 'user' as const, content: 'what is the weather' }];
    const request = {
      model: 'bertha',
      messages,
      tools,
      tool_choice: 'required' as const,
      parallel_tool_calls: false,
      max_tokens: 120,
      temperature: 0,
    };
    const completion = await serving.client.chat.completions.create(request);
    expect(completion.choices[0]?.finish_reason).toBe('tool_calls');
    const call = completion.choices[0]?.message.tool_calls?.[0];
    expect(call?.type === 'function' && call.function.name).toBe('get_weather');
    const args = call?.type === 'function' ? (JSON.parse(call.function.arguments) as { unit: string }) : undefined;
    expect(['celsius', 'fahrenheit']).toContain(args?.unit);

    const streamed = await serving.client.chat.completions.stream(request).finalChatCompletion();
    expect(streamed.choices[0]?.finish_reason).toBe('tool_calls');
    expect(streamed.choices[0]?.message.tool_calls?.[0]).toMatchObject({ function: { name: 'get_weather' } });

    const answer = await serving.client.chat.completions.create({
      model: 'bertha',
      messages: [
        ...messages,
        completion.choices[0]?.message as NonNullable<(typeof completion.choices)[0]>['message'],
        { role: 'tool', tool_call_id: call?.id ?? '', content: '{"temperature": 21}' },
      ],
      tools,
      max_tokens: 4,
      temperature: 0,
    });
    expect(answer.choices[0]?.message.content).not.toBe('');
    const upstreamRecord = await eventually(async () => {
      const answers = await toolUpstream.bertha.db.kysely
        .selectFrom('answers')
        .select(['id', 'prompt'])
        .where('prompt', 'like', '%<tool_response>%')
        .execute();
      return answers[0];
    });
    expect(upstreamRecord.prompt).toContain('<tool_response>\n{"temperature": 21}\n</tool_response>');
  } finally {
    await serving.close();
    await toolUpstream.close();
  }
});
