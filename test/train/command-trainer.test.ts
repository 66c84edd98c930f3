import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { getLlama } from 'node-llama-cpp';
import { describe, expect, it } from 'vitest';
import { CommandTrainerError, runCommandTrainer } from '../../src/train/command.ts';
import { writeTinyLlama, writeTinyLora } from '../fixtures/tiny-llama.ts';
import { tempDir } from '../helpers/temp.ts';

/**
 * A stand-in for an external fine-tuning program (a GPU LoRA job in production): it reads the
 * dataset it is given, prints JSON progress lines, and writes an adapter GGUF and metrics.json.
 */
const FAKE_FINETUNE = `
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
const [train, valid, base, output, adapter] = process.argv.slice(2);
const examples = readFileSync(train, 'utf8').trim().split('\\n').length + readFileSync(valid, 'utf8').trim().split('\\n').length;
if (!readFileSync(base).subarray(0, 4).equals(Buffer.from('GGUF'))) process.exit(3);
for (let step = 1; step <= 3; step++) console.log(JSON.stringify({ step, steps: 3, loss: 2 / step }));
console.log('{not json: an ordinary log line');
copyFileSync(adapter, output + '/adapter.gguf');
writeFileSync(output + '/metrics.json', JSON.stringify({ examples, final_loss: 0.67, note: 'ignored' }));
`;

describe('the command trainer', () => {
  it('runs the command with the dataset, base and output paths and takes the adapter it produces', async () => {
    const dir = tempDir();
    const tiny = await writeTinyLlama(dir);
    const { adapterPath } = await writeTinyLora(dir, tiny.hparams);
    const script = path.join(dir, 'finetune.mjs');
    await writeFile(script, FAKE_FINETUNE);
    const train = path.join(dir, 'train.jsonl');
    const valid = path.join(dir, 'valid.jsonl');
    await writeFile(train, '{"prompt":"a","completion":"b"}\n{"prompt":"c","completion":"d"}\n');
    await writeFile(valid, '{"prompt":"e","completion":"f"}\n');
    const output = path.join(dir, 'out');
    const steps: number[] = [];
    const result = await runCommandTrainer(
      { command: [process.execPath, script, '{train}', '{valid}', '{base}', '{output}', adapterPath] },
      { train, valid, base: tiny.modelPath, output },
      { onProgress: (p) => steps.push(p.step) },
    );
    expect(steps).toEqual([1, 2, 3]);
    expect(result.kind).toBe('adapter');
    expect(result.path).toBe(path.join(output, 'adapter.gguf'));
    expect(result.metrics).toEqual({ examples: 3, final_loss: 0.67 });
    expect(result.bundle.base).toEqual({ kind: 'gguf', path: tiny.modelPath });
    expect(result.bundle.adapters).toEqual([{ path: result.path, scale: 1 }]);
    expect((await readFile(result.path)).equals(await readFile(adapterPath))).toBe(true);
    // What the command produced is servable: llama.cpp loads the base with the adapter.
    const llama = await getLlama({ build: 'never', gpu: false, maxThreads: 2 });
    const model = await llama.loadModel({ modelPath: tiny.modelPath });
    const context = await model.createContext({ contextSize: 64, lora: { adapters: [{ filePath: result.path }] } });
    await context.dispose();
    await model.dispose();
    await llama.dispose();
  });

  it('fails with the last output lines when the command fails or produces nothing', async () => {
    const dir = tempDir();
    const train = path.join(dir, 'train.jsonl');
    await writeFile(train, '{}\n');
    const failing = runCommandTrainer(
      { command: [process.execPath, '-e', "console.log('epoch 1 oom'); process.exit(7)", '{train}'] },
      { train, output: path.join(dir, 'a') },
    );
    const error = (await failing.catch((e: unknown) => e)) as CommandTrainerError;
    expect(error).toBeInstanceOf(CommandTrainerError);
    expect(error.message).toMatch(/exit code 7/);
    expect(error.details?.lastLines).toEqual(['epoch 1 oom']);
    await expect(
      runCommandTrainer({ command: [process.execPath, '-e', '0', '{train}'] }, { train, output: path.join(dir, 'b') }),
    ).rejects.toThrow(/neither model.gguf nor adapter.gguf/);
    await expect(
      runCommandTrainer({ command: [process.execPath, '{base}'] }, { train, output: path.join(dir, 'c') }),
    ).rejects.toThrow(/\{base\}/);
  });
});
