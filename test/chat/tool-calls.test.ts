import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { tool } from '@langchain/core/tools';
import { ChatOpenAI } from '@langchain/openai';
import type OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { z } from 'zod';
import { writeToolCallingLlama } from '../fixtures/tool-calling-model.ts';
import { refusal, type Serving, startServing } from './serving.ts';

// Tool calling on a model whose chat template renders tools (in Qwen 2.5's format): the model's random
// weights choose nothing sensible, but every call it makes is sampled under the grammar of the
// template's call syntax and the tool's argument schema, so calls parse and fit their schema.
vi.setConfig({ testTimeout: 240_000, hookTimeout: 240_000 });

let serving: Serving;
let modelDir: string;
let toolCallToken: number;

beforeAll(async () => {
  modelDir = mkdtempSync(path.join(tmpdir(), 'bertha-tool-calls-'));
  const model = await writeToolCallingLlama(modelDir);
  toolCallToken = model.toolCallToken;
  // The tools' descriptions take several hundred tokens of the tiny vocabulary.
  serving = await startServing({ model: model.modelPath, llamaCpp: { gpu: 'off', contextSize: 2048, parallel: 2 } });
});

afterAll(async () => {
  await serving?.close();
  rmSync(modelDir, { recursive: true, force: true });
});

const weather = {
  type: 'function' as const,
  function: {
    name: 'get_weather',
    description: 'The weather in a city',
    parameters: {
      type: 'object',
      properties: { unit: { enum: ['celsius', 'fahrenheit'] }, tomorrow: { type: 'boolean' } },
      required: ['unit', 'tomorrow'],
    },
  },
};
const time = {
  type: 'function' as const,
  function: { name: 'get_time', description: 'The time now', parameters: { type: 'object', properties: {} } },
};
const ask = [{ role: 'user' as const, content: 'what is the weather in the world' }];

function weatherArguments(text: string): unknown {
  return z
    .object({ unit: z.enum(['celsius', 'fahrenheit']), tomorrow: z.boolean() })
    .strict()
    .parse(JSON.parse(text));
}

describe('with the official openai client', () => {
  test('tool_choice required: the answer is a call whose arguments fit the schema, finish_reason tool_calls', async () => {
    const completion = await serving.client.chat.completions.create({
      model: 'bertha',
      messages: ask,
      tools: [weather, time],
      tool_choice: 'required',
      parallel_tool_calls: false,
      max_tokens: 200,
      temperature: 0,
    });
    const choice = completion.choices[0];
    expect(choice?.finish_reason).toBe('tool_calls');
    expect(choice?.message.content).toBeNull();
    const calls = choice?.message.tool_calls ?? [];
    expect(calls).toHaveLength(1);
    const call = calls[0] as OpenAI.Chat.ChatCompletionMessageFunctionToolCall;
    expect(call.id).toMatch(/^call_/);
    expect(call.type).toBe('function');
    if (call.function.name === 'get_weather') weatherArguments(call.function.arguments);
    else expect(JSON.parse(call.function.arguments)).toEqual({});
    const generation = (completion as unknown as { provenance: { generation: Record<string, unknown> } }).provenance
      .generation;
    expect(generation.tools).toEqual(['get_weather', 'get_time']);
    expect(generation.tool_choice).toBe('required');
  });

  test('a named tool is the one called; streamed, the call arrives as a tool_calls delta the client assembles', async () => {
    const stream = serving.client.chat.completions.stream({
      model: 'bertha',
      messages: ask,
      tools: [weather, time],
      tool_choice: { type: 'function', function: { name: 'get_weather' } },
      parallel_tool_calls: false,
      max_tokens: 200,
      temperature: 0,
    });
    const contentDeltas: string[] = [];
    stream.on('content', (delta) => contentDeltas.push(delta));
    const completion = await stream.finalChatCompletion();
    const choice = completion.choices[0];
    expect(choice?.finish_reason).toBe('tool_calls');
    expect(contentDeltas.join('')).toBe('');
    const call = choice?.message.tool_calls?.[0] as OpenAI.Chat.ChatCompletionMessageFunctionToolCall;
    expect(call.function.name).toBe('get_weather');
    weatherArguments(call.function.arguments);
  });

  test('tool_choice auto: text when the model writes text, a call when it starts one', async () => {
    const plain = await serving.client.chat.completions.create({
      model: 'bertha',
      messages: ask,
      tools: [weather],
      max_tokens: 12,
      temperature: 0,
    });
    expect(plain.choices[0]?.message.tool_calls).toBeUndefined();
    expect(plain.choices[0]?.message.content).not.toBe('');
    expect(plain.choices[0]?.finish_reason).not.toBe('tool_calls');

    // The bias makes the model open a call; from there the grammar writes it.
    const calling = await serving.client.chat.completions.create({
      model: 'bertha',
      messages: ask,
      tools: [weather],
      tool_choice: 'auto',
      parallel_tool_calls: false,
      logit_bias: { [toolCallToken]: 100 },
      max_tokens: 200,
      temperature: 0,
    });
    expect(calling.choices[0]?.finish_reason).toBe('tool_calls');
    const call = calling.choices[0]?.message.tool_calls?.[0] as OpenAI.Chat.ChatCompletionMessageFunctionToolCall;
    expect(call.function.name).toBe('get_weather');
    weatherArguments(call.function.arguments);
  });

  test('the tool results go back to the model in its template, and it answers', async () => {
    const first = await serving.client.chat.completions.create({
      model: 'bertha',
      messages: ask,
      tools: [weather],
      tool_choice: 'required',
      parallel_tool_calls: false,
      max_tokens: 200,
      temperature: 0,
    });
    const assistant = first.choices[0]?.message as OpenAI.Chat.ChatCompletionMessage;
    const call = assistant.tool_calls?.[0] as OpenAI.Chat.ChatCompletionMessageFunctionToolCall;
    const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [
      ...ask,
      assistant,
      { role: 'tool', tool_call_id: call.id, content: '{"temperature": 21}' },
    ];
    const answer = await serving.client.chat.completions.create({
      model: 'bertha',
      messages,
      tools: [weather],
      max_tokens: 8,
      temperature: 0,
    });
    expect(answer.choices[0]?.message.content).not.toBe('');
    // The prompt grew by the call and its result.
    expect(answer.usage?.prompt_tokens).toBeGreaterThan((first.usage?.prompt_tokens ?? 0) + 20);

    const recorded = await serving.bertha.answers.get(first.id);
    expect(recorded?.toolCalls?.[0]).toMatchObject({ id: call.id, name: 'get_weather' });
    const followUp = await serving.bertha.answers.get(answer.id);
    expect(followUp?.prompt).toContain('<tool_response>\n{"temperature": 21}\n</tool_response>');
    expect(followUp?.prompt).toContain(`{"name": "get_weather", "arguments": `);
  });

  test('bad tool requests are refused with a 400 naming the field', async () => {
    const unknownChoice = await refusal(
      serving.client.chat.completions.create({
        model: 'bertha',
        messages: ask,
        tools: [weather],
        tool_choice: { type: 'function', function: { name: 'get_time' } },
      }),
    );
    expect(unknownChoice.param).toBe('tool_choice');

    const unanswered = await refusal(
      serving.client.chat.completions.create({
        model: 'bertha',
        messages: [...ask, { role: 'tool', tool_call_id: 'call_nobody', content: '1' }],
        tools: [weather],
      }),
    );
    expect(unanswered.param).toBe('messages');
    expect(unanswered.message).toContain('call_nobody');

    const pattern = await refusal(
      serving.client.chat.completions.create({
        model: 'bertha',
        messages: ask,
        tools: [
          {
            type: 'function',
            function: {
              name: 'find',
              parameters: { type: 'object', properties: { q: { type: 'string', pattern: 'a+' } } },
            },
          },
        ],
        tool_choice: 'required',
      }),
    );
    expect(pattern.param).toBe('tools');
    expect(pattern.message).toContain('tools[0].function.parameters/properties/q/pattern');

    const both = await refusal(
      serving.client.chat.completions.create({
        model: 'bertha',
        messages: ask,
        tools: [weather],
        response_format: { type: 'json_object' },
      }),
    );
    expect(both.param).toBe('response_format');

    const noTools = await refusal(
      serving.client.chat.completions.create({ model: 'bertha', messages: ask, tool_choice: 'required' }),
    );
    expect(noTools.param).toBe('tool_choice');
  });
});

describe('with LangChain', () => {
  const model = () =>
    new ChatOpenAI({
      model: 'bertha',
      apiKey: 'unused',
      configuration: { baseURL: `${serving.url}/v1` },
      temperature: 0,
      maxTokens: 200,
      maxRetries: 0,
    });

  test('bindTools with a required choice gives tool_calls with parsed arguments', async () => {
    const getWeather = tool(async () => 'sunny', {
      name: 'get_weather',
      description: 'The weather in a city',
      schema: z.object({ unit: z.enum(['celsius', 'fahrenheit']), tomorrow: z.boolean() }),
    });
    const bound = model().bindTools([getWeather], { tool_choice: 'required', parallel_tool_calls: false });
    const message = await bound.invoke('what is the weather in the world');
    expect(message.tool_calls).toHaveLength(1);
    expect(message.tool_calls?.[0]?.name).toBe('get_weather');
    expect(message.tool_calls?.[0]?.args).toEqual(
      z.object({ unit: z.enum(['celsius', 'fahrenheit']), tomorrow: z.boolean() }).parse(message.tool_calls?.[0]?.args),
    );
    expect(message.response_metadata.finish_reason).toBe('tool_calls');
  });

  test("withStructuredOutput's function calling method works through a forced tool call", async () => {
    const verdict = z.object({ verdict: z.enum(['yes', 'no']), sure: z.boolean() });
    const structured = model().withStructuredOutput(verdict, { name: 'verdict', method: 'functionCalling' });
    const result = await structured.invoke('is a llama an alpaca?');
    expect(verdict.parse(result)).toEqual(result);
  });
});
