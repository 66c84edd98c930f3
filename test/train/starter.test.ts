import { stat } from 'node:fs/promises';
import { getLlama, LlamaCompletion } from 'node-llama-cpp';
import { describe, expect, it } from 'vitest';
import { createStarterModelStatus, ensureStarterModel, type StarterProgress } from '../../src/train/starter.ts';
import { tempDir } from '../helpers/temp.ts';

describe('the starter model', () => {
  it('is trained once from the bundled corpus with progress, cached under the data dir and reused', async () => {
    const dataDir = tempDir();
    const status = createStarterModelStatus();
    const seen: StarterProgress[] = [];
    const first = await ensureStarterModel({
      dataDir,
      steps: 4,
      threads: 1,
      onProgress: (p) => {
        seen.push(p);
        status.onProgress(p);
      },
    });
    expect(first.reused).toBe(false);
    expect(first.modelPath.startsWith(dataDir)).toBe(true);
    expect(seen.map((p) => p.phase)).toEqual([
      'tokenizer',
      'training',
      'training',
      'training',
      'training',
      'export',
      'ready',
    ]);
    expect(await status.readinessCheck.check()).toMatchObject({ ready: true, progress: 1 });
    expect((await stat(first.checkpointPath)).size).toBeGreaterThan(0);

    const again = await ensureStarterModel({ dataDir, steps: 4 });
    expect(again).toEqual({ ...first, reused: true });

    const llama = await getLlama({ build: 'never', gpu: false, maxThreads: 2 });
    const model = await llama.loadModel({ modelPath: first.modelPath });
    const context = await model.createContext({ contextSize: 128 });
    const completion = new LlamaCompletion({ contextSequence: context.getSequence() });
    const text = await completion.generateCompletion('What is Bertha?\n', { maxTokens: 8, temperature: 0 });
    expect(model.tokenize(text).length).toBeGreaterThan(0);
    await context.dispose();
    await model.dispose();
    await llama.dispose();
  });

  it('shows what is being prepared on /readyz while it trains', () => {
    const status = createStarterModelStatus();
    status.onProgress({ phase: 'training', fraction: 0.5, step: 10, steps: 20, loss: 3.21, etaSeconds: 12.2 });
    expect(status.readinessCheck.check()).toEqual({
      ready: false,
      detail: 'training the small starter model: step 10/20, loss 3.21, about 13 s left',
      progress: 0.5,
    });
    status.failed(new Error('disk full'));
    expect(status.readinessCheck.check()).toMatchObject({ ready: false, detail: expect.stringMatching(/disk full/) });
  });
});
