import path from 'node:path';
import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { downloadModel } from '../../llm/download.ts';
import { configFrom } from '../options.ts';

export function registerModelCommand(program: Command): void {
  const model = program.command('model').description('manage local model files');
  model
    .command('pull <url>')
    .description('download a GGUF model with a progress bar and a SHA-256 check')
    .option('--sha256 <hex>', 'expected SHA-256 of the file; a mismatch deletes it and fails')
    .option('-o, --output <dir>', 'folder to put it in (default <dataDir>/models)')
    .action(async (url: string, options: { sha256?: string; output?: string }, command: Command) => {
      const { config } = configFrom(command);
      const dir = options.output ? path.resolve(options.output) : path.join(config.dataDir, 'models');
      const bar = new SingleBar({
        format: 'pulling [{bar}] {percentage}% | {received}/{size} MB',
        stream: process.stderr,
        hideCursor: true,
        // Logs and CI are not terminals: still print the bar there, once a second.
        noTTYOutput: true,
        notTTYSchedule: 1_000,
      });
      let started = false;
      const controller = new AbortController();
      process.once('SIGINT', () => controller.abort(new Error('interrupted')));
      const mb = (bytes: number) => (bytes / 1_048_576).toFixed(1);
      try {
        const result = await downloadModel({
          url,
          dir,
          sha256: options.sha256,
          signal: controller.signal,
          onProgress: (received, total) => {
            if (!started) {
              bar.start(total ?? 0, 0, { received: mb(0), size: total ? mb(total) : '?' });
              started = true;
            }
            bar.update(received, { received: mb(received) });
          },
        });
        if (started) bar.stop();
        process.stdout.write(`${result.path}\nsha256 ${result.sha256}\n${result.bytes} bytes\n`);
        process.stderr.write(`serve it with: bertha up --model ${result.path}\n`);
      } finally {
        if (started) bar.stop();
      }
    });
}
