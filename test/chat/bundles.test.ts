import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test, vi } from 'vitest';
import type { RetrievedChunk, Retriever } from '../../src/knowledge/index.ts';
import type { ModelBundle } from '../../src/models/index.ts';
import { type TinyLlama, writeTinyLlama, writeTinyLora } from '../fixtures/tiny-llama.ts';
import { type Serving, startServing } from './serving.ts';

// Each test loads a model in this process; on a busy 2-core machine that takes a while.
vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });

let modelDir: string;
let tiny: TinyLlama;
let adapterPath: string;

beforeAll(async () => {
  modelDir = mkdtempSync(path.join(tmpdir(), 'bertha-model-'));
  tiny = await writeTinyLlama(modelDir);
  adapterPath = (await writeTinyLora(modelDir, tiny.hparams)).adapterPath;
});

afterAll(() => rmSync(modelDir, { recursive: true, force: true }));

/** A retriever over a fixed list of passages: the port's contract, scored by shared words. */
function passageRetriever(
  passages: Array<Omit<RetrievedChunk, 'score' | 'metadata'>>,
): Retriever & { queries: string[] } {
  const queries: string[] = [];
  return {
    queries,
    async retrieve(query, { topK }) {
      queries.push(query);
      const words = new Set(query.toLowerCase().split(/\W+/));
      return passages
        .map((passage) => ({
          ...passage,
          metadata: {},
          score: passage.text
            .toLowerCase()
            .split(/\W+/)
            .filter((word) => words.has(word)).length,
        }))
        .filter((chunk) => chunk.score > 0)
        .sort((a, b) => b.score - a.score)
        .slice(0, topK);
    },
  };
}

const greedy = { max_tokens: 12, temperature: 0 };

test('retrieved passages go into the prompt and come back as sources in the response, the stream and the record', async () => {
  const retriever = passageRetriever([
    {
      chunkId: 'c1',
      documentId: 'd1',
      documentKey: 'docs/llama.md',
      documentVersion: 'v1',
      text: 'The llama model answers questions.',
    },
    {
      chunkId: 'c2',
      documentId: 'd2',
      documentKey: 'docs/other.md',
      documentVersion: 'v7',
      text: 'Unrelated text here.',
    },
  ]);
  const serving = await startServing({ model: tiny.modelPath, retrievalTopK: 2 }, { retriever });
  try {
    const completion = await serving.client.chat.completions.create({
      model: 'bertha',
      messages: [{ role: 'user', content: 'what does the llama model do' }],
      ...greedy,
    });
    const sources = (completion as unknown as { sources: unknown[] }).sources;
    expect(sources).toEqual([
      { document_id: 'd1', document_key: 'docs/llama.md', document_version: 'v1', chunk_id: 'c1', score: 3 },
    ]);
    expect(retriever.queries).toEqual(['what does the llama model do']);
    const record = await serving.bertha.answers.get(completion.id);
    expect(record?.prompt).toContain('[1] (docs/llama.md)\nThe llama model answers questions.');
    expect(record?.sources).toEqual([
      { documentId: 'd1', documentKey: 'docs/llama.md', documentVersion: 'v1', chunkId: 'c1', score: 3 },
    ]);

    const stream = await serving.client.chat.completions.create({
      model: 'bertha',
      messages: [{ role: 'user', content: 'the llama' }],
      ...greedy,
      stream: true,
    });
    const streamedSources: unknown[] = [];
    for await (const chunk of stream) {
      const extra = chunk as unknown as { sources?: unknown[] };
      if (extra.sources) streamedSources.push(...extra.sources);
    }
    expect(streamedSources).toHaveLength(1);
  } finally {
    await serving.close();
  }
});

test('a LoRA adapter on the base GGUF changes the answer', async () => {
  const base = await startServing({ model: tiny.modelPath });
  const messages = [{ role: 'user' as const, content: 'hello world' }];
  let baseText: string | null | undefined;
  try {
    baseText = (await base.client.chat.completions.create({ model: 'bertha', messages, ...greedy })).choices[0]?.message
      .content;
  } finally {
    await base.close();
  }
  const adapted = await startServing({ model: tiny.modelPath, adapters: [{ path: adapterPath, scale: 1 }] });
  try {
    const text = (await adapted.client.chat.completions.create({ model: 'bertha', messages, ...greedy })).choices[0]
      ?.message.content;
    expect(text).toBeTruthy();
    expect(text).not.toBe(baseText);
  } finally {
    await adapted.close();
  }
});

test('a model without its own chat template uses the configured one', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'bertha-model-'));
  const bare = await writeTinyLlama(dir, { chatTemplate: null });
  const template =
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}\n{% endfor %}<|assistant|>";
  const serving = await startServing({ model: bare.modelPath, chatTemplate: template });
  try {
    const completion = await serving.client.chat.completions.create({
      model: 'bertha',
      messages: [{ role: 'user', content: 'hello' }],
      max_tokens: 3,
    });
    const record = await serving.bertha.answers.get(completion.id);
    expect(record?.prompt).toContain('<|user|>hello');
  } finally {
    await serving.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('swapping the bundle lets the in-flight answer finish on the old version and serves new requests from the new one', async () => {
  const serving: Serving = await startServing({ model: tiny.modelPath, modelVersion: 'bertha-chat/1' });
  try {
    const stream = await serving.client.chat.completions.create({
      model: 'bertha',
      messages: [{ role: 'user', content: 'hello' }],
      max_tokens: 40,
      temperature: 1,
      // Without its end token the answer runs to max_tokens, whatever the random seed samples.
      logit_bias: { [tiny.tokenizer.eosId]: -100 },
      stream: true,
    });
    const iterator = stream[Symbol.asyncIterator]();
    const first = await iterator.next();
    const id = first.value?.id ?? '';

    const next: ModelBundle = {
      version: 'bertha-chat/2',
      base: { kind: 'gguf', path: tiny.modelPath },
      adapters: [{ path: adapterPath, scale: 1 }],
      generation: {},
      retrieval: { enabled: true, topK: 4 },
    };
    await serving.bertha.chat.swapBundle(next);
    const after = await serving.client.chat.completions.create({
      model: 'bertha',
      messages: [{ role: 'user', content: 'hello' }],
      max_tokens: 3,
    });
    expect((after as unknown as { model_version: string }).model_version).toBe('bertha-chat/2');

    let finish: string | null | undefined;
    for (let step = await iterator.next(); !step.done; step = await iterator.next()) {
      finish = step.value.choices[0]?.finish_reason ?? finish;
    }
    expect(finish).toBe('length');
    const record = await serving.bertha.answers.get(id);
    expect(record).toMatchObject({ status: 'completed', modelVersion: 'bertha-chat/1', completionTokens: 40 });
    expect(serving.bertha.chat.bundle()?.version).toBe('bertha-chat/2');
  } finally {
    await serving.close();
  }
});
