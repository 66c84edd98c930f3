import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test, vi } from 'vitest';
import type { RetrievedChunk, Retriever } from '../../src/knowledge/index.ts';
import { type TinyLlama, writeTinyLlama } from '../fixtures/tiny-llama.ts';
import { startServing } from './serving.ts';

vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });

let modelDir: string;
let tiny: TinyLlama;

beforeAll(async () => {
  modelDir = mkdtempSync(path.join(tmpdir(), 'bertha-model-'));
  tiny = await writeTinyLlama(modelDir);
});

afterAll(() => rmSync(modelDir, { recursive: true, force: true }));

/** Four long passages for any question: together far more than a 256-token context holds. */
const longPassages: Retriever = {
  async retrieve(_query, { topK }) {
    return Array.from(
      { length: topK },
      (_, i): RetrievedChunk => ({
        chunkId: `c${i}`,
        documentId: `d${i}`,
        documentKey: `docs/${i}.md`,
        documentVersion: 'v1',
        text: `Passage ${i}: ${'the llama answers questions about the knowledge base '.repeat(8)}`,
        score: 1 - i / 10,
        metadata: {},
      }),
    );
  },
};

interface Trimmed {
  dropped_chunk_ids: string[];
  cut_chunks: Array<{ chunk_id: string; kept_chars: number; total_chars: number }>;
  dropped_messages: number;
  max_tokens: { requested: number; granted: number } | null;
}

test('passages beyond the context are cut or dropped by rank and the answer says so, streaming or not', async () => {
  const serving = await startServing(
    { model: tiny.modelPath, retrievalTopK: 4, llamaCpp: { gpu: 'off', contextSize: 256 } },
    { retriever: longPassages },
  );
  try {
    const response = await fetch(`${serving.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'bertha',
        messages: [{ role: 'user', content: 'what does the llama do' }],
        max_tokens: 32,
      }),
    });
    const body = (await response.json()) as {
      sources: Array<{ chunk_id: string }>;
      trimmed: Trimmed;
      usage: { prompt_tokens: number; completion_tokens: number };
    };
    expect(response.status, JSON.stringify(body)).toBe(200);
    const kept = body.sources.map((source) => source.chunk_id);
    expect(kept.length).toBeGreaterThan(0);
    expect([...kept, ...body.trimmed.dropped_chunk_ids]).toEqual(['c0', 'c1', 'c2', 'c3']);
    expect(body.trimmed.dropped_chunk_ids.length).toBeGreaterThan(0);
    expect(body.usage.prompt_tokens + body.usage.completion_tokens).toBeLessThan(256);
    const record = await serving.bertha.answers.get((body as unknown as { id: string }).id);
    expect(record?.trimmed.droppedChunkIds).toEqual(body.trimmed.dropped_chunk_ids);
    if (body.trimmed.cut_chunks.length > 0) expect(record?.prompt).toContain(' …');

    const stream = await fetch(`${serving.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'bertha',
        stream: true,
        max_tokens: 500,
        messages: [{ role: 'user', content: 'and the llama?' }],
      }),
    });
    expect(stream.status).toBe(200);
    const text = await stream.text();
    expect(text).not.toContain('"error"');
    const first = JSON.parse(text.split('\n\n')[0]?.slice('data: '.length) ?? '{}') as { trimmed: Trimmed };
    expect(first.trimmed.dropped_chunk_ids.length).toBeGreaterThan(0);
    // 500 answer tokens cannot fit a 256-token context: lowered, and said so.
    expect(first.trimmed.max_tokens?.requested).toBe(500);
    expect(first.trimmed.max_tokens?.granted).toBeLessThan(256);
  } finally {
    await serving.close();
  }
});

test('a conversation too long for the context keeps its newest turns; one message too long is a 400 context_length_exceeded', async () => {
  const serving = await startServing({ model: tiny.modelPath, llamaCpp: { gpu: 'off', contextSize: 256 } });
  try {
    const history = Array.from({ length: 12 }, (_, i) => [
      { role: 'user', content: `question ${i} about the llama and its answers` },
      { role: 'assistant', content: `answer ${i}: the llama answers questions about the knowledge base` },
    ]).flat();
    const trimmedResponse = await fetch(`${serving.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'bertha',
        max_tokens: 16,
        messages: [...history, { role: 'user', content: 'last' }],
      }),
    });
    const trimmedBody = (await trimmedResponse.json()) as { trimmed: Trimmed };
    expect(trimmedResponse.status, JSON.stringify(trimmedBody)).toBe(200);
    expect(trimmedBody.trimmed.dropped_messages).toBeGreaterThan(0);
    expect(trimmedBody.trimmed.dropped_messages % 2).toBe(0);

    const tooLong = { model: 'bertha', messages: [{ role: 'user', content: 'llama '.repeat(400) }] };
    for (const stream of [false, true]) {
      const response = await fetch(`${serving.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ...tooLong, stream }),
      });
      expect(response.status).toBe(400);
      const body = (await response.json()) as { error: { code: string; type: string; param: string } };
      expect(body.error).toMatchObject({
        code: 'context_length_exceeded',
        type: 'invalid_request_error',
        param: 'messages',
      });
    }
  } finally {
    await serving.close();
  }
});

test('a contextSize above the training context is honoured and reported, not capped', async () => {
  const serving = await startServing({ model: tiny.modelPath, llamaCpp: { gpu: 'off', contextSize: 1024 } });
  try {
    expect(serving.bertha.chat.status().detail).toContain('sequences of 1024 tokens (trained on 512)');
  } finally {
    await serving.close();
  }
});
