import { isoNow, newId } from '../../src/core/ids.ts';
import type { MetadataDb } from '../../src/db/index.ts';

/**
 * Inserts an `answers` row as the serving layer would after a chat completion; its id is
 * the response id clients vote on.
 */
export async function insertAnswer(
  db: MetadataDb,
  fields: { modelVersion?: string; answer?: string; status?: 'completed' | 'failed' | 'cancelled' } = {},
): Promise<string> {
  const id = newId('ans');
  const now = isoNow();
  await db.kysely
    .insertInto('answers')
    .values({
      id,
      conversation_id: null,
      model: 'bertha',
      model_version: fields.modelVersion ?? 'v1',
      messages_json: JSON.stringify([{ role: 'user', content: 'What is Bertha?' }]),
      prompt: 'What is Bertha?',
      answer: fields.answer ?? 'A closed-loop LLMOps system.',
      params_json: '{}',
      sources_json: '[]',
      status: fields.status ?? 'completed',
      error: fields.status === 'failed' ? 'generation failed' : null,
      prompt_tokens: 5,
      completion_tokens: 7,
      ttft_ms: 1,
      latency_ms: 2,
      compute_ms: 2,
      cost: 0,
      created_at: now,
      finished_at: now,
    })
    .execute();
  return id;
}
