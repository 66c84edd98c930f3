import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { type CommandTrainerSpec, commandTrainerSchema } from '../config/index.ts';
import { BerthaError, ValidationError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { ModelBundle } from '../models/index.ts';

/**
 * The `command` trainer: runs any fine-tuning program (a GPU LoRA job for Llama 2 7B, say)
 * and takes what it leaves in the output folder. The contract is in docs/training.md:
 * argv placeholders `{train}`, `{valid}`, `{output}`, `{base}`; the program writes
 * `model.gguf` (a full model) or `adapter.gguf` (a LoRA adapter on `{base}`), optionally
 * `metrics.json`; JSON lines on stdout with a `step` field are progress.
 */

export interface CommandTrainerInputs {
  /** Training set (JSONL of {prompt, completion} / {text}, as build-dataset writes it). */
  train: string;
  valid?: string;
  /** Base model GGUF the adapter is trained on; required for `adapter.gguf` outputs. */
  base?: string;
  /** Empty or missing folder the program writes into. */
  output: string;
}

export interface CommandProgress {
  step: number;
  steps?: number;
  loss?: number;
  [key: string]: unknown;
}

export interface CommandTrainerResult {
  kind: 'model' | 'adapter';
  /** The GGUF the program produced. */
  path: string;
  /** What the chat service serves: the model, or the base plus the adapter. */
  bundle: Omit<ModelBundle, 'version'>;
  /** `metrics.json` when the program wrote one. */
  metrics: Record<string, number>;
  /** The program's last output lines. */
  lastLines: string[];
}

export class CommandTrainerError extends BerthaError {
  constructor(message: string, details: Record<string, unknown>) {
    super('command_trainer_failed', message, 500, details);
  }
}

const KEPT_LINES = 40;

export function expandCommand(command: readonly string[], inputs: CommandTrainerInputs): string[] {
  const values: Record<string, string | undefined> = {
    train: inputs.train,
    valid: inputs.valid,
    base: inputs.base,
    output: inputs.output,
  };
  return command.map((arg) =>
    arg.replace(/\{(train|valid|base|output)\}/g, (_, name: string) => {
      const value = values[name];
      if (value === undefined) throw new ValidationError(`the command uses {${name}}, which this run does not provide`);
      return value;
    }),
  );
}

async function ggufKind(file: string): Promise<'model' | 'adapter'> {
  // Imported here, not at load: node-llama-cpp takes over half a second to import.
  const { readGgufFileInfo } = await import('node-llama-cpp');
  const info = await readGgufFileInfo(file, { readTensorInfo: false, logWarnings: false });
  const general = (info.metadata as unknown as { general?: { type?: string } }).general;
  return general?.type === 'adapter' ? 'adapter' : 'model';
}

export async function runCommandTrainer(
  spec: CommandTrainerSpec,
  inputs: CommandTrainerInputs,
  options: { signal?: AbortSignal; onProgress?: (progress: CommandProgress) => void; logger?: Logger } = {},
): Promise<CommandTrainerResult> {
  const parsed = commandTrainerSchema.parse(spec);
  const argv = expandCommand(parsed.command, inputs);
  await mkdir(inputs.output, { recursive: true });
  const log = options.logger?.child({ component: 'command-trainer' });
  const lines: string[] = [];
  const [program, ...args] = argv as [string, ...string[]];
  log?.info({ argv }, 'running the training command');
  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    const child = spawn(program, args, {
      cwd: parsed.cwd ?? inputs.output,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(options.signal ? { signal: options.signal } : {}),
      timeout: parsed.timeoutMs,
      killSignal: 'SIGTERM',
    });
    let pending = '';
    const onData = (chunk: Buffer) => {
      pending += chunk.toString('utf8');
      const parts = pending.split('\n');
      pending = parts.pop() ?? '';
      for (const line of parts) {
        if (line.trim() === '') continue;
        lines.push(line);
        if (lines.length > KEPT_LINES) lines.shift();
        if (line.startsWith('{')) {
          try {
            const value = JSON.parse(line) as CommandProgress;
            if (typeof value.step === 'number') options.onProgress?.(value);
          } catch {
            // Not a progress record: an ordinary log line that happens to start with '{'.
          }
        }
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', (error) => {
      if (options.signal?.aborted) reject(new CommandTrainerError('the training command was cancelled', { argv }));
      else reject(new CommandTrainerError(`cannot run ${program}: ${error.message}`, { argv }));
    });
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  if (options.signal?.aborted)
    throw new CommandTrainerError('the training command was cancelled', { argv, lastLines: lines });
  if (exit.code !== 0) {
    throw new CommandTrainerError(
      `the training command failed (${exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`})`,
      { argv, ...exit, lastLines: lines },
    );
  }
  const files = new Set(await readdir(inputs.output));
  const produced = ['adapter.gguf', 'model.gguf'].find((f) => files.has(f));
  if (!produced) {
    throw new CommandTrainerError('the training command wrote neither model.gguf nor adapter.gguf', {
      argv,
      output: inputs.output,
      files: [...files],
      lastLines: lines,
    });
  }
  const file = path.join(inputs.output, produced);
  const kind = await ggufKind(file).catch((error: Error) => {
    throw new CommandTrainerError(`${file} is not a GGUF file: ${error.message}`, { argv, lastLines: lines });
  });
  if ((produced === 'adapter.gguf') !== (kind === 'adapter')) {
    throw new CommandTrainerError(`${produced} has general.type '${kind}'`, { file });
  }
  if (kind === 'adapter' && !inputs.base) {
    throw new CommandTrainerError('the command produced a LoRA adapter but the run has no base model', { file });
  }
  let metrics: Record<string, number> = {};
  if (files.has('metrics.json')) {
    const raw = JSON.parse(await readFile(path.join(inputs.output, 'metrics.json'), 'utf8')) as Record<string, unknown>;
    metrics = Object.fromEntries(Object.entries(raw).filter((e): e is [string, number] => typeof e[1] === 'number'));
  }
  const bytes = (await stat(file)).size;
  log?.info({ file, kind, bytes, metrics }, 'the training command produced a model');
  const bundle: Omit<ModelBundle, 'version'> =
    kind === 'adapter'
      ? {
          base: { kind: 'gguf', path: inputs.base as string },
          adapters: [{ path: file, scale: 1 }],
          generation: {},
          retrieval: { enabled: true, topK: 4 },
        }
      : {
          base: { kind: 'gguf', path: file },
          adapters: [],
          generation: {},
          retrieval: { enabled: true, topK: 4 },
        };
  return { kind, path: file, bundle, metrics, lastLines: lines };
}
