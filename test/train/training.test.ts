import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readCheckpoint } from '../../src/train/checkpoint.ts';
import { randomInit, type TrainingProgress } from '../../src/train/job.ts';
import { parseLlamaConfig } from '../../src/train/model.ts';
import { runTraining, TrainingCancelledError, TrainingFailedError } from '../../src/train/supervisor.ts';
import { tempDir } from '../helpers/temp.ts';

const model = {
  vocabSize: 256,
  contextLength: 32,
  embeddingLength: 32,
  blockCount: 1,
  headCount: 2,
  feedForwardLength: 64,
};
const TEXT = `Bertha serves a local model, collects feedback, monitors quality and retrains.
The loop closes when a retrained model beats the champion on the evaluation set.
`.repeat(12);

async function byteTokens(dir: string, name: string, text: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, Buffer.from(Int32Array.from(Buffer.from(text, 'utf8')).buffer));
  return file;
}

const common = { batchSize: 2, sequenceLength: 32, learningRate: 1e-2, threads: 1 } as const;

describe('training in a supervised child process', () => {
  it('trains every tensor of a Llama model from random init and lowers the validation loss', async () => {
    const dir = tempDir();
    const trainTokens = await byteTokens(dir, 'train.bin', TEXT);
    const validTokens = await byteTokens(dir, 'valid.bin', TEXT.slice(0, 400));
    const progress: TrainingProgress[] = [];
    const output = path.join(dir, 'model.safetensors');
    const result = await runTraining(
      { mode: 'full', model, trainTokens, validTokens, steps: 40, seed: 7, output, ...common },
      { onProgress: (p) => progress.push(p) },
    );
    expect(progress.map((p) => p.step)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(progress.at(-1)?.tokensPerSecond).toBeGreaterThan(0);
    expect(result.finalValidLoss).toBeLessThan((result.initialValidLoss as number) - 1);
    const trained = await readCheckpoint(output);
    const initial = randomInit(parseLlamaConfig(model), 7);
    expect([...trained.tensors.keys()].sort()).toEqual([...initial.keys()].sort());
    for (const [name, values] of initial) {
      const after = trained.tensors.get(name)?.data as Float32Array;
      expect(Buffer.from(after.buffer).equals(Buffer.from(values.buffer)), `${name} was trained`).toBe(false);
    }
  });

  it('trains LoRA adapters on a frozen base that stays bit-identical', async () => {
    const dir = tempDir();
    const trainTokens = await byteTokens(dir, 'train.bin', TEXT);
    const base = path.join(dir, 'base.safetensors');
    await runTraining({ mode: 'full', model, trainTokens, steps: 10, output: base, ...common });
    const baseBytes = await readFile(base);
    const adapterText =
      'Feedback turns into training data: thumbs up keeps an answer, a correction replaces it.\n'.repeat(10);
    const adapterTokens = await byteTokens(dir, 'adapter.bin', adapterText);
    const output = path.join(dir, 'adapter.safetensors');
    const result = await runTraining({
      mode: 'lora',
      base,
      lora: { rank: 4, alpha: 8, targets: ['attn_q', 'attn_v', 'ffn_down'] },
      trainTokens: adapterTokens,
      validTokens: adapterTokens,
      steps: 30,
      output,
      ...common,
    });
    expect(result.baseUnchanged).toBe(true);
    expect(result.trainableParameters).toBe(2 * 4 * (32 + 32) + 4 * (64 + 32));
    expect(result.finalValidLoss).toBeLessThan(result.initialValidLoss as number);
    expect((await readFile(base)).equals(baseBytes)).toBe(true);
    const adapter = await readCheckpoint(output);
    expect([...adapter.tensors.keys()]).toContain('blk.0.attn_q.weight.lora_b');
    expect(adapter.tensors.get('blk.0.attn_q.weight.lora_a')?.shape).toEqual([32, 4]);
  });

  it('stops when the signal aborts', async () => {
    const dir = tempDir();
    const trainTokens = await byteTokens(dir, 'train.bin', TEXT);
    const controller = new AbortController();
    const run = runTraining(
      { mode: 'full', model, trainTokens, steps: 100_000, output: path.join(dir, 'm.safetensors'), ...common },
      { signal: controller.signal, onProgress: (p) => p.step === 3 && controller.abort() },
    );
    await expect(run).rejects.toBeInstanceOf(TrainingCancelledError);
  });

  it('fails the job with the last log lines when the training process dies, not the caller', async () => {
    const dir = tempDir();
    const trainTokens = await byteTokens(dir, 'train.bin', TEXT);
    let pid = 0;
    const run = runTraining(
      { mode: 'full', model, trainTokens, steps: 100_000, output: path.join(dir, 'm.safetensors'), ...common },
      // SIGABRT is what a failed GGML_ASSERT raises.
      { onStart: (p) => (pid = p), onProgress: (p) => p.step === 2 && process.kill(pid, 'SIGABRT') },
    );
    const error = await run.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TrainingFailedError);
    const details = (error as TrainingFailedError).details as { signal: string; lastLines: string[] };
    expect(details.signal).toBe('SIGABRT');
    expect(details.lastLines.some((l) => l.startsWith('step 1/100000'))).toBe(true);
  });

  it('rejects shapes ggml would abort on before any ggml call', async () => {
    const dir = tempDir();
    const trainTokens = await byteTokens(dir, 'train.bin', TEXT);
    const output = path.join(dir, 'm.safetensors');
    await expect(
      runTraining({ mode: 'full', model: { ...model, headCount: 3 }, trainTokens, steps: 1, output, ...common }),
    ).rejects.toThrow(/multiple of headCount/);
    const error = await runTraining({
      mode: 'full',
      model: { ...model, vocabSize: 100 },
      trainTokens,
      steps: 1,
      output,
      ...common,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TrainingFailedError);
    expect((error as Error).message).toMatch(/outside the vocabulary/);
  });
});
