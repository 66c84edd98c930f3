import { BerthaError } from '../core/errors.ts';
import { runTrainingJob, type TrainingJobInput } from './job.ts';

/**
 * Entry of the training child process (started by `runTraining`). It receives one job over
 * IPC, streams progress back, writes a human-readable line per step on stdout (the
 * supervisor keeps the last lines for the failure report) and exits. ggml assertions abort
 * this process only.
 */
type Inbound = { type: 'start'; job: TrainingJobInput } | { type: 'stop' };

const send = (message: unknown): Promise<void> =>
  new Promise((resolve) => {
    if (!process.send) return resolve();
    process.send(message, undefined, {}, () => resolve());
  });

let stopping = false;
// The supervisor died (the server was killed): nobody will read the result.
process.on('disconnect', () => process.exit(1));
process.on('message', (message: Inbound) => {
  if (message.type === 'stop') {
    stopping = true;
    return;
  }
  runTrainingJob(
    message.job,
    (progress) => {
      const valid = progress.validLoss !== undefined ? ` valid ${progress.validLoss.toFixed(4)}` : '';
      process.stdout.write(
        `step ${progress.step}/${progress.steps} loss ${progress.loss.toFixed(4)}${valid} ${progress.tokensPerSecond.toFixed(0)} tok/s\n`,
      );
      void send({ type: 'progress', progress });
    },
    () => stopping,
  ).then(
    async (result) => {
      await send({ type: 'result', result });
      process.exit(0);
    },
    async (error: unknown) => {
      const e = error as Error;
      process.stderr.write(`training failed: ${e.stack ?? e.message}\n`);
      await send({
        type: 'error',
        error: { message: e.message, code: BerthaError.isInstance(e) ? e.code : 'training_failed' },
      });
      process.exit(1);
    },
  );
});
