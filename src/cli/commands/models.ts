import type { Command } from 'commander';
import type { Run } from '../../tracking/index.ts';
import { CHAMPION } from '../../tracking/index.ts';
import { configFrom } from '../options.ts';
import { table } from '../table.ts';
import { openRegistryClient, openTrackingClient } from '../tracking-client.ts';
import { openBerthaApi, rollBackChampion } from './rollout.ts';

/** Version tags the retraining pipeline's gate writes (docs/loop.md, "gate"). */
const GATE_DECISION_TAG = 'bertha.gate.decision';
const GATE_REASONS_TAG = 'bertha.gate.reasons';

function tagOf(version: { tags: { key: string; value: string }[] }, key: string): string | undefined {
  return version.tags.find((tag) => tag.key === key)?.value;
}

function formatMetric(value: unknown): string {
  return typeof value === 'number' ? String(Math.round(value * 10_000) / 10_000) : String(value ?? '');
}

export function registerModelsCommand(program: Command): void {
  const models = program
    .command('models')
    .description('list registered model versions with their aliases, gate decision, stage and key metrics')
    .option('-m, --model <name>', 'registered model (default: tracking.model)')
    .option('--metrics <keys>', 'comma-separated metric keys to show (default: every metric of the version run)')
    .option('--json', 'print JSON')
    .action(async (options: { model?: string; metrics?: string; json?: boolean }, command: Command) => {
      const { config } = configFrom(command);
      const name = options.model ?? config.tracking.model;
      const opened = await openRegistryClient(config);
      // With `tracking.uri` set, the versions' runs live on that MLflow.
      const tracker = config.tracking.uri ? await openTrackingClient(config) : opened;
      try {
        const versions = await opened.client.searchModelVersions(`name = '${name.replaceAll("'", "\\'")}'`);
        versions.sort((a, b) => Number(b.version) - Number(a.version));
        const runs = new Map<string, Run | undefined>();
        for (const version of versions) {
          if (!version.run_id || runs.has(version.run_id)) continue;
          try {
            runs.set(version.run_id, await tracker.client.getRun(version.run_id));
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
        const gateOf = (version: { tags: { key: string; value: string }[] }) => {
          const decision = tagOf(version, GATE_DECISION_TAG);
          return decision ? { decision, reasons: tagOf(version, GATE_REASONS_TAG) ?? '' } : undefined;
        };
        if (options.json) {
          const out = versions.map((version) => ({
            ...version,
            gate: gateOf(version) ?? null,
            metrics: metricOf(version.run_id),
          }));
          process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
          return;
        }
        if (versions.length === 0) {
          process.stdout.write(`no versions of ${name} in ${opened.target}\n`);
          return;
        }
        // The GATE column appears once a gate has judged a version (a plain MLflow registry has none).
        const gated = versions.some((version) => gateOf(version) !== undefined);
        const rows = [['VERSION', 'ALIASES', ...(gated ? ['GATE'] : []), 'STAGE', 'CREATED', 'RUN', ...keys]];
        for (const version of versions) {
          const metrics = metricOf(version.run_id);
          rows.push([
            version.version,
            version.aliases.join(',') || '-',
            ...(gated ? [gateOf(version)?.decision ?? '-'] : []),
            version.current_stage,
            new Date(version.creation_timestamp).toISOString().slice(0, 19).replace('T', ' '),
            version.run_id?.slice(0, 8) ?? '-',
            ...keys.map((key) => formatMetric(metrics[key])),
          ]);
        }
        process.stdout.write(`${name} (${opened.target})\n${table(rows)}\n`);
        const reasons = versions.flatMap((version) => {
          const gate = gateOf(version);
          return gate?.reasons ? [`  ${version.version}  ${gate.decision}: ${gate.reasons}`] : [];
        });
        if (reasons.length > 0) process.stdout.write(`gate reasons:\n${reasons.join('\n')}\n`);
      } finally {
        await opened.close();
        if (tracker !== opened) await tracker.close();
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
      const opened = await openRegistryClient(config);
      try {
        const before = await opened.client.getVersionByAlias(name, options.alias);
        await opened.client.setAlias(name, options.alias, version);
        process.stdout.write(`${name}: ${options.alias} ${before ? `${before.version} -> ` : ''}${version}\n`);
      } finally {
        await opened.close();
      }
    });

  models
    .command('rollback')
    .description(
      'roll back by hand: end the running canary, or with none running, move champion back to the version its promotion replaced',
    )
    .option('-r, --reason <text>', 'why, stored with the rollback decision', 'rolled back by hand')
    .option('--json', 'print the rollout as JSON')
    .action(async (options: { reason: string; json?: boolean }, command: Command) => {
      const { config } = configFrom(command);
      const api = await openBerthaApi(config);
      try {
        const { rollout, summary } = await rollBackChampion(api, config.tracking.model, options.reason);
        process.stdout.write(options.json ? `${JSON.stringify(rollout, null, 2)}\n` : `${summary}\n`);
      } finally {
        await api.close();
      }
    });
}
