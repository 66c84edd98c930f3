import { expect, test, vi } from 'vitest';
import { servedByChallenger } from '../../src/rollout/index.ts';
import { eventually, type Serving, startServing } from '../chat/serving.ts';
import { tinyModelWithLoraPerFile } from '../fixtures/tiny-llama.ts';

vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });

const files = tinyModelWithLoraPerFile('bertha-canary-loop-');

// One step at half the conversations; a wide tolerance so a dozen votes per arm decide, and
// nothing is decided before each arm has all twelve.
const rollout = {
  steps: [0.5],
  minVotes: 12,
  minAnswers: 12,
  confidence: 0.95,
  downRateTolerance: 0.3,
  errorRateTolerance: 0.3,
  intervalMs: 100,
};

async function json<T>(response: Response): Promise<T> {
  const text = await response.text();
  if (!response.ok) throw new Error(`${response.status}: ${text}`);
  return JSON.parse(text) as T;
}

/** A canary of a LoRA bundle registered as bertha-chat/1 against the configured model (`local`). */
async function startCanary(): Promise<{ serving: Serving; rolloutId: string }> {
  const serving = await startServing({ model: files.tiny.modelPath }, { config: { rollout } });
  await serving.bertha.registry.registerBundle({
    name: 'bertha-chat',
    bundle: {
      base: { kind: 'gguf', path: files.tiny.modelPath },
      adapters: [{ path: files.adapterPath, scale: 1 }],
      generation: {},
      retrieval: { enabled: true, topK: 4 },
    },
  });
  const started = await json<{ id: string; share: number; champion_version: string }>(
    await fetch(`${serving.url}/v1/rollouts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ challenger_version: 'bertha-chat/1' }),
    }),
  );
  expect(started).toMatchObject({ share: 0.5, champion_version: 'local' });
  await eventually(() => (serving.bertha.chat.canary() ? true : undefined));
  return { serving, rolloutId: started.id };
}

/** Twelve conversations per arm, each answered once and voted on. */
async function converseAndVote(serving: Serving, vote: (version: string) => 'up' | 'down'): Promise<string[]> {
  const versions: string[] = [];
  let canary = 0;
  let champion = 0;
  for (let i = 0; canary < 12 || champion < 12; i++) {
    const conversation = `conv_loop_${i}`;
    const onCanary = servedByChallenger(conversation, 0.5);
    if (onCanary ? canary >= 12 : champion >= 12) continue;
    if (onCanary) canary++;
    else champion++;
    const answer = await json<{ id: string; model_version: string }>(
      await fetch(`${serving.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'bertha',
          max_tokens: 2,
          conversation_id: conversation,
          messages: [{ role: 'user', content: 'hello' }],
        }),
      }),
    );
    expect(answer.model_version).toBe(onCanary ? 'bertha-chat/1' : 'local');
    versions.push(answer.model_version);
    await json(
      await fetch(`${serving.url}/v1/feedback`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ response_id: answer.id, rating: vote(answer.model_version) }),
      }),
    );
  }
  return versions;
}

interface RolloutDetail {
  status: string;
  decisions: Array<{ kind: string; reason: string; evidence: Record<string, unknown> }>;
}

test('feedback on the canary that is no worse promotes it: the champion alias moves and every conversation gets it', async () => {
  const { serving, rolloutId } = await startCanary();
  try {
    await converseAndVote(serving, () => 'up');
    const detail = await eventually(async () => {
      const current = await json<RolloutDetail>(await fetch(`${serving.url}/v1/rollouts/${rolloutId}`));
      return current.status === 'running' ? undefined : current;
    }, 30_000);
    expect(detail.status).toBe('promoted');
    const kinds = detail.decisions.map((d) => d.kind);
    expect(kinds[0]).toBe('start');
    expect(kinds.at(-1)).toBe('promote');
    // Looks before the votes were in wait, stored once for the step.
    expect(kinds.slice(1, -1)).toEqual(['wait']);
    expect(detail.decisions.at(-1)?.evidence).toMatchObject({
      champion: { version: 'local', up: 12, down: 0 },
      challenger: { version: 'bertha-chat/1', up: 12, down: 0 },
    });
    await eventually(() => (serving.bertha.chat.bundle()?.version === 'bertha-chat/1' ? true : undefined));
    expect(serving.bertha.chat.canary()).toBeUndefined();
    expect((await serving.bertha.registry.resolveAlias('bertha-chat', 'champion'))?.version).toBe('bertha-chat/1');
  } finally {
    await serving.close();
  }
});

test('a canary voted down is rolled back by itself and the champion serves every conversation again', async () => {
  const { serving, rolloutId } = await startCanary();
  try {
    await converseAndVote(serving, (version) => (version === 'local' ? 'up' : 'down'));
    const detail = await eventually(async () => {
      const current = await json<RolloutDetail>(await fetch(`${serving.url}/v1/rollouts/${rolloutId}`));
      return current.status === 'running' ? undefined : current;
    }, 30_000);
    expect(detail.status).toBe('rolled_back');
    expect(detail.decisions.at(-1)?.reason).toMatch(/bertha-chat\/1 gets more thumbs-down than local/);
    await eventually(() => (serving.bertha.chat.canary() ? undefined : true));
    expect(serving.bertha.chat.bundle()?.version).toBe('local');
    expect(await serving.bertha.registry.resolveAlias('bertha-chat', 'champion')).toBeUndefined();
    const [event] = await serving.bertha.bus.list({ type: 'rollout.changed' });
    expect(event?.payload).toMatchObject({ kind: 'rollback', status: 'rolled_back' });
  } finally {
    await serving.close();
  }
});
