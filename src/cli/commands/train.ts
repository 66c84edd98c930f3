import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { createGgufTokenizer, isGgufFile, readLlamaBase } from '../../gguf/index.ts';
import type { LoraTarget, TrainingJobInput } from '../../train/index.ts';
import {
  ensureStarterModel,
  exportLoraGguf,
  readModelCheckpoint,
  runTraining,
  tokenizerFromMetadata,
} from '../../train/index.ts';
import { configFrom } from '../options.ts';

function progressBar(label: string): {
  update(step: number, steps: number, loss: number, eta: number): void;
  stop(): void;
} {
  const bar = new SingleBar({
    format: `${label} [{bar}] {value}/{total} steps | loss {loss} | ETA {eta_s}s`,
    stream: process.stderr,
    hideCursor: true,
  });
  let started = false;
  return {
    update(step, steps, loss, eta) {
      if (!started) {
        bar.start(steps, 0, { loss: '-', eta_s: '?' });
        started = true;
      }
      bar.update(step, { loss: loss.toFixed(3), eta_s: Math.ceil(eta) });
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

function interruptSignal(): AbortSignal {
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  return controller.signal;
}

export function registerTrainCommand(program: Command): void {
  const train = program.command('train').description('train models on this machine (ggml through FFI)');
  train
    .command('starter')
    .description('train (or reuse) the small starter model from the bundled corpus and print its GGUF path')
    .action(async (_options, command: Command) => {
      const { config } = configFrom(command);
      const bar = progressBar('starter model');
      try {
        const model = await ensureStarterModel({
          dataDir: config.dataDir,
          threads: config.trainer.threads,
          steps: config.trainer.starter.steps,
          signal: interruptSignal(),
          onProgress: (p) => {
            if (p.phase === 'training') bar.update(p.step ?? 0, p.steps ?? 0, p.loss ?? 0, p.etaSeconds ?? 0);
          },
        });
        bar.stop();
        process.stdout.write(`${model.modelPath}\n`);
        process.stderr.write(
          `${model.reused ? 'reused' : 'trained'}; serve it with: bertha up --model ${model.modelPath}\n`,
        );
      } finally {
        bar.stop();
      }
    });
  train
    .command('lora <textFile>')
    .description(
      'fine-tune a LoRA adapter on a text file over a llama GGUF (kept frozen in its stored type) or a Bertha checkpoint (default: the starter model)',
    )
    .option('--base <model>', 'llama GGUF or Bertha checkpoint (.safetensors) to adapt; default: the starter model')
    .option('-o, --output <dir>', 'folder for adapter.gguf', '.')
    .option('--steps <n>', 'optimizer steps', '100')
    .option('--rank <r>', 'LoRA rank', '8')
    .option('--alpha <a>', 'LoRA alpha', '16')
    .option('--lr <rate>', 'learning rate', '1e-2')
    .action(
      async (
        textFile: string,
        options: { base?: string; output: string; steps: string; rank: string; alpha: string; lr: string },
        command: Command,
      ) => {
        const { config } = configFrom(command);
        const signal = interruptSignal();
        const base =
          options.base ??
          (
            await ensureStarterModel({
              dataDir: config.dataDir,
              threads: config.trainer.threads,
              steps: config.trainer.starter.steps,
              signal,
            })
          ).checkpointPath;
        const text = await readFile(textFile, 'utf8');
        const output = path.resolve(options.output);
        await mkdir(output, { recursive: true });
        const tokensPath = path.join(output, 'train.tokens');
        const adapter = path.join(output, 'adapter.gguf');
        const targets: LoraTarget[] = ['attn_q', 'attn_v', 'ffn_up', 'ffn_down', 'output'];
        const common = {
          trainTokens: tokensPath,
          steps: Number(options.steps),
          learningRate: Number(options.lr),
          threads: config.trainer.threads,
        };
        let job: TrainingJobInput;
        if (await isGgufFile(base)) {
          const llamaBase = await readLlamaBase(base, signal);
          const tokenizer = createGgufTokenizer(llamaBase.vocabulary);
          const tokens = Int32Array.from(tokenizer.tokenize(text, { addSpecial: true }));
          await writeFile(tokensPath, Buffer.from(tokens.buffer));
          job = {
            ...common,
            mode: 'gguf-lora',
            baseGguf: base,
            lora: {
              rank: Number(options.rank),
              alpha: Number(options.alpha),
              targets: targets.filter((t) => t !== 'output' || !llamaBase.tiedEmbeddings),
            },
            batchSize: config.trainer.retraining.batchSize,
            sequenceLength: Math.min(
              config.trainer.retraining.sequenceLength,
              llamaBase.hparams.nCtxTrain,
              Math.max(2, tokens.length - 1),
            ),
            output: adapter,
          };
        } else {
          const { metadata, config: modelConfig } = await readModelCheckpoint(base);
          const tokens = Int32Array.from(tokenizerFromMetadata(metadata).encode(text));
          await writeFile(tokensPath, Buffer.from(tokens.buffer));
          job = {
            ...common,
            mode: 'lora',
            base,
            lora: { rank: Number(options.rank), alpha: Number(options.alpha), targets },
            batchSize: 4,
            sequenceLength: Math.min(modelConfig.contextLength, Math.max(2, tokens.length - 1)),
            output: path.join(output, 'adapter.safetensors'),
          };
        }
        const bar = progressBar('LoRA');
        try {
          const result = await runTraining(job, {
            signal,
            onProgress: (p) => bar.update(p.step, p.steps, p.loss, p.etaSeconds),
          });
          bar.stop();
          if (job.mode === 'lora') await exportLoraGguf(result.output, adapter);
          await rm(tokensPath);
          process.stdout.write(`${adapter}\n`);
          process.stderr.write(
            `final loss ${result.finalLoss.toFixed(3)}, ${result.tokensPerSecond.toFixed(0)} tokens/s, peak memory ${(result.peakRssBytes / 2 ** 20).toFixed(0)} MiB\n`,
          );
        } finally {
          bar.stop();
        }
      },
    );
}
