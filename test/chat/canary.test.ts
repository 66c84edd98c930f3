import { expect, test, vi } from 'vitest';
import type { ModelBundle } from '../../src/models/index.ts';
import { servedByChallenger } from '../../src/rollout/index.ts';
import { tinyModelWithLoraPerFile } from '../fixtures/tiny-llama.ts';
import { startServing } from './serving.ts';

vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });

const files = tinyModelWithLoraPerFile('bertha-canary-');

test('a canary serves its share of conversations, each conversation always on the same version, and becomes champion without a reload', async () => {
  const serving = await startServing({ model: files.tiny.modelPath });
  try {
    const challenger: ModelBundle = {
      version: 'bertha-chat/2',
      base: { kind: 'gguf', path: files.tiny.modelPath },
      adapters: [{ path: files.adapterPath, scale: 1 }],
      generation: {},
      retrieval: { enabled: true, topK: 4 },
    };
    await serving.bertha.chat.setCanary(challenger, 0.5);
    expect(serving.bertha.chat.status().detail).toContain('canary bertha-chat/2 on 50% of conversations');
    const ask = async (conversation: string) => {
      const response = await fetch(`${serving.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'bertha',
          max_tokens: 2,
          conversation_id: conversation,
          messages: [{ role: 'user', content: 'hello' }],
        }),
      });
      expect(response.status).toBe(200);
      return ((await response.json()) as { model_version: string }).model_version;
    };
    const conversations = Array.from({ length: 24 }, (_, i) => `conv_canary_${i}`);
    const versions = [];
    for (const conversation of conversations) versions.push(await ask(conversation));
    expect(versions).toEqual(conversations.map((id) => (servedByChallenger(id, 0.5) ? 'bertha-chat/2' : 'local')));
    expect(new Set(versions).size).toBe(2);
    for (const [i, conversation] of conversations.slice(0, 6).entries())
      expect(await ask(conversation)).toBe(versions[i]);

    await serving.bertha.chat.swapBundle(challenger);
    expect(serving.bertha.chat.canary()).toBeUndefined();
    expect(serving.bertha.chat.bundle()?.version).toBe('bertha-chat/2');
    for (const conversation of conversations.slice(0, 4)) expect(await ask(conversation)).toBe('bertha-chat/2');

    await serving.bertha.chat.setCanary(challenger, 0.1);
    await serving.bertha.chat.setCanary(undefined, 0);
    expect(serving.bertha.chat.canary()).toBeUndefined();
  } finally {
    await serving.close();
  }
});
