import { describe, expect, test } from 'vitest';
import { type AnswerRecord, createAnswerStore } from '../../src/chat/index.ts';
import { isoNow, newId } from '../../src/core/ids.ts';
import { dbFactories } from '../helpers/databases.ts';

function answer(overrides: Partial<AnswerRecord>): AnswerRecord {
  return {
    id: newId('chatcmpl'),
    conversationId: 'conv_1',
    model: 'bertha',
    modelVersion: 'bertha-chat/1',
    messages: [{ role: 'user', content: 'hi' }],
    prompt: '[INST] hi [/INST]',
    answer: 'hello',
    params: { temperature: 0.5, stop: ['\n'] },
    sources: [{ documentId: 'd', documentKey: 'k.md', documentVersion: 'h1', chunkId: 'c', score: 0.25 }],
    trimmed: {
      droppedChunkIds: ['c2'],
      cutChunks: [{ chunkId: 'c', keptChars: 120, totalChars: 900 }],
      droppedMessages: 2,
      maxTokens: { requested: 512, granted: 300 },
    },
    status: 'completed',
    finishReason: 'stop',
    error: null,
    promptTokens: 12,
    cachedPromptTokens: 5,
    completionTokens: 3,
    ttftMs: 4.5,
    latencyMs: 20.25,
    computeMs: 19.5,
    cost: 0.0125,
    createdAt: isoNow(),
    finishedAt: isoNow(),
    ...overrides,
  };
}

describe.each(dbFactories)('answer store on $name', (factory) => {
  test('an answer reads back exactly as recorded, and a conversation lists its turns in order', async ({ skip }) => {
    if (!(await factory.available())) skip();
    const db = await factory.create();
    try {
      const store = createAnswerStore(db);
      const first = answer({});
      const second = answer({ status: 'cancelled', finishReason: 'cancelled', ttftMs: null, answer: 'hel' });
      const elsewhere = answer({ conversationId: 'conv_2' });
      for (const record of [first, second, elsewhere]) await store.record(record);
      expect(await store.get(first.id)).toEqual(first);
      expect(await store.get('chatcmpl_missing')).toBeUndefined();
      expect((await store.listConversation('conv_1')).map((record) => record.id)).toEqual([first.id, second.id]);
      expect((await store.listConversation('conv_1'))[1]).toEqual(second);
    } finally {
      await db.close();
    }
  });
});
