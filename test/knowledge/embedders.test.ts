import Fastify from 'fastify';
import { expect, onTestFinished, test } from 'vitest';
import { createLexicalEmbedder } from '../../src/knowledge/lexical-embedder.ts';
import { createOpenAiEmbedder } from '../../src/knowledge/openai-embedder.ts';

function dot(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] as number) * (b[i] as number);
  return sum;
}

test('the lexical embedder is deterministic, unit length, and scores shared words above unrelated text', async () => {
  const embedder = createLexicalEmbedder({ dimensions: 384 });
  const [a, b, c, again] = await embedder.embed([
    'The printer firmware update failed',
    'printer firmware failed to update',
    'Refunds go back to the original card',
    'The printer firmware update failed',
  ]);
  expect(embedder).toMatchObject({ id: 'lexical-384', dimensions: 384 });
  expect(Array.from(again as Float32Array)).toEqual(Array.from(a as Float32Array));
  expect(dot(a as Float32Array, a as Float32Array)).toBeCloseTo(1, 5);
  expect(dot(a as Float32Array, b as Float32Array)).toBeGreaterThan(dot(a as Float32Array, c as Float32Array) + 0.3);
  const [empty] = await embedder.embed(['']);
  expect(Array.from(empty as Float32Array).every((value) => value === 0)).toBe(true);
});

/** An OpenAI-compatible /v1/embeddings server over HTTP (answers out of order, as servers may). */
async function embeddingServer() {
  const inner = createLexicalEmbedder({ dimensions: 48 });
  const requests: Array<{ model: string; input: string[] }> = [];
  const app = Fastify();
  app.post('/v1/embeddings', async (request, reply) => {
    const body = request.body as { model: string; input: string[] };
    requests.push(body);
    if (body.model === 'broken') return reply.status(500).send({ error: { message: 'model crashed' } });
    const vectors = await inner.embed(body.input);
    const data = vectors.map((vector, index) => ({
      object: 'embedding',
      index,
      embedding: Array.from(vector).map((v) => v * 3),
    }));
    return { object: 'list', model: body.model, data: data.reverse(), usage: { prompt_tokens: 1, total_tokens: 1 } };
  });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  onTestFinished(() => app.close());
  return { url: `${url}/v1`, inner, requests };
}

test('the OpenAI-compatible embedder batches, restores order, normalises, and learns the size', async () => {
  const server = await embeddingServer();
  const embedder = await createOpenAiEmbedder({ baseUrl: server.url, model: 'nomic/embed', batchSize: 2 });
  expect(embedder).toMatchObject({ id: 'openai-nomic_embed-48', dimensions: 48 });
  const texts = ['one fish', 'two fish', 'red fish', 'blue fish', 'five'];
  const vectors = await embedder.embed(texts);
  const expected = await server.inner.embed(texts);
  vectors.forEach((vector, i) => {
    expect(dot(vector, expected[i] as Float32Array)).toBeCloseTo(1, 5);
  });
  expect(server.requests.slice(1).map((request) => request.input.length)).toEqual([2, 2, 1]);
});

test('an embedding server error surfaces as an embedder_failed error', async () => {
  const server = await embeddingServer();
  await expect(createOpenAiEmbedder({ baseUrl: server.url, model: 'broken', batchSize: 8 })).rejects.toMatchObject({
    code: 'embedder_failed',
  });
});
