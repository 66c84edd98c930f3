import type { Command } from 'commander';
import { runRole } from '../run-role.ts';

export function registerWorkerCommand(program: Command): void {
  program
    .command('worker')
    .description(
      'run pipelines, sensors, the quality watcher, rollouts and object change feeds beside `bertha serve` (HTTP: probes and /metrics only); needs events.bus: nats',
    )
    .action(async (_options: unknown, command: Command) => {
      await runRole(command, 'worker');
    });
}
