import type { Command } from 'commander';
import type { Run } from '../../tracking/index.ts';
import { CHAMPION } from '../../tracking/index.ts';
import { configFrom } from '../options.ts';
import { openTrackingClient } from '../tracking-client.ts';

function formatMetric(value: unknown): string {
  return typeof value === 'number' ? String(Math.round(value * 10_000) / 10_000) : String(value ?? '');
}

/** Left-aligned columns, header first. */
export function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length))) ?? [];
  return `${rows
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')}\n`;
}

export function registerModelsCommand(program: Command): void {
  const models = program
    .command('models')
    .description('list registered model versions with their aliases, stage and key metrics')
    .option('-m, --model <name>', 'registered model (default: tracking.model)')
    .option('--metrics <keys>', 'comma-separated metric keys to show (default: every metric of the version run)')
    .option('--json', 'print JSON')
    .action(async (options: { model?: string; metrics?: string; json?: boolean }, command: Command) => {
      const { config } = configFrom(command);
      const name = options.model ?? config.tracking.model;
      const opened = await openTrackingClient(config);
      try {
        const versions = await opened.client.searchModelVersions(`name = '${name.replaceAll("'", "\\'")}'`);
        versions.sort((a, b) => Number(b.version) - Number(a.version));
        const runs = new Map<string, Run | undefined>();
        for (const version of versions) {
          if (!version.run_id || runs.has(version.run_id)) continue;
          try {
            runs.set(version.run_id, await opened.client.getRun(version.run_id));
          } catch (error) {
            // The run may live on another tracking server (run_link); the version is still listed.
            process.stderr.write(`version ${version.version}: run ${version.run_id}: ${(error as Error).message}\n`);
            runs.set(version.run_id, undefined);
          }
        }
        const metricOf = (runId: string | undefined) =>
          Object.fromEntries(
            (runId ? (runs.get(runId)?.data.metrics ?? []) : []).map((metric) => [metric.key, metric.value]),
          );
        const keys = options.metrics
          ? options.metrics
              .split(',')
              .map((key) => key.trim())
              .filter(Boolean)
          : [...new Set(versions.flatMap((version) => Object.keys(metricOf(version.run_id))))].sort();
        if (options.json) {
          const out = versions.map((version) => ({ ...version, metrics: metricOf(version.run_id) }));
          process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
          return;
        }
        if (versions.length === 0) {
          process.stdout.write(`no versions of ${name} in ${opened.target}\n`);
          return;
        }
        const rows = [['VERSION', 'ALIASES', 'STAGE', 'CREATED', 'RUN', ...keys]];
        for (const version of versions) {
          const metrics = metricOf(version.run_id);
          rows.push([
            version.version,
            version.aliases.join(',') || '-',
            version.current_stage,
            new Date(version.creation_timestamp).toISOString().slice(0, 19).replace('T', ' '),
            version.run_id?.slice(0, 8) ?? '-',
            ...keys.map((key) => formatMetric(metrics[key])),
          ]);
        }
        process.stdout.write(`${name} (${opened.target})\n${table(rows)}`);
      } finally {
        await opened.close();
      }
    });

  models
    .command('promote <version>')
    .description('point an alias (default: champion) at a model version; the chat service swaps to it')
    .option('-m, --model <name>', 'registered model (default: tracking.model)')
    .option('-a, --alias <alias>', 'alias to move', CHAMPION)
    .action(async (version: string, options: { model?: string; alias: string }, command: Command) => {
      const { config } = configFrom(command);
      const name = options.model ?? config.tracking.model;
      const opened = await openTrackingClient(config);
      try {
        const before = await opened.client.getVersionByAlias(name, options.alias);
        await opened.client.setAlias(name, options.alias, version);
        process.stdout.write(`${name}: ${options.alias} ${before ? `${before.version} -> ` : ''}${version}\n`);
      } finally {
        await opened.close();
      }
    });
}
