import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { type AnswerProvenance, type AnswerRecord, createAnswerStore } from '../../src/chat/index.ts';
import { isoNow, newId } from '../../src/core/ids.ts';
import { ingestObject } from '../../src/knowledge/index.ts';
import { writeTinyLlama, writeTinyLora } from '../fixtures/tiny-llama.ts';
import { dbFactories } from '../helpers/databases.ts';
import { type Serving, startServing } from './serving.ts';

// Each test loads a model in this process; on a busy 2-core machine that takes a while.
vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });

let modelDir: string;
let modelPath: string;
let adapterPath: string;

beforeAll(async () => {
  modelDir = mkdtempSync(path.join(tmpdir(), 'bertha-provenance-'));
  const tiny = await writeTinyLlama(modelDir);
  modelPath = tiny.modelPath;
  adapterPath = (await writeTinyLora(modelDir, tiny.hparams)).adapterPath;
});

afterAll(() => rmSync(modelDir, { recursive: true, force: true }));

const sha256Of = (file: string) => `sha256:${createHash('sha256').update(readFileSync(file)).digest('hex')}`;

interface ProvenanceJson {
  model_version: string;
  base: { kind: string; digest?: string; file?: string; bytes?: number; model?: string; base_url?: string };
  adapters: Array<{ digest: string; file: string; bytes: number; scale: number }>;
  template: { id: string; digest: string; system_prompt: string };
  generation: Record<string, unknown>;
  retrieval: { enabled: boolean; top_k: number; mode: string | null; embedder: string | null };
  knowledge: Array<{ document_id: string; document_key: string; version: string }>;
}

interface CompletionJson {
  id: string;
  object: string;
  choices: Array<{ message: { content: string } }>;
  sources: Array<{ document_id: string; document_key: string; document_version: string; chunk_id: string }>;
  provenance: ProvenanceJson;
}

async function ask(serving: Serving, body: Record<string, unknown>): Promise<CompletionJson> {
  const response = await fetch(`${serving.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'bertha', ...body }),
  });
  const text = await response.text();
  expect(response.status, text).toBe(200);
  return JSON.parse(text) as CompletionJson;
}

/** Each document version the sources came from, once. */
function distinctVersions(sources: CompletionJson['sources']) {
  const seen = new Map<string, { document_id: string; document_key: string; version: string }>();
  for (const source of sources) {
    seen.set(`${source.document_id}@${source.document_version}`, {
      document_id: source.document_id,
      document_key: source.document_key,
      version: source.document_version,
    });
  }
  return [...seen.values()];
}

const LLAMA_GUIDE = [
  'The llama model answers questions about llamas and their wool.',
  'A llama eats grass and hay; the llama model knows this well.',
  'Llamas live in the Andes, and the llama model can tell you where.',
].join(' ');

test('an answer from a local GGUF with a LoRA adapter is stamped with file digests, template, effective settings and the document versions it read', async () => {
  const serving = await startServing(
    {
      model: modelPath,
      adapters: [{ path: adapterPath, scale: 1 }],
      retrievalTopK: 4,
      llamaCpp: { gpu: 'off', contextSize: 1024 },
    },
    { config: { knowledge: { chunkSize: 80, chunkOverlap: 10 }, objects: { watch: false } } },
  );
  try {
    const { bertha } = serving;
    await bertha.objects.put('documents/llama-guide.md', LLAMA_GUIDE);
    await bertha.objects.put('documents/llama-note.md', 'A short note: the llama model is small.');
    const guide = await ingestObject(bertha.knowledge, 'documents/llama-guide.md');
    const note = await ingestObject(bertha.knowledge, 'documents/llama-note.md');
    expect(guide).toMatchObject({ status: 'ingested' });
    expect(note).toMatchObject({ status: 'ingested' });
    expect(guide.chunkCount).toBeGreaterThan(1);

    const question = { role: 'user', content: 'what does the llama model know about llamas' };
    const body = await ask(serving, { messages: [question], max_tokens: 4, temperature: 0, seed: 7 });
    const provenance = body.provenance;
    expect(body.object).toBe('chat.completion');
    expect(provenance.model_version).toBe('local');
    expect(provenance.base).toEqual({
      kind: 'gguf',
      digest: sha256Of(modelPath),
      file: path.basename(modelPath),
      bytes: statSync(modelPath).size,
    });
    expect(provenance.adapters).toEqual([
      { digest: sha256Of(adapterPath), file: path.basename(adapterPath), bytes: statSync(adapterPath).size, scale: 1 },
    ]);
    expect(provenance.template.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(provenance.template.id).toBe(`tpl-${provenance.template.digest.slice('sha256:'.length, 19)}`);
    expect(provenance.template.system_prompt).toBe('server');
    // Defaults filled in (top_p from serving.generation), max_tokens as the budget granted it.
    expect(provenance.generation).toEqual({
      temperature: 0,
      top_p: bertha.config.serving.generation.topP,
      max_tokens: 4,
      max_tokens_requested: 4,
      seed: 7,
      stop: [],
      presence_penalty: 0,
      frequency_penalty: 0,
      logit_bias: null,
      response_format: 'text',
      logprobs: null,
      tools: [],
      tool_choice: 'none',
    });
    expect(provenance.retrieval).toEqual({
      enabled: true,
      top_k: 4,
      mode: bertha.config.knowledge.searchMode,
      embedder: bertha.knowledge.embedder.id,
    });
    // Several passages, each document version named once.
    expect(body.sources.length).toBeGreaterThan(provenance.knowledge.length);
    expect(provenance.knowledge).toEqual(distinctVersions(body.sources));
    expect(provenance.knowledge.map((document) => document.version).sort()).toEqual(
      [guide.version, note.version]
        .filter((version) => body.sources.some((s) => s.document_version === version))
        .sort(),
    );
    expect(provenance.knowledge.map((document) => document.version)).toContain(guide.version);

    // Stored with the answer, shown by the answer route and the answer's lineage node.
    const record = await bertha.answers.get(body.id);
    expect(record?.provenance?.base).toMatchObject({ kind: 'gguf', digest: sha256Of(modelPath) });
    expect(record?.provenance?.adapters[0]?.digest).toBe(sha256Of(adapterPath));
    const shown = (await (await fetch(`${serving.url}/v1/answers/${body.id}`)).json()) as { provenance: unknown };
    expect(shown.provenance).toEqual(provenance);
    const lineage = (await (await fetch(`${serving.url}/v1/lineage/answer/${body.id}?depth=1`)).json()) as {
      nodes: Array<{ kind: string; id: string; details: { provenance?: AnswerProvenance } }>;
    };
    const node = lineage.nodes.find((candidate) => candidate.kind === 'answer' && candidate.id === body.id);
    expect(node?.details.provenance?.adapters[0]?.digest).toBe(sha256Of(adapterPath));
    expect(node?.details.provenance?.knowledge).toEqual(record?.provenance?.knowledge);

    // A document replaced in the knowledge base: the next answer names its new version.
    await bertha.objects.put('documents/llama-guide.md', `${LLAMA_GUIDE} The llama model was updated.`);
    const replaced = await ingestObject(bertha.knowledge, 'documents/llama-guide.md');
    expect(replaced).toMatchObject({ status: 'ingested' });
    expect(replaced.version).not.toBe(guide.version);
    const later = await ask(serving, { messages: [question], max_tokens: 4, temperature: 0 });
    const versions = later.provenance.knowledge.map((document) => document.version);
    expect(versions).toContain(replaced.version);
    expect(versions).not.toContain(guide.version);
    expect(later.provenance.generation.seed).toBeNull();
    expect(later.provenance.base).toEqual(provenance.base);
  } finally {
    await serving.close();
  }
});

test('the stream carries the stamp on its first chunk; a request with its own system prompt, a logit bias and a budget-cut max_tokens says so', async () => {
  const serving = await startServing({ model: modelPath, systemPrompt: 'Answer briefly.' });
  try {
    const response = await fetch(`${serving.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'bertha',
        stream: true,
        messages: [{ role: 'user', content: 'hello' }],
        max_tokens: 3,
        top_p: 0.5,
      }),
    });
    const text = await response.text();
    expect(response.status, text).toBe(200);
    const first = JSON.parse(text.split('\n\n')[0]?.slice('data: '.length) ?? '{}') as { provenance: ProvenanceJson };
    expect(first.provenance.base).toMatchObject({ kind: 'gguf', digest: sha256Of(modelPath) });
    expect(first.provenance.adapters).toEqual([]);
    expect(first.provenance.template.system_prompt).toBe('server');
    expect(first.provenance.generation).toMatchObject({
      temperature: serving.bertha.config.serving.generation.temperature,
      top_p: 0.5,
      max_tokens: 3,
    });

    const own = await ask(serving, {
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'hello' },
      ],
      // More than the 512-token context holds: the budget grants less.
      max_tokens: 5000,
      temperature: 0,
      // End-of-sequence (token 2 of the tiny vocabulary) first: the answer ends at once.
      logit_bias: { '2': 100 },
    });
    expect(own.provenance.template.system_prompt).toBe('request');
    expect(own.provenance.template.digest).toBe(first.provenance.template.digest);
    expect(own.provenance.generation.max_tokens_requested).toBe(5000);
    expect(own.provenance.generation.max_tokens).toBeLessThan(512);
    expect(own.provenance.generation.logit_bias).toEqual({ '2': 100 });
    const record = await serving.bertha.answers.get(own.id);
    expect(record?.provenance?.generation.maxTokens).toBe(own.provenance.generation.max_tokens);
  } finally {
    await serving.close();
  }
});

test('an answer from an upstream model names the model and the server, and no file digest', async () => {
  const upstream = await startServing({ model: modelPath, modelName: 'tiny-llama' });
  try {
    const serving = await startServing({
      upstream: { baseUrl: `${upstream.url}/v1`, apiKey: 'sk-test', model: 'tiny-llama' },
      modelVersion: 'upstream-tiny',
    });
    try {
      const body = await ask(serving, { messages: [{ role: 'user', content: 'hello' }], max_tokens: 2 });
      expect(body.provenance.model_version).toBe('upstream-tiny');
      expect(body.provenance.base).toEqual({ kind: 'upstream', model: 'tiny-llama', base_url: `${upstream.url}/v1` });
      expect(body.provenance.adapters).toEqual([]);
      expect(body.provenance.generation).toMatchObject({ max_tokens: 2, max_tokens_requested: 2 });
    } finally {
      await serving.close();
    }
  } finally {
    await upstream.close();
  }
});

describe.each(dbFactories)('answer provenance on $name', (factory) => {
  test('the stamp reads back exactly as recorded; an answer without one reads back without one', async ({ skip }) => {
    if (!(await factory.available())) skip();
    const db = await factory.create();
    try {
      const store = createAnswerStore(db);
      const provenance: AnswerProvenance = {
        modelVersion: 'bertha-chat/3',
        base: { kind: 'gguf', digest: `sha256:${'a'.repeat(64)}`, file: 'base.gguf', bytes: 1234 },
        adapters: [{ digest: `sha256:${'b'.repeat(64)}`, file: 'adapter.gguf', bytes: 56, scale: 0.5 }],
        template: { id: 'tpl-cccccccccccc', digest: `sha256:${'c'.repeat(64)}`, systemPrompt: 'server' },
        generation: {
          temperature: 0.7,
          topP: 0.95,
          maxTokens: 300,
          maxTokensRequested: 512,
          seed: null,
          stop: ['\n'],
          presencePenalty: 0,
          frequencyPenalty: 0.5,
          logitBias: { '42': -100 },
          responseFormat: 'text',
          logprobs: null,
          tools: ['get_weather'],
          toolChoice: 'auto',
        },
        retrieval: { enabled: true, topK: 4, mode: 'hybrid', embedder: 'lexical-384' },
        knowledge: [{ documentId: 'doc_1', documentKey: 'documents/a.md', version: 'v1' }],
      };
      const answer = (overrides: Partial<AnswerRecord>): AnswerRecord => ({
        id: newId('chatcmpl'),
        conversationId: 'conv_1',
        model: 'bertha',
        modelVersion: 'bertha-chat/3',
        messages: [{ role: 'user', content: 'hi' }],
        prompt: 'hi',
        answer: 'hello',
        params: {},
        sources: [],
        trimmed: { droppedChunkIds: [], cutChunks: [], droppedMessages: 0, maxTokens: null },
        status: 'completed',
        finishReason: 'stop',
        error: null,
        promptTokens: 1,
        cachedPromptTokens: 0,
        completionTokens: 1,
        ttftMs: null,
        latencyMs: 1,
        computeMs: 1,
        cost: 0,
        createdAt: isoNow(),
        finishedAt: isoNow(),
        ...overrides,
      });
      const stamped = answer({ provenance });
      const older = answer({});
      await store.record(stamped);
      await store.record(older);
      expect(await store.get(stamped.id)).toEqual(stamped);
      expect((await store.get(older.id))?.provenance).toBeUndefined();
    } finally {
      await db.close();
    }
  });
});
