import { authHeaders, errorFrom, getJson } from '../lib/api.ts';
import { readSse } from '../lib/sse.ts';
import type { ChatSettings, Source } from './types.ts';

export interface StreamUpdate {
  answerId?: string;
  modelVersion?: string;
  delta?: string;
  sources?: Source[];
}

interface CompletionChunk {
  id?: string;
  model_version?: string;
  sources?: Record<string, unknown>[];
  choices?: { delta?: { content?: string | null }; finish_reason?: string | null }[];
  error?: { message?: string; code?: string };
}

/** Serving sends sources in snake_case; camelCase is accepted too. */
function toSource(raw: Record<string, unknown>): Source {
  const pick = (camel: string, snake: string) => raw[camel] ?? raw[snake];
  const text = pick('text', 'text');
  const version = pick('documentVersion', 'document_version');
  return {
    chunkId: String(pick('chunkId', 'chunk_id') ?? ''),
    documentId: String(pick('documentId', 'document_id') ?? ''),
    documentKey: String(pick('documentKey', 'document_key') ?? pick('documentId', 'document_id') ?? '?'),
    documentVersion: typeof version === 'string' || typeof version === 'number' ? version : null,
    score: Number(raw.score ?? 0),
    ...(typeof text === 'string' ? { text } : {}),
  };
}

/** The model the server serves when the user picked none (`model` is required by the API). */
async function defaultModel(signal: AbortSignal): Promise<string> {
  const models = await getJson<{ data: { id: string }[] }>('/v1/models', signal);
  const first = models.data[0]?.id;
  if (!first) throw new Error('the server lists no models');
  return first;
}

/**
 * Streams one chat completion (OpenAI's `stream: true` format plus Bertha's `sources`).
 * Resolves when the stream ends; rejects with an ApiError when the server refuses, and with
 * an AbortError when `signal` stops it.
 */
export async function streamCompletion(
  messages: { role: 'user' | 'assistant'; content: string }[],
  settings: ChatSettings,
  onUpdate: (update: StreamUpdate) => void,
  signal: AbortSignal,
): Promise<void> {
  const model = settings.model || (await defaultModel(signal));
  const response = await fetch('/v1/chat/completions', {
    method: 'POST',
    signal,
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...authHeaders() },
    body: JSON.stringify({
      model,
      messages,
      stream: true,
      temperature: settings.temperature,
      top_p: settings.topP,
      max_tokens: settings.maxTokens,
    }),
  });
  if (!response.ok) throw await errorFrom(response);
  if (!response.body) throw new Error('the server sent no answer body');
  for await (const message of readSse(response.body)) {
    if (message.data === '[DONE]') return;
    const chunk = JSON.parse(message.data) as CompletionChunk;
    if (chunk.error) throw new Error(chunk.error.message ?? 'the model failed while answering');
    const update: StreamUpdate = {};
    if (chunk.id) update.answerId = chunk.id;
    if (chunk.model_version) update.modelVersion = chunk.model_version;
    if (Array.isArray(chunk.sources)) update.sources = chunk.sources.map(toSource);
    const delta = chunk.choices?.[0]?.delta?.content;
    if (delta) update.delta = delta;
    onUpdate(update);
  }
}
