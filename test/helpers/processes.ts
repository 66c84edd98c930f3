import { type ChildProcess, spawn } from 'node:child_process';
import { onTestFinished } from 'vitest';

export { freePort } from './free-port.ts';

export interface ServiceProcess {
  child: ChildProcess;
  output(): string;
}

/** Starts a long-running binary, keeps its output for failure messages, stops it when the test ends. */
export function startService(command: string, args: string[]): ServiceProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  onTestFinished(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  });
  return { child, output: () => output };
}

/** Polls `probe` until it returns a value other than undefined, or fails with `describe()` after the deadline. */
export async function waitFor<T>(
  probe: () => Promise<T | undefined>,
  options: { timeoutMs: number; what: string; describe?: () => string },
): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${options.timeoutMs} ms waiting for ${options.what}\n${options.describe?.() ?? ''}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
