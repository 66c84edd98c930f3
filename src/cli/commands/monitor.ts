import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { gatewayToken, renderMonitoring } from '../../monitor/index.ts';
import { configFrom } from '../options.ts';

export function registerMonitorCommand(program: Command): void {
  const monitor = program.command('monitor').description('monitoring as code: Prometheus, Alertmanager, Grafana');
  monitor
    .command('render')
    .description('write Prometheus rules + config, Alertmanager config, Grafana dashboard and Kubernetes resources')
    .option('-o, --out <dir>', 'output folder (default: <dataDir>/monitor)')
    .action((options: { out?: string }, command: Command) => {
      const { config } = configFrom(command);
      const out = path.resolve(options.out ?? path.join(config.dataDir, 'monitor'));
      const token = gatewayToken({ configured: config.monitor.gateway.token, dataDir: config.dataDir });
      for (const file of renderMonitoring(config, { berthaUrl: config.monitor.berthaUrl, token })) {
        const target = path.join(out, file.path);
        mkdirSync(path.dirname(target), { recursive: true });
        writeFileSync(target, file.content, { mode: file.secret ? 0o600 : 0o644 });
        if (file.secret) chmodSync(target, 0o600);
        process.stdout.write(`${target}\n`);
      }
    });
}
