import { expect, test } from 'vitest';
import { type BerthaProcess, startBerthaProcess } from '../helpers/bertha-process.ts';
import { makePdf } from '../helpers/documents.ts';
import { tempDir } from '../helpers/temp.ts';

// The whole first ten minutes of a user, on defaults: the starter model trains (about a minute
// on 2 cores), a PDF is uploaded, questions are asked, a vote and a retraining lead to a
// promoted version, and a restart keeps serving it.

const PAGES = [
  'Bertha is a closed-loop LLMOps system. It serves a local language model with retrieval over the documents its users upload, and it records every answer. '.repeat(
    6,
  ),
  'Users rate answers with a thumb up or down and may send a correction. The feedback becomes Prometheus metrics, and an alert starts a retraining pipeline. '.repeat(
    6,
  ),
  'The retraining pipeline builds a dataset, fine-tunes a LoRA adapter, and registers a new model version. Promoting a version makes the chat serve it. '.repeat(
    6,
  ),
];

interface Completion {
  id: string;
  model_version: string;
  choices: Array<{ message: { content: string } }>;
  sources: Array<{ document_key: string }>;
}

async function waitUntil<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function json<T>(response: Response): Promise<T> {
  const text = await response.text();
  if (!response.ok) throw new Error(`${response.status}: ${text}`);
  return JSON.parse(text) as T;
}

async function ready(bertha: BerthaProcess, timeoutMs: number): Promise<void> {
  await waitUntil(
    'readiness',
    async () => {
      const response = await fetch(`${bertha.url}/readyz`);
      return response.status === 200 ? true : undefined;
    },
    timeoutMs,
  );
}

async function ask(url: string, question: string, stream: boolean): Promise<{ text: string; sources: unknown[] }> {
  const response = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'bertha', stream, max_tokens: 48, messages: [{ role: 'user', content: question }] }),
  });
  expect(response.status).toBe(200);
  if (!stream) {
    const body = (await response.json()) as Completion;
    return { text: body.choices[0]?.message.content ?? '', sources: body.sources };
  }
  const events = (await response.text())
    .split('\n\n')
    .filter((event) => event.startsWith('data: ') && event !== 'data: [DONE]')
    .map((event) => JSON.parse(event.slice('data: '.length)) as Record<string, unknown>);
  expect(events.some((event) => 'error' in event)).toBe(false);
  const text = events
    .map((event) => (event.choices as Array<{ delta: { content?: string } }> | undefined)?.[0]?.delta.content ?? '')
    .join('');
  return { text, sources: (events[0]?.sources as unknown[]) ?? [] };
}

test('on defaults: starter model, upload a PDF, ask five questions, vote, retrain, promote, restart and keep serving the promoted version', async () => {
  const dataDir = tempDir();
  const enableStarter = { BERTHA_TRAINER_STARTER_ENABLED: 'true' };
  const first = await startBerthaProcess(['--data-dir', dataDir, '--set', 'trainer.retraining.steps=8'], enableStarter);
  await ready(first, 400_000);

  const form = new FormData();
  form.append('file', new Blob([new Uint8Array(makePdf(PAGES))], { type: 'application/pdf' }), 'bertha-guide.pdf');
  const upload = await fetch(`${first.url}/v1/documents`, { method: 'POST', body: form });
  expect(upload.status).toBe(201);
  await waitUntil(
    'the document to be ingested',
    async () => {
      const { data } = await json<{ data: Array<{ status: string; error?: string | null }> }>(
        await fetch(`${first.url}/v1/documents`),
      );
      if (data[0]?.status === 'failed') throw new Error(`ingestion failed: ${data[0].error}`);
      return data[0]?.status === 'ingested' ? true : undefined;
    },
    60_000,
  );

  const questions = [
    'What is Bertha?',
    'How do users rate answers?',
    'What does the retraining pipeline do?',
    'What happens when a version is promoted?',
    'Where does the feedback go?',
  ];
  for (const [index, question] of questions.entries()) {
    const answer = await ask(first.url, question, index % 2 === 1);
    expect(answer.text.trim(), question).not.toBe('');
    expect(answer.sources.length, question).toBeGreaterThan(0);
  }

  const answered = await json<Completion>(
    await fetch(`${first.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'bertha',
        max_tokens: 32,
        messages: [{ role: 'user', content: 'What is Bertha?' }],
      }),
    }),
  );
  expect(answered.model_version).toBe('starter');
  const vote = await fetch(`${first.url}/v1/feedback`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      response_id: answered.id,
      rating: 'down',
      correction: 'Bertha is a closed-loop LLMOps system that learns from feedback.',
    }),
  });
  expect(vote.status).toBe(201);

  const run = await json<{ id: string }>(
    await fetch(`${first.url}/v1/pipelines/llm-retraining/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ params: {} }),
    }),
  );
  const finished = await waitUntil(
    'the retraining run',
    async () => {
      const detail = await json<{ run: { status: string; error: string | null } }>(
        await fetch(`${first.url}/v1/pipeline-runs/${run.id}`),
      );
      return ['succeeded', 'failed', 'cancelled'].includes(detail.run.status) ? detail.run : undefined;
    },
    180_000,
  );
  expect(finished.status, finished.error ?? '').toBe('succeeded');
  await json(
    await fetch(`${first.url}/api/2.0/mlflow/registered-models/alias`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'bertha-chat', alias: 'champion', version: '1' }),
    }),
  );
  await waitUntil(
    'the promoted version to be served',
    async () => {
      const { data } = await json<{ data: Array<{ model_version: string | null }> }>(
        await fetch(`${first.url}/v1/models`),
      );
      return data[0]?.model_version === 'bertha-chat/1' ? true : undefined;
    },
    60_000,
  );
  first.child.kill('SIGTERM');
  expect(await first.exited).toBe(0);

  const second = await startBerthaProcess(['--data-dir', dataDir], enableStarter);
  await ready(second, 120_000);
  // The reused starter model is ready within milliseconds of start-up: give it the chance to
  // take over, as it did before, then check that the registry's champion is what answers.
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const { data } = await json<{ data: Array<{ model_version: string | null }> }>(
    await fetch(`${second.url}/v1/models`),
  );
  expect(data[0]?.model_version).toBe('bertha-chat/1');
  const after = await json<Completion>(
    await fetch(`${second.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'bertha',
        max_tokens: 16,
        messages: [{ role: 'user', content: 'What is Bertha?' }],
      }),
    }),
  );
  expect(after.model_version).toBe('bertha-chat/1');
  expect(after.sources.length).toBeGreaterThan(0);
  second.child.kill('SIGTERM');
  expect(await second.exited).toBe(0);
}, 900_000);
