import { describe, expect, test } from 'vitest';
import { fitPrompt } from '../../src/chat/context-budget.ts';
import { ContextLengthExceededError } from '../../src/chat/index.ts';
import type { RetrievedChunk } from '../../src/knowledge/index.ts';
import type { ChatMessage, PromptMeter } from '../../src/llm/index.ts';

/** One token per word plus two per message for the template: enough to check the budget's arithmetic. */
function wordMeter(contextSize: number): PromptMeter {
  return {
    contextSize,
    count: (messages) =>
      messages.reduce((sum, message) => sum + 2 + message.content.split(/\s+/).filter(Boolean).length, 0),
  };
}

function words(n: number, word = 'llama'): string {
  return Array.from({ length: n }, (_, i) => `${word}${i}`).join(' ');
}

function chunk(id: string, text: string): RetrievedChunk {
  return {
    chunkId: id,
    documentId: `d-${id}`,
    documentKey: `${id}.md`,
    documentVersion: 'v1',
    text,
    score: 1,
    metadata: {},
  };
}

const settings = { systemPrompt: 'Answer briefly.', contextTemplate: 'Context:\n{context}' };

describe('the context budget', () => {
  test('a prompt that fits is left as it is', () => {
    const fitted = fitPrompt({
      messages: [{ role: 'user', content: 'what is bertha' }],
      chunks: [chunk('a', words(10))],
      settings,
      meter: wordMeter(200),
      maxTokens: 50,
    });
    expect(fitted.chunks.map((c) => c.chunkId)).toEqual(['a']);
    expect(fitted.maxTokens).toBe(50);
    expect(fitted.trim).toEqual({ droppedChunkIds: [], cutChunks: [], droppedMessages: 0, maxTokens: null });
  });

  test('passages are kept by rank, the first that does not fit is cut at a word, the rest are dropped', () => {
    const meter = wordMeter(200);
    const fitted = fitPrompt({
      messages: [{ role: 'user', content: 'what is bertha' }],
      chunks: [chunk('a', words(60)), chunk('b', words(200)), chunk('c', words(5))],
      settings,
      meter,
      maxTokens: 40,
    });
    expect(fitted.chunks.map((c) => c.chunkId)).toEqual(['a', 'b']);
    const cut = fitted.chunks[1]?.text ?? '';
    expect(cut.endsWith(' …')).toBe(true);
    expect(words(200).startsWith(cut.slice(0, -2))).toBe(true);
    expect(fitted.trim.cutChunks).toEqual([{ chunkId: 'b', keptChars: cut.length - 2, totalChars: words(200).length }]);
    expect(fitted.trim.droppedChunkIds).toEqual(['c']);
    expect(meter.count(fitted.messages) + fitted.maxTokens).toBeLessThanOrEqual(200);
    expect(fitted.maxTokens).toBe(40);
  });

  test('history is trimmed oldest first in whole turns, the latest message always stays', () => {
    const turns: ChatMessage[] = [];
    for (let i = 0; i < 6; i++) {
      turns.push({ role: 'user', content: words(20, `q${i}-`) }, { role: 'assistant', content: words(20, `a${i}-`) });
    }
    const messages: ChatMessage[] = [...turns, { role: 'user', content: 'and now?' }];
    const meter = wordMeter(160);
    const fitted = fitPrompt({ messages, chunks: [], settings, meter, maxTokens: 30 });
    const kept = fitted.messages.slice(1);
    expect(kept.at(-1)?.content).toBe('and now?');
    expect(kept[0]?.role).toBe('user');
    expect(fitted.trim.droppedMessages % 2).toBe(0);
    expect(fitted.trim.droppedMessages).toBeGreaterThan(0);
    expect(kept.length).toBe(messages.length - fitted.trim.droppedMessages);
    // The newest turns are the ones kept.
    expect(kept.slice(0, -1)).toEqual(turns.slice(fitted.trim.droppedMessages));
    expect(meter.count(fitted.messages) + fitted.maxTokens).toBeLessThanOrEqual(160);
  });

  test('max_tokens is clamped to what the context has left, and says so', () => {
    const meter = wordMeter(100);
    const fitted = fitPrompt({
      messages: [{ role: 'user', content: words(30) }],
      chunks: [],
      settings,
      meter,
      maxTokens: 512,
    });
    const promptTokens = meter.count(fitted.messages);
    expect(fitted.maxTokens).toBe(100 - promptTokens);
    expect(fitted.trim.maxTokens).toEqual({ requested: 512, granted: 100 - promptTokens });
  });

  test('a system prompt and last message that leave no room for an answer are refused as context_length_exceeded', () => {
    const attempt = () =>
      fitPrompt({
        messages: [
          { role: 'system', content: words(40) },
          { role: 'user', content: words(80) },
        ],
        chunks: [chunk('a', words(5))],
        settings,
        meter: wordMeter(100),
        maxTokens: 10,
      });
    expect(attempt).toThrow(ContextLengthExceededError);
    try {
      attempt();
    } catch (error) {
      expect(error).toMatchObject({ code: 'context_length_exceeded', status: 400, details: { param: 'messages' } });
    }
  });
});
