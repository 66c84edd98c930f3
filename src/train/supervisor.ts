import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BerthaError, ValidationError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { type TrainingJobInput, type TrainingProgress, type TrainingResult, trainingJobSchema } from './job.ts';

export class TrainingFailedError extends BerthaError {
  constructor(message: string, details: Record<string, unknown>) {
    super('training_failed', message, 500, details);
  }
}

export class TrainingCancelledError extends BerthaError {
  constructor() {
    super('training_cancelled', 'training was cancelled', 499);
  }
}

export interface RunTrainingOptions {
  signal?: AbortSignal;
  onProgress?: (progress: TrainingProgress) => void;
  /** Called once the child process exists, with its pid (for the run log). */
  onStart?: (pid: number) => void;
  logger?: Logger;
}

const KEPT_LINES = 40;

type Outbound =
  | { type: 'progress'; progress: TrainingProgress }
  | { type: 'result'; result: TrainingResult }
  | { type: 'error'; error: { message: string; code: string } };

/**
 * Runs a training job in a child process: a failed ggml assertion aborts that process, and
 * this turns it into a `TrainingFailedError` carrying its last output lines. Aborting the
 * signal asks the child to stop after the current step; it is killed if it does not.
 */
export function runTraining(job: TrainingJobInput, options: RunTrainingOptions = {}): Promise<TrainingResult> {
  const parsed = trainingJobSchema.safeParse(job);
  if (!parsed.success) {
    return Promise.reject(
      new ValidationError(`invalid training job: ${parsed.error.issues.map((i) => i.message).join('; ')}`),
    );
  }
  if (options.signal?.aborted) return Promise.reject(new TrainingCancelledError());
  const log = options.logger?.child({ component: 'trainer' });
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(new URL('./worker.ts', import.meta.url)), [], {
      execArgv: ['--import', import.meta.resolve('tsx')],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      serialization: 'advanced',
    });
    const lines: string[] = [];
    const keep = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() === '') continue;
        lines.push(line);
        if (lines.length > KEPT_LINES) lines.shift();
      }
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    let result: TrainingResult | undefined;
    let reported: { message: string; code: string } | undefined;
    let cancelled = false;
    let killTimer: NodeJS.Timeout | undefined;
    const onAbort = () => {
      cancelled = true;
      child.send({ type: 'stop' });
      killTimer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('message', (message: Outbound) => {
      if (message.type === 'progress') options.onProgress?.(message.progress);
      else if (message.type === 'result') result = message.result;
      else reported = message.error;
    });
    child.once('spawn', () => {
      if (child.pid !== undefined) options.onStart?.(child.pid);
      log?.info({ pid: child.pid, mode: parsed.data.mode, steps: parsed.data.steps }, 'training started');
      child.send({ type: 'start', job: parsed.data });
    });
    child.once('error', (error) => {
      options.signal?.removeEventListener('abort', onAbort);
      reject(new TrainingFailedError(`could not start the training process: ${error.message}`, { lastLines: lines }));
    });
    child.once('close', (code, signal) => {
      clearTimeout(killTimer);
      options.signal?.removeEventListener('abort', onAbort);
      if (code === 0 && result) {
        log?.info({ result }, cancelled ? 'training stopped early' : 'training finished');
        if (cancelled) reject(new TrainingCancelledError());
        else resolve(result);
        return;
      }
      if (cancelled) return reject(new TrainingCancelledError());
      const why =
        reported?.message ??
        (signal ? `the training process was killed by ${signal}` : `the training process exited with ${code}`);
      log?.error({ code, signal, lastLines: lines }, 'training failed');
      reject(
        new TrainingFailedError(`training failed: ${why}`, {
          exitCode: code,
          signal,
          ...(reported ? { reason: reported.code } : {}),
          lastLines: [...lines],
        }),
      );
    });
  });
}
