import type { Command } from 'commander';
import { NotFoundError } from '../../core/errors.ts';
import { configFrom } from '../options.ts';
import { table } from '../table.ts';
import { openTrackingClient } from '../tracking-client.ts';

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function registerRunsCommand(program: Command): void {
  program
    .command('runs')
    .description('search tracked runs (MLflow filter syntax) and compare their metrics side by side')
    .option('-e, --experiment <name>', 'experiment name (repeatable; default: every experiment)', collect)
    .option('-f, --filter <filter>', `MLflow filter, e.g. "metrics.gold_accuracy > 0.8 and params.lr = '1e-4'"`)
    .option('-o, --order-by <clause>', 'e.g. "metrics.gold_accuracy DESC" (repeatable)', collect)
    .option('-n, --max <n>', 'most runs to show', '20')
    .option('--metrics <keys>', 'comma-separated metric keys to compare (default: every metric found)')
    .option('--json', 'print JSON')
    .action(
      async (
        options: {
          experiment?: string[];
          filter?: string;
          orderBy?: string[];
          max: string;
          metrics?: string;
          json?: boolean;
        },
        command: Command,
      ) => {
        const { config } = configFrom(command);
        const opened = await openTrackingClient(config);
        try {
          let experimentIds: string[];
          if (options.experiment?.length) {
            experimentIds = [];
            for (const name of options.experiment) {
              const experiment = await opened.client.getExperimentByName(name);
              if (!experiment) throw new NotFoundError('experiment', name);
              experimentIds.push(experiment.experiment_id);
            }
          } else {
            const answer = await opened.client.call<{ experiments?: { experiment_id: string }[] }>(
              'POST',
              'experiments/search',
              {
                max_results: 1000,
              },
            );
            experimentIds = (answer.experiments ?? []).map((experiment) => experiment.experiment_id);
          }
          const { runs } = await opened.client.searchRuns({
            experimentIds,
            filter: options.filter,
            orderBy: options.orderBy,
            maxResults: Number(options.max),
          });
          if (options.json) {
            process.stdout.write(`${JSON.stringify(runs, null, 2)}\n`);
            return;
          }
          if (runs.length === 0) {
            process.stdout.write(`no runs match in ${opened.target}\n`);
            return;
          }
          const keys = options.metrics
            ? options.metrics
                .split(',')
                .map((key) => key.trim())
                .filter(Boolean)
            : [...new Set(runs.flatMap((run) => run.data.metrics.map((metric) => metric.key)))].sort();
          const rows = [['RUN', 'NAME', 'STATUS', 'STARTED', ...keys]];
          for (const run of runs) {
            const metrics = Object.fromEntries(run.data.metrics.map((metric) => [metric.key, metric.value]));
            rows.push([
              run.info.run_id.slice(0, 8),
              run.info.run_name,
              run.info.status,
              new Date(run.info.start_time).toISOString().slice(0, 19).replace('T', ' '),
              ...keys.map((key) => {
                const value = metrics[key];
                return typeof value === 'number' ? String(Math.round(value * 10_000) / 10_000) : String(value ?? '-');
              }),
            ]);
          }
          process.stdout.write(`${table(rows)}\n`);
        } finally {
          await opened.close();
        }
      },
    );
}
