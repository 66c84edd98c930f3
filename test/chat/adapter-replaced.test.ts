import { createHash } from 'node:crypto';
import { readFileSync, renameSync } from 'node:fs';
import path from 'node:path';
import { expect, test, vi } from 'vitest';
import type { ModelBundle } from '../../src/models/index.ts';
import { type TinyLlama, writeTinyLlama, writeTinyLora } from '../fixtures/tiny-llama.ts';
import { tempDir } from '../helpers/temp.ts';
import { eventually, type Serving, startServing } from './serving.ts';

// Each test loads models in this process; on a busy 2-core machine that takes a while.
vi.setConfig({ testTimeout: 300_000, hookTimeout: 180_000 });

const sha256Of = (file: string) => `sha256:${createHash('sha256').update(readFileSync(file)).digest('hex')}`;

interface Stamped {
  id: string;
  model_version: string;
  provenance: {
    model_version: string;
    base: { digest?: string };
    adapters: Array<{ digest: string; file: string }>;
  };
}

async function ask(serving: Serving): Promise<Stamped> {
  const response = await fetch(`${serving.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'bertha', messages: [{ role: 'user', content: 'hello' }], max_tokens: 2 }),
  });
  const text = await response.text();
  expect(response.status, text).toBe(200);
  return JSON.parse(text) as Stamped;
}

/**
 * Writes a different adapter (another seed) next to `adapterPath` and renames it over it, as a
 * deployment replacing a file would: same path, other bytes.
 */
async function replaceAdapter(tiny: TinyLlama, adapterPath: string, seed: number): Promise<void> {
  const before = sha256Of(adapterPath);
  const staged = await writeTinyLora(path.dirname(adapterPath), tiny.hparams, { seed, fileName: 'staged.gguf' });
  renameSync(staged.adapterPath, adapterPath);
  expect(sha256Of(adapterPath)).not.toBe(before);
}

/** Until chat serves `version`, loaded and with its files digested. */
async function servingVersion(serving: Serving, version: string): Promise<void> {
  await eventually(() => {
    const status = serving.bertha.chat.status();
    if (status.detail.includes('failed')) throw new Error(status.detail);
    return serving.bertha.chat.bundle()?.version === version && status.ready ? true : undefined;
  }, 120_000);
}

test('an adapter replaced under the same path and loaded again through the registry gives answers its new digest, even on a re-promoted version', async () => {
  const dir = tempDir('bertha-adapter-');
  const tiny = await writeTinyLlama(dir);
  const { adapterPath } = await writeTinyLora(dir, tiny.hparams, { seed: 2, fileName: 'adapter.gguf' });
  const serving = await startServing({ model: tiny.modelPath });
  try {
    const { registry, chat } = serving.bertha;
    const bundle: Omit<ModelBundle, 'version'> = {
      base: { kind: 'gguf', path: tiny.modelPath },
      adapters: [{ path: adapterPath, scale: 1 }],
      generation: {},
      retrieval: { enabled: true, topK: 4 },
    };
    const first = await registry.registerBundle({ name: 'bertha-chat', bundle: bundle as ModelBundle });
    await registry.setAlias('bertha-chat', 'champion', first.version);
    await servingVersion(serving, 'bertha-chat/1');
    const before = await ask(serving);
    expect(before.provenance.model_version).toBe('bertha-chat/1');
    expect(before.provenance.adapters).toEqual([
      expect.objectContaining({ digest: sha256Of(adapterPath), file: 'adapter.gguf' }),
    ]);

    await replaceAdapter(tiny, adapterPath, 3);
    const second = await registry.registerBundle({ name: 'bertha-chat', bundle: bundle as ModelBundle });
    await registry.setAlias('bertha-chat', 'champion', second.version);
    await servingVersion(serving, 'bertha-chat/2');
    const after = await ask(serving);
    expect(chat.bundle()?.adapters[0]?.path).toBe(adapterPath);
    expect(after.provenance.adapters).toEqual([
      expect.objectContaining({ digest: sha256Of(adapterPath), file: 'adapter.gguf' }),
    ]);
    expect(after.provenance.adapters[0]?.digest).not.toBe(before.provenance.adapters[0]?.digest);
    expect(after.provenance.base.digest).toBe(before.provenance.base.digest);

    // The first version promoted again: same version, same path, and the bytes it serves now.
    await registry.setAlias('bertha-chat', 'champion', first.version);
    await servingVersion(serving, 'bertha-chat/1');
    const again = await ask(serving);
    expect(again.provenance.model_version).toBe('bertha-chat/1');
    expect(again.provenance.adapters[0]?.digest).toBe(after.provenance.adapters[0]?.digest);
    expect(again.provenance.adapters[0]?.digest).not.toBe(before.provenance.adapters[0]?.digest);

    // What each answer was produced by stays on its record.
    const recorded = await serving.bertha.answers.get(before.id);
    expect(recorded?.provenance?.adapters[0]?.digest).toBe(before.provenance.adapters[0]?.digest);
  } finally {
    await serving.close();
  }
});

test('an adapter replaced under the same path while Bertha is down gives the answers after a restart on the same data dir its new digest', async () => {
  const dir = tempDir('bertha-adapter-restart-');
  const tiny = await writeTinyLlama(dir);
  const { adapterPath } = await writeTinyLora(dir, tiny.hparams, { seed: 2, fileName: 'adapter.gguf' });
  const settings = { model: tiny.modelPath, adapters: [{ path: adapterPath, scale: 1 }] };

  const first = await startServing(settings, { dir });
  let before: Stamped;
  try {
    before = await ask(first);
    expect(before.provenance.adapters[0]?.digest).toBe(sha256Of(adapterPath));
  } finally {
    await first.close();
  }

  await replaceAdapter(tiny, adapterPath, 4);
  const restarted = await startServing(settings, { dir });
  try {
    const after = await ask(restarted);
    expect(after.model_version).toBe(before.model_version);
    expect(after.provenance.adapters[0]?.digest).toBe(sha256Of(adapterPath));
    expect(after.provenance.adapters[0]?.digest).not.toBe(before.provenance.adapters[0]?.digest);
    const earlier = await restarted.bertha.answers.get(before.id);
    expect(earlier?.provenance?.adapters[0]?.digest).toBe(before.provenance.adapters[0]?.digest);
  } finally {
    await restarted.close();
  }
});
