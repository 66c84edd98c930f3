import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ChatOpenAI } from '@langchain/openai';
import type OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { z } from 'zod';
import { createLogger } from '../../src/core/logger.ts';
import { createOpenAiRuntime } from '../../src/llm/openai.ts';
import { type TinyLlama, writeTinyLlama } from '../fixtures/tiny-llama.ts';
import { refusal, type Serving, startServing } from './serving.ts';

// The OpenAI request surface a random-weight model can show: what it asks for is honoured
// structurally (grammar-valid JSON, banned tokens absent, seeds reproducible, n choices), and
// what the server cannot do is refused with a 400 naming the parameter.
vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });

let serving: Serving;
let modelDir: string;
let tiny: TinyLlama;

beforeAll(async () => {
  modelDir = mkdtempSync(path.join(tmpdir(), 'bertha-openai-surface-'));
  tiny = await writeTinyLlama(modelDir);
  serving = await startServing({ model: tiny.modelPath, llamaCpp: { gpu: 'off', contextSize: 512, parallel: 2 } });
});

afterAll(async () => {
  await serving?.close();
  rmSync(modelDir, { recursive: true, force: true });
});

const ask = [{ role: 'user' as const, content: 'hello world, what is the answer' }];
/**
 * Bans the byte tokens above ASCII: a random-weight model strings them into bytes that are no
 * UTF-8 (surrogates, overlong forms), which llama.cpp's grammar counts as one character each
 * and a UTF-8 decoder as several (the same bias keeps llama.cpp's server from failing on them).
 */
function byteTokensBanned(): Record<string, number> {
  const ids = [...tiny.tokenizer.tokens.entries()].filter(([, text]) => /^<0x[89A-F][0-9A-F]>$/.test(text));
  return Object.fromEntries(ids.map(([id]) => [String(id), -100]));
}

/** Every vocabulary id whose text is `token` as the logprobs spell it (a piece, or its byte token). */
function tokenIds(token: { token: string; bytes?: number[] | null }): number[] {
  const ids: number[] = [];
  const piece = token.token.replaceAll(' ', '\u2581');
  for (const [id, text] of tiny.tokenizer.tokens.entries()) {
    const byte = /^<0x([0-9A-F]{2})>$/.exec(text);
    if (
      text === piece ||
      (byte && token.bytes?.length === 1 && Number.parseInt(byte[1] as string, 16) === token.bytes[0])
    )
      ids.push(id);
  }
  return ids;
}

const answerSchema = {
  type: 'object',
  properties: {
    answer: { type: 'string', maxLength: 12 },
    confidence: { type: 'integer', minimum: Number.MIN_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER },
    verdict: { enum: ['yes', 'no', 'unsure'] },
    sources: { type: 'array', items: { type: 'boolean' }, maxItems: 3 },
    note: { type: ['string', 'null'], maxLength: 6 },
  },
  required: ['answer', 'confidence', 'verdict', 'sources', 'note'],
  additionalProperties: false,
};
/** JSON Schema's maxLength counts characters; a JavaScript string's length counts UTF-16 units. */
const atMost = (length: number) => z.string().refine((text) => [...text].length <= length);
const answerShape = z.object({
  answer: atMost(12),
  confidence: z.number().int(),
  verdict: z.enum(['yes', 'no', 'unsure']),
  sources: z.array(z.boolean()).max(3),
  note: atMost(6).nullable(),
});

describe('response_format', () => {
  test('json_schema constrains the answer to JSON that the schema accepts, streamed or not', async () => {
    for (const seed of [1, 2]) {
      const completion = await serving.client.chat.completions.create({
        model: 'bertha',
        messages: ask,
        max_tokens: 200,
        temperature: 1,
        seed,
        logit_bias: byteTokensBanned(),
        response_format: { type: 'json_schema', json_schema: { name: 'answer', schema: answerSchema, strict: true } },
      });
      expect(completion.choices[0]?.finish_reason).toBe('stop');
      answerShape.parse(JSON.parse(completion.choices[0]?.message.content ?? ''));
    }
    const stream = await serving.client.chat.completions.create({
      model: 'bertha',
      messages: ask,
      max_tokens: 200,
      temperature: 1,
      seed: 4,
      logit_bias: byteTokensBanned(),
      stream: true,
      response_format: { type: 'json_schema', json_schema: { name: 'answer', schema: answerSchema } },
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    answerShape.parse(JSON.parse(text));
  });

  test('json_object gives a JSON object, even when logit_bias bans what the grammar needs next', async () => {
    // Nudged towards closing strings and objects, so that a random model ends within max_tokens.
    const closing = Object.fromEntries(['"', '}'].map((text) => [String(tiny.tokenizer.tokens.indexOf(text)), 8]));
    // Every way to spell the opening brace the grammar demands first, as a piece and as a byte.
    const brace = Object.fromEntries(
      ['{', '<0x7B>'].map((text) => [String(tiny.tokenizer.tokens.indexOf(text)), -100]),
    );
    const completion = await serving.client.chat.completions.create({
      model: 'bertha',
      messages: ask,
      max_tokens: 200,
      temperature: 1,
      seed: 1,
      logit_bias: { ...byteTokensBanned(), ...closing, ...brace },
      response_format: { type: 'json_object' },
    });
    expect(completion.choices[0]?.finish_reason).toBe('stop');
    const parsed = JSON.parse(completion.choices[0]?.message.content ?? '') as unknown;
    expect(typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)).toBe(true);
  });

  test('a schema feature the grammar cannot enforce is refused, naming response_format and where it is', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ type: 'object', properties: { code: { type: 'string', pattern: '^[A-Z]+$' } } }, '/properties/code/pattern'],
      [{ type: 'object', properties: { age: { type: 'integer', minimum: 18 } } }, '/properties/age/minimum'],
      [{ type: 'string', format: 'email' }, '/format'],
      [{ allOf: [{ type: 'string' }] }, '/allOf'],
      [{ type: 'object', properties: {}, required: ['name'] }, '/required'],
    ];
    for (const [schema, where] of cases) {
      const error = await refusal(
        serving.client.chat.completions.create({
          model: 'bertha',
          messages: ask,
          stream: true,
          response_format: { type: 'json_schema', json_schema: { name: 'x', schema } },
        }),
      );
      expect(error.param).toBe('response_format');
      expect(error.code).toBe('unsupported_value');
      expect(error.message).toContain(`json_schema.schema${where}`);
    }
  });

  test('a schema whose grammar llama.cpp cannot compile (too many repetitions) is a 400, not a failed generation', async () => {
    const error = await refusal(
      serving.client.chat.completions.create({
        model: 'bertha',
        messages: ask,
        response_format: {
          type: 'json_schema',
          json_schema: {
            name: 'x',
            schema: { type: 'object', properties: { text: { type: 'string', minLength: 6000 } } },
          },
        },
      }),
    );
    expect(error.param).toBe('response_format');
    expect(error.message).toContain('minLength');
  });

  test("LangChain's withStructuredOutput works through json_schema; function calling on a template without tools is refused naming tools", async () => {
    const model = new ChatOpenAI({
      model: 'bertha',
      apiKey: 'unused',
      configuration: { baseURL: `${serving.url}/v1` },
      temperature: 1,
      maxTokens: 300,
      maxRetries: 0,
      logitBias: byteTokensBanned(),
    });
    const person = z.object({
      name: z.string().max(10).describe('who'),
      age: z.number().int(),
      kind: z.enum(['llama', 'alpaca']),
      nickname: z.string().max(6).nullable(),
      friends: z.array(z.object({ name: z.string().max(6), close: z.boolean() })).max(2),
    });
    const structured = model.withStructuredOutput(person, { name: 'person', method: 'jsonSchema' });
    const result = await structured.invoke('Describe a llama.', { seed: 7 } as never);
    expect(person.parse(result)).toEqual(result);

    const calling = model.withStructuredOutput(person, { name: 'person', method: 'functionCalling' });
    const error = await calling.invoke('Describe a llama.').then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(Error);
    expect((error as { status?: number }).status).toBe(400);
    expect((error as Error).message).toContain('tools');
    expect((error as Error).message).toContain('does not render tools');
  });
});

describe('sampling parameters', () => {
  test('logit_bias -100 bans a token: the answer never holds it; an id outside the vocabulary is refused', async () => {
    const request = { model: 'bertha', messages: ask, max_tokens: 24, temperature: 0, logprobs: true } as const;
    const plain = await serving.client.chat.completions.create(request);
    const banned = new Set((plain.choices[0]?.logprobs?.content ?? []).flatMap(tokenIds));
    expect(banned.size).toBeGreaterThan(0);
    const biased = await serving.client.chat.completions.create({
      ...request,
      logit_bias: Object.fromEntries([...banned].map((id) => [String(id), -100])),
    });
    const tokens = biased.choices[0]?.logprobs?.content ?? [];
    expect(tokens.length).toBe(biased.usage?.completion_tokens);
    for (const token of tokens) expect(tokenIds(token).some((id) => banned.has(id))).toBe(false);

    const error = await refusal(
      serving.client.chat.completions.create({ ...request, logit_bias: { [String(tiny.tokenizer.tokens.length)]: 5 } }),
    );
    expect(error.param).toBe('logit_bias');
  });

  test('banning end-of-sequence makes the answer run to max_tokens', async () => {
    const eos = String(tiny.tokenizer.eosId);
    const completion = await serving.client.chat.completions.create({
      model: 'bertha',
      messages: [{ role: 'user', content: 'the' }],
      max_tokens: 40,
      temperature: 1,
      seed: 3,
      logit_bias: { [eos]: -100 },
    });
    expect(completion.choices[0]?.finish_reason).toBe('length');
    expect(completion.usage?.completion_tokens).toBe(40);
  });

  test('the same seed gives the same text at temperature 1; another seed another text', async () => {
    const request = { model: 'bertha', messages: ask, max_tokens: 24, temperature: 1 };
    const texts = async (seed: number) =>
      (await serving.client.chat.completions.create({ ...request, seed })).choices[0]?.message.content;
    const first = await texts(11);
    expect(await texts(11)).toBe(first);
    const others = [await texts(12), await texts(13)];
    expect(others.some((text) => text !== first)).toBe(true);
  });

  test('presence and frequency penalties change what greedy decoding repeats', async () => {
    const request = { model: 'bertha', messages: ask, max_tokens: 48, temperature: 0, logprobs: true } as const;
    const repeats = (completion: OpenAI.Chat.ChatCompletion) => {
      const tokens = (completion.choices[0]?.logprobs?.content ?? []).map((token) => token.token);
      return tokens.length - new Set(tokens).size;
    };
    const plain = await serving.client.chat.completions.create(request);
    const penalised = await serving.client.chat.completions.create({
      ...request,
      frequency_penalty: 2,
      presence_penalty: 2,
    });
    expect(repeats(penalised)).toBeLessThan(repeats(plain));
  });
});

describe('n', () => {
  test('n=2 gives two indexed choices, each its own answer record; usage counts the prompt once', async () => {
    const single = await serving.client.chat.completions.create({
      model: 'bertha',
      messages: ask,
      max_tokens: 12,
      temperature: 1,
      seed: 5,
    });
    const completion = await serving.client.chat.completions.create({
      model: 'bertha',
      messages: ask,
      max_tokens: 12,
      temperature: 1,
      seed: 5,
      n: 2,
    });
    expect(completion.choices.map((choice) => choice.index)).toEqual([0, 1]);
    // The first choice is the single answer with the same seed; the second has the next seed.
    expect(completion.choices[0]?.message.content).toBe(single.choices[0]?.message.content);
    expect(completion.usage?.prompt_tokens).toBe(single.usage?.prompt_tokens);
    const first = await serving.bertha.answers.get(completion.id);
    const second = await serving.bertha.answers.get(`${completion.id}-1`);
    expect(first?.answer).toBe(completion.choices[0]?.message.content);
    expect(second?.answer).toBe(completion.choices[1]?.message.content);
    expect(second?.params.seed).toBe(6);
    expect(completion.usage?.completion_tokens).toBe((first?.completionTokens ?? 0) + (second?.completionTokens ?? 0));

    const stream = await serving.client.chat.completions.create({
      model: 'bertha',
      messages: ask,
      max_tokens: 12,
      temperature: 1,
      seed: 5,
      n: 2,
      stream: true,
    });
    const texts = ['', ''];
    const finishes: Array<string | null> = [null, null];
    for await (const chunk of stream) {
      for (const choice of chunk.choices) {
        texts[choice.index] += choice.delta.content ?? '';
        finishes[choice.index] = choice.finish_reason ?? finishes[choice.index] ?? null;
      }
    }
    expect(texts).toEqual(completion.choices.map((choice) => choice.message.content));
    expect(finishes.every((finish) => finish !== null)).toBe(true);

    const error = await refusal(serving.client.chat.completions.create({ model: 'bertha', messages: ask, n: 17 }));
    expect(error.param).toBe('n');
  });

  test('legacy completions take n too, choices ordered prompt by prompt', async () => {
    const completion = await serving.client.completions.create({
      model: 'bertha',
      prompt: ['the llama', 'the model'],
      max_tokens: 6,
      temperature: 1,
      seed: 9,
      n: 2,
      logit_bias: { [String(tiny.tokenizer.eosId)]: -100 },
    });
    expect(completion.choices.map((choice) => choice.index)).toEqual([0, 1, 2, 3]);
    for (const choice of completion.choices) expect(choice.finish_reason).toBe('length');
    const single = await serving.client.completions.create({
      model: 'bertha',
      prompt: 'the model',
      max_tokens: 6,
      temperature: 1,
      seed: 9,
      logit_bias: { [String(tiny.tokenizer.eosId)]: -100 },
    });
    expect(completion.choices[2]?.text).toBe(single.choices[0]?.text);
    const other = await serving.client.completions.create({ model: 'bertha', prompt: 'the llama', max_tokens: 1 });
    // Each prompt counted once, however many choices it has.
    expect(completion.usage?.prompt_tokens).toBe(
      (single.usage?.prompt_tokens ?? 0) + (other.usage?.prompt_tokens ?? 0),
    );
  });
});

describe('what is not supported is refused, naming the parameter', () => {
  test('unknown and unsupported chat fields get 400 unsupported_parameter; harmless ones are accepted', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ frobnicate: true }, 'frobnicate'],
      [{ functions: [{ name: 'lookup', parameters: { type: 'object', properties: {} } }] }, 'functions'],
      [{ modalities: ['text', 'audio'] }, 'modalities'],
      [{ reasoning_effort: 'low' }, 'reasoning_effort'],
    ];
    for (const [extra, param] of cases) {
      const error = await refusal(
        serving.client.chat.completions.create({ model: 'bertha', messages: ask, max_tokens: 2, ...extra } as never),
      );
      expect(error.param).toBe(param);
      expect(error.code).toBe('unsupported_parameter');
    }
    const accepted = await serving.client.chat.completions.create({
      model: 'bertha',
      messages: ask,
      max_tokens: 2,
      user: 'someone',
      metadata: { team: 'llamas' },
      store: false,
      tools: [],
      tool_choice: 'none',
      parallel_tool_calls: false,
      modalities: ['text'],
      n: 1,
      presence_penalty: 0,
      frequency_penalty: 0,
    } as never);
    expect(accepted.choices).toHaveLength(1);
  });

  test("tools on a model whose chat template has no tool calling (Llama 2's) get 400 unsupported_value; tool_choice none is answered", async () => {
    const lookup = {
      type: 'function' as const,
      function: { name: 'lookup', parameters: { type: 'object', properties: {} } },
    };
    const error = await refusal(
      serving.client.chat.completions.create({ model: 'bertha', messages: ask, max_tokens: 2, tools: [lookup] }),
    );
    expect(error.param).toBe('tools');
    expect(error.code).toBe('unsupported_value');
    expect(error.message).toContain('Llama2Chat');
    const history = await refusal(
      serving.client.chat.completions.create({
        model: 'bertha',
        max_tokens: 2,
        messages: [
          ...ask,
          {
            role: 'assistant',
            content: null,
            tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'lookup', arguments: '{}' } }],
          },
          { role: 'tool', tool_call_id: 'call_1', content: 'found' },
        ],
      }),
    );
    expect(history.param).toBe('messages');
    const answered = await serving.client.chat.completions.create({
      model: 'bertha',
      messages: ask,
      max_tokens: 2,
      tools: [lookup],
      tool_choice: 'none',
    });
    expect(answered.choices[0]?.finish_reason).not.toBe('tool_calls');
  });

  test('legacy completions refuse unknown fields and best_of above n', async () => {
    for (const [extra, param] of [
      [{ frobnicate: 1 }, 'frobnicate'],
      [{ best_of: 3 }, 'best_of'],
      [{ suffix: 'end' }, 'suffix'],
    ] as const) {
      const error = await refusal(
        serving.client.completions.create({ model: 'bertha', prompt: 'hello', max_tokens: 2, ...extra } as never),
      );
      expect(error.param).toBe(param);
    }
  });
});

test('streaming sends one content chunk per generated token, as llama.cpp server does', async () => {
  const request = {
    model: 'bertha',
    messages: ask,
    max_tokens: 64,
    temperature: 1,
    seed: 21,
    // Control tokens (BOS, UNK) spell no text: a random-weight model may sample them mid-answer.
    logit_bias: {
      ...byteTokensBanned(),
      [String(tiny.tokenizer.eosId)]: -100,
      [String(tiny.tokenizer.bosId)]: -100,
      [String(tiny.tokenizer.tokens.indexOf('<unk>'))]: -100,
    },
  };
  const whole = await serving.client.chat.completions.create(request);
  const stream = await serving.client.chat.completions.create({
    ...request,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let chunks = 0;
  let tokens = 0;
  for await (const chunk of stream) {
    const content = chunk.choices[0]?.delta.content;
    if (content) {
      chunks += 1;
      text += content;
    }
    if (chunk.usage) tokens = chunk.usage.completion_tokens;
  }
  expect(text).toBe(whole.choices[0]?.message.content);
  expect(tokens).toBe(64);
  // Every token here is text of its own; pieces of a multi-byte character would share a chunk.
  expect(chunks).toBe(tokens);
});

test('the openai runtime passes response_format, logit_bias and penalties to an upstream, here Bertha itself', async () => {
  const upstream = createOpenAiRuntime({
    baseUrl: `${serving.url}/v1`,
    apiKey: '',
    model: 'bertha',
    parallel: 1,
    timeoutMs: 60_000,
    defaults: { temperature: 1, topP: 1, maxTokens: 200 },
    logger: createLogger('warn'),
  });
  await upstream.load();
  try {
    const result = await upstream.generate({
      messages: ask,
      seed: 2,
      presencePenalty: 0.5,
      frequencyPenalty: 0.5,
      responseFormat: { type: 'json_schema', name: 'answer', schema: answerSchema },
    });
    answerShape.parse(JSON.parse(result.text));

    const long = await upstream.generate({
      messages: [{ role: 'user', content: 'the' }],
      maxTokens: 30,
      seed: 3,
      logitBias: { [String(tiny.tokenizer.eosId)]: -100 },
    });
    expect(long.finishReason).toBe('length');

    const refused = await upstream
      .generate({
        messages: ask,
        responseFormat: { type: 'json_schema', name: 'x', schema: { type: 'string', pattern: 'a+' } },
      })
      .catch((caught: unknown) => caught);
    expect(refused).toMatchObject({ status: 400, details: { param: 'response_format' } });
  } finally {
    await upstream.close();
  }
});
