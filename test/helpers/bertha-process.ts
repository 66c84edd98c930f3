import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { onTestFinished } from 'vitest';

const BIN = path.resolve('bin/bertha.js');

export interface BerthaProcess {
  child: ChildProcess;
  url: string;
  /** Everything the process printed so far. */
  output(): string;
  exited: Promise<number | null>;
}

/**
 * Starts `bertha up` as a user would (port 0: the OS picks one) and resolves once its
 * "bertha is up" log line names the URL. Killed when the test finishes.
 */
export function startBerthaProcess(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 60_000) {
  return startBerthaCommand('up', args, { env, timeoutMs });
}

export interface BerthaCommandOptions {
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** Registers the kill: `onTestFinished` by default; `afterAll` for processes a whole suite shares. */
  cleanup?: (stop: () => void) => void;
}

/** `startBerthaProcess` for any long-running command: `up`, `serve` or `worker`. */
export async function startBerthaCommand(
  command: 'up' | 'serve' | 'worker',
  args: string[],
  options: BerthaCommandOptions = {},
): Promise<BerthaProcess> {
  const { env = {}, timeoutMs = 60_000, cleanup = onTestFinished } = options;
  const child = spawn(process.execPath, [BIN, command, '--port', '0', ...args], {
    // The starter model trains for minutes on a fresh data dir; tests that want it turn it back on.
    env: { ...process.env, BERTHA_TRAINER_STARTER_ENABLED: 'false', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  cleanup(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`bertha did not start within ${timeoutMs} ms:\n${output}`)),
      timeoutMs,
    );
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /"url":"(http:\/\/[^"]+)".*"msg":"bertha is up"/.exec(output);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`bertha exited with ${code} before starting:\n${output}`));
    });
  });
  return { child, url, output: () => output, exited };
}
