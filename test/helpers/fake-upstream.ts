import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { onTestFinished } from 'vitest';
import { createLexicalEmbedder } from '../../src/knowledge/lexical-embedder.ts';

/**
 * An OpenAI-compatible server on loopback for processes that should not load a model: chat
 * completions answer `answer from <model>` (streamed or not), and `/v1/embeddings` embeds with
 * Bertha's lexical embedder, so retrieval behaves as on the defaults. `holdEmbeddings` keeps
 * every embedding request whose input contains a marker unanswered until `release()`: a
 * pipeline step that embeds then stays in flight for as long as a test needs.
 */
export interface FakeUpstream {
  /** Base URL for `serving.upstream.baseUrl` and `knowledge.embedder.baseUrl` (ends in `/v1`). */
  baseUrl: string;
  /** How many embedding requests have been held so far. */
  held(): number;
  holdEmbeddings(marker: string): void;
  /** Answers the held requests (their clients may be gone) and stops holding. */
  release(): void;
}

const EMBEDDING_DIMENSIONS = 64;

async function body(request: IncomingMessage): Promise<Record<string, unknown>> {
  let text = '';
  for await (const chunk of request) text += chunk;
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

function json(response: ServerResponse, status: number, value: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value));
}

/** Serves `models`; stopped by `cleanup` (`onTestFinished` by default, `afterAll` for a suite). */
export async function startFakeUpstream(
  models: string[],
  cleanup: (stop: () => Promise<void>) => void = onTestFinished,
): Promise<FakeUpstream> {
  const embedder = createLexicalEmbedder({ dimensions: EMBEDDING_DIMENSIONS });
  let marker: string | undefined;
  const waiting: Array<() => void> = [];
  let heldCount = 0;

  async function embeddings(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const { input, model } = await body(request);
    const texts = Array.isArray(input) ? (input as string[]) : [String(input)];
    if (marker !== undefined && texts.some((text) => text.includes(marker as string))) {
      heldCount += 1;
      await new Promise<void>((resolve) => waiting.push(resolve));
    }
    const vectors = await embedder.embed(texts);
    json(response, 200, {
      object: 'list',
      model,
      data: vectors.map((vector, index) => ({ object: 'embedding', index, embedding: [...vector] })),
      usage: { prompt_tokens: texts.length, total_tokens: texts.length },
    });
  }

  async function chat(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const { model, stream } = await body(request);
    const text = `answer from ${String(model)}`;
    const usage = { prompt_tokens: 8, completion_tokens: 3, total_tokens: 11 };
    const base = { id: 'chatcmpl-fake', created: Math.floor(Date.now() / 1000), model };
    if (!stream) {
      json(response, 200, {
        ...base,
        object: 'chat.completion',
        choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }],
        usage,
      });
      return;
    }
    response.writeHead(200, { 'content-type': 'text/event-stream' });
    const send = (value: unknown) => response.write(`data: ${JSON.stringify(value)}\n\n`);
    const chunk = { ...base, object: 'chat.completion.chunk' };
    send({ ...chunk, choices: [{ index: 0, delta: { role: 'assistant', content: text }, finish_reason: null }] });
    send({ ...chunk, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] });
    send({ ...chunk, choices: [], usage });
    response.end('data: [DONE]\n\n');
  }

  const server = createServer((request, response) => {
    const route = `${request.method} ${request.url}`;
    const handled =
      route === 'GET /v1/models'
        ? Promise.resolve(
            json(response, 200, {
              object: 'list',
              data: models.map((id) => ({ id, object: 'model', owned_by: 'test' })),
            }),
          )
        : route === 'POST /v1/embeddings'
          ? embeddings(request, response)
          : route === 'POST /v1/chat/completions'
            ? chat(request, response)
            : Promise.resolve(json(response, 404, { error: { message: `no route ${route}` } }));
    handled.catch((error: unknown) => {
      if (!response.headersSent) json(response, 500, { error: { message: String(error) } });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup(async () => {
    for (const resolve of waiting.splice(0)) resolve();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  return {
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    held: () => heldCount,
    holdEmbeddings(text) {
      marker = text;
    },
    release() {
      marker = undefined;
      for (const resolve of waiting.splice(0)) resolve();
    },
  };
}
