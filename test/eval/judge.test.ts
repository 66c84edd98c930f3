import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, onTestFinished, test, vi } from 'vitest';
import { createLogger } from '../../src/core/logger.ts';
import type { MetadataDb } from '../../src/db/index.ts';
import { createSqliteDb } from '../../src/db/sqlite.ts';
import {
  comparePaired,
  createDbJudgementCache,
  createOpenAiJudge,
  createRuntimeEvaluator,
  decideGate,
  type EvalJudge,
  type GenerativeItem,
  generativeSuites,
  JUDGE_PROMPT_VERSION,
  JudgeError,
  type JudgeVerdict,
  type SuiteResult,
} from '../../src/eval/index.ts';
import { JUDGE_INSTRUCTIONS, parseJudgeVerdict } from '../../src/eval/judge.ts';
import { createLlamaCppRuntime } from '../../src/llm/llama-cpp.ts';
import type { ModelBundle } from '../../src/models/index.ts';
import { type TinyLlama, writeTinyLlama } from '../fixtures/tiny-llama.ts';
import { dbFactories } from '../helpers/databases.ts';

vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });

/**
 * An OpenAI-compatible judge on loopback: every verdict lists one supported and one
 * unsupported statement, so it scores 0.5. `mode` fails every request with HTTP 500 or never
 * answers; `failWhen` fails the requests whose user prompt it matches.
 */
interface JudgeServer {
  baseUrl: string;
  requests: Array<{ body: { model: string; temperature: number; messages: Array<{ content: string }> }; auth: string }>;
  mode: 'ok' | 'fail' | 'hang';
  failWhen: (prompt: string) => boolean;
  close(): Promise<void>;
}

async function startJudgeServer(): Promise<JudgeServer> {
  const hanging: ServerResponse[] = [];
  const state: JudgeServer = {
    baseUrl: '',
    requests: [],
    mode: 'ok',
    failWhen: () => false,
    close: async () => {
      for (const response of hanging) response.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server: Server = createServer((request: IncomingMessage, response: ServerResponse) => {
    let text = '';
    request.on('data', (chunk) => {
      text += chunk;
    });
    request.on('end', () => {
      const body = JSON.parse(text);
      state.requests.push({ body, auth: request.headers.authorization ?? '' });
      const prompt: string = body.messages.at(-1).content;
      if (request.url !== '/v1/chat/completions') {
        response.writeHead(404).end();
        return;
      }
      if (state.mode === 'hang') {
        hanging.push(response);
        return;
      }
      if (state.mode === 'fail' || state.failWhen(prompt)) {
        response.writeHead(500, { 'content-type': 'application/json' }).end('{"error":{"message":"overloaded"}}');
        return;
      }
      const verdict = {
        statements: [
          { statement: 'first claim of the answer', supported: true, reason: 'passage [1] says so' },
          { statement: 'second claim of the answer', supported: 'no', reason: 'not in the passages' },
        ],
      };
      response.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          id: 'cmpl-1',
          object: 'chat.completion',
          model: body.model,
          choices: [
            {
              index: 0,
              message: { role: 'assistant', content: `\`\`\`json\n${JSON.stringify(verdict)}\n\`\`\`` },
              finish_reason: 'stop',
            },
          ],
        }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  return state;
}

let dir: string;
let tiny: TinyLlama;
let judgeServer: JudgeServer;
let db: MetadataDb;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'bertha-judge-'));
  tiny = await writeTinyLlama(dir);
  judgeServer = await startJudgeServer();
  db = createSqliteDb({ path: path.join(dir, 'bertha.sqlite') });
  await db.migrate();
});

afterAll(async () => {
  await judgeServer?.close();
  await db?.close();
  rmSync(dir, { recursive: true, force: true });
});

function judged(model: string, cacheDb: MetadataDb = db, timeoutMs = 10_000): EvalJudge {
  return {
    judge: createOpenAiJudge({ baseUrl: judgeServer.baseUrl, model, apiKey: 'judge-key', timeoutMs }),
    cache: createDbJudgementCache(cacheDb),
    parallel: 2,
  };
}

function evaluatorWith(judge: EvalJudge) {
  return createRuntimeEvaluator({
    createRuntime: (bundle) =>
      createLlamaCppRuntime({
        modelPath: (bundle.base as { path: string }).path,
        adapters: bundle.adapters,
        maxThreads: 1,
        gpu: 'off',
        parallel: 1,
        contextSize: 512,
        batchSize: 512,
        defaults: { temperature: 0, topP: 1, maxTokens: 16 },
        logger: createLogger('warn'),
      }),
    judge,
  });
}

const bundle: ModelBundle = {
  version: 'base',
  base: { kind: 'gguf', path: '' },
  adapters: [],
  generation: {},
  retrieval: { enabled: true, topK: 4 },
};

const items: GenerativeItem[] = [
  { id: 'j1', question: 'what does the model train on', contexts: ['the model can train on the data.'] },
  { id: 'j2', question: 'who will serve the model', contexts: ['bertha will serve the model.'] },
  { id: 'j3', question: 'hello world', contexts: ['hello world from the llama.'] },
];

const hallucination = () => generativeSuites(items, { maxAnswerTokens: 16 }, ['hallucination']);

async function evaluate(judge: EvalJudge): Promise<SuiteResult> {
  const [result] = await evaluatorWith(judge).evaluate(
    { ...bundle, base: { kind: 'gguf', path: tiny.modelPath } },
    hallucination(),
  );
  if (!result) throw new Error('no result');
  return result;
}

test('the judge replaces the lexical proxy; its verdicts are cached, so a second evaluation makes no judge call', async () => {
  const before = judgeServer.requests.length;
  const first = await evaluate(judged('judge-a'));
  const answered = first.items.filter((item) => item.details.empty_answer !== true);
  expect(answered.length).toBeGreaterThan(0);
  expect(judgeServer.requests.length - before).toBe(answered.length);
  for (const item of answered) {
    expect(item.score).toBe(0.5);
    expect(item.details).toMatchObject({
      method: 'judge',
      judge_model: 'judge-a',
      judge_prompt_version: JUDGE_PROMPT_VERSION,
      judge_cached: false,
      statements: 2,
      supported: 1,
      unsupported_statements: 'second claim of the answer',
    });
  }
  expect(first.metrics).toMatchObject({ judged_items: answered.length, judge_errors: 0, cached_judgements: 0 });
  expect(first.metrics.unsupported_rate).toBe(0.5);

  const request = judgeServer.requests[before];
  expect(request?.auth).toBe('Bearer judge-key');
  expect(request?.body.model).toBe('judge-a');
  expect(request?.body.temperature).toBe(0);
  expect(request?.body.messages[0]?.content).toBe(JUDGE_INSTRUCTIONS);
  const asked = request?.body.messages[1]?.content ?? '';
  const item = first.items.find((candidate) =>
    asked.includes(items.find((i) => i.id === candidate.id)?.question ?? '?'),
  );
  expect(asked).toContain(`Answer: ${String(item?.details.answer)}`);
  expect(asked).toMatch(/Passages:\n\[1\] /);

  // A fresh evaluator and cache on the same database: answered from the table, not the judge.
  const calls = judgeServer.requests.length;
  const second = await evaluate(judged('judge-a'));
  expect(judgeServer.requests.length).toBe(calls);
  expect(second.items.map((i) => i.score)).toEqual(first.items.map((i) => i.score));
  for (const cached of second.items.filter((i) => i.details.empty_answer !== true)) {
    expect(cached.details.judge_cached).toBe(true);
  }
  expect(second.metrics.cached_judgements).toBe(answered.length);

  // Another judge model is another verdict.
  await evaluate(judged('judge-other'));
  expect(judgeServer.requests.length).toBe(calls + answered.length);
});

test('a failing judge leaves the item inconclusive, not a pass: the gate does not pair it, and the failure is not cached', async () => {
  const champion = await evaluate(judged('judge-b'));
  expect(champion.inconclusive).toEqual([]);

  // One item's judgement fails on the challenger: it drops out of the pairs.
  const question = items[1]?.question ?? '';
  judgeServer.failWhen = (prompt) => prompt.includes(`Question: ${question}`);
  onTestFinished(() => {
    judgeServer.failWhen = () => false;
    judgeServer.mode = 'ok';
  });
  const partly = await evaluate(judged('judge-c'));
  expect(partly.items.map((item) => item.id)).toEqual(['j1', 'j3']);
  expect(partly.inconclusive).toEqual([
    {
      id: 'j2',
      reason: 'judge_error',
      details: expect.objectContaining({ judge_error: 'judge answered HTTP 500', answer: expect.any(String) }),
    },
  ]);
  expect(partly.metrics).toMatchObject({ judge_errors: 1, inconclusive_items: 1 });
  const compared = comparePaired(champion, partly, { confidence: 0.95, resamples: 100, seed: 1 });
  expect(compared.pairs).toBe(2);
  expect(compared.unpaired).toBe(1);

  // Every judgement fails: nothing to pair, so the gate is inconclusive whatever the champion scored.
  judgeServer.failWhen = () => false;
  judgeServer.mode = 'fail';
  const failed = await evaluate(judged('judge-d'));
  expect(failed.items).toEqual([]);
  expect(failed.metrics.inconclusive_items).toBe(3);
  expect(failed.metrics.faithfulness).toBe(0);
  const verdict = decideGate([champion], [failed], {
    primary: 'hallucination-eval',
    margin: -1,
    guards: [],
    minItems: 1,
    confidence: 0.95,
    resamples: 100,
    seed: 1,
  });
  expect(verdict.decision).toBe('inconclusive');

  // Failures were not cached: the judge is asked again once it answers.
  judgeServer.mode = 'ok';
  const before = judgeServer.requests.length;
  const retried = await evaluate(judged('judge-d'));
  expect(retried.items).toHaveLength(3);
  expect(judgeServer.requests.length - before).toBe(3);
});

describe('the judge client', () => {
  const input = { itemId: 'x', question: 'q', answer: 'a', contexts: ['c'] };

  test('an endpoint that does not answer within the timeout is a JudgeError', async () => {
    judgeServer.mode = 'hang';
    onTestFinished(() => {
      judgeServer.mode = 'ok';
    });
    const judge = createOpenAiJudge({ baseUrl: judgeServer.baseUrl, model: 'm', timeoutMs: 200 });
    const error = await judge.judge(input).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(JudgeError);
    expect((error as JudgeError).code).toBe('judge_failed');
    expect((error as Error).message).toMatch(/no reply within 200 ms/);
  });

  test('an unreachable endpoint is a JudgeError; cancelling the evaluation is not', async () => {
    const judge = createOpenAiJudge({ baseUrl: 'http://127.0.0.1:9/v1', model: 'm', timeoutMs: 2_000 });
    await expect(judge.judge(input)).rejects.toBeInstanceOf(JudgeError);
    const controller = new AbortController();
    controller.abort(new Error('run cancelled'));
    const cancelled = await judge.judge(input, controller.signal).catch((caught: unknown) => caught);
    expect(cancelled).not.toBeInstanceOf(JudgeError);
  });

  test('a verdict is read from plain or fenced JSON, with yes/no flags; anything else is a JudgeError', () => {
    const verdict: JudgeVerdict = parseJudgeVerdict(
      'Here you go:\n```json\n{"statements":[{"statement":"a","supported":"yes"},{"statement":"b","supported":false}]}\n```',
    );
    expect(verdict).toEqual({
      statements: [
        { statement: 'a', supported: true },
        { statement: 'b', supported: false },
      ],
      supported: 1,
      total: 2,
      score: 0.5,
    });
    expect(parseJudgeVerdict('{"statements":[]}').score).toBe(0);
    expect(() => parseJudgeVerdict('I think it is faithful.')).toThrow(JudgeError);
    expect(() => parseJudgeVerdict('{"statements": [{"statement": "a"}]}')).toThrow(JudgeError);
    expect(() => parseJudgeVerdict('{"statements": [}')).toThrow(/not valid JSON/);
  });
});

for (const factory of dbFactories) {
  const available = await factory.available();
  describe.skipIf(!available)(`the judgement cache on ${factory.name}`, () => {
    test('keeps one verdict per prompt version, judge model, item and digest; the first put wins', async () => {
      const store = await factory.create();
      onTestFinished(() => store.close());
      const cache = createDbJudgementCache(store);
      const key = { promptVersion: 'v1', judgeModel: 'm', itemId: 'i1', digest: 'd1' };
      const verdict: JudgeVerdict = {
        statements: [{ statement: 'é ✓', supported: true, reason: 'r' }],
        supported: 1,
        total: 1,
        score: 1,
      };
      expect(await cache.get(key)).toBeUndefined();
      await cache.put(key, verdict);
      await cache.put(key, { ...verdict, score: 0 });
      expect(await cache.get(key)).toEqual(verdict);
      for (const other of [
        { ...key, promptVersion: 'v2' },
        { ...key, judgeModel: 'n' },
        { ...key, itemId: 'i2' },
        { ...key, digest: 'd2' },
      ]) {
        expect(await cache.get(other)).toBeUndefined();
      }
    });
  });
}
