import { authHeaders, errorFrom } from '../lib/api.ts';
import { readSse } from '../lib/sse.ts';
import type { ChatSettings, Source } from './types.ts';

export interface StreamUpdate {
  answerId?: string;
  model?: string;
  delta?: string;
  sources?: Source[];
}

interface CompletionChunk {
  id?: string;
  model?: string;
  sources?: Source[];
  choices?: { delta?: { content?: string | null }; finish_reason?: string | null }[];
  error?: { message?: string };
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
  const response = await fetch('/v1/chat/completions', {
    method: 'POST',
    signal,
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...authHeaders() },
    body: JSON.stringify({
      ...(settings.model ? { model: settings.model } : {}),
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
    if (chunk.model) update.model = chunk.model;
    if (Array.isArray(chunk.sources)) update.sources = chunk.sources;
    const delta = chunk.choices?.[0]?.delta?.content;
    if (delta) update.delta = delta;
    onUpdate(update);
  }
}
