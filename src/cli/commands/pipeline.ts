import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { type Bertha, createBertha } from '../../app.ts';
import { ValidationError } from '../../core/errors.ts';
import { type RunDetail, type RunRecord, runDetail, runProgress } from '../../pipelines/index.ts';
import { cliLogger } from '../logger.ts';
import { configFrom } from '../options.ts';
import { table } from '../table.ts';

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** `k=v` pairs from repeated flags. */
export function pairs(values: string[] | undefined, flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of values ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new ValidationError(`${flag} expects name=value, got '${pair}'`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

async function withBertha<T>(command: Command, work: (bertha: Bertha) => Promise<T>): Promise<T> {
  const { config } = configFrom(command);
  // The CLI's own log lines would interleave with its tables; warnings and errors still show.
  const bertha = await createBertha(config, {
    logger: cliLogger(config.log.level === 'info' ? 'warn' : config.log.level),
    serveChat: false,
  });
  try {
    return await work(bertha);
  } finally {
    await bertha.pipelines.runner.stop();
    await bertha.close();
  }
}

function bar(fraction: number, width = 20): string {
  const filled = Math.round(Math.max(0, Math.min(1, fraction)) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.round(fraction * 100)).padStart(3)}%`;
}

function duration(run: RunRecord): string {
  if (!run.startedAt) return '-';
  const ms = (run.finishedAt ? Date.parse(run.finishedAt) : Date.now()) - Date.parse(run.startedAt);
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms / 1000)}s`;
}

function printDetail(detail: RunDetail): void {
  const { run } = detail;
  process.stdout.write(
    `${run.id}  ${run.pipeline}  ${run.status}  ${bar(detail.progress)}  params ${JSON.stringify(run.params)}\n`,
  );
  if (run.error) process.stdout.write(`error: ${run.error}\n`);
  const rows = [['STEP', 'STATUS', 'ATTEMPTS', 'PROGRESS', 'AFTER', 'NOTE']];
  for (const step of detail.steps) {
    rows.push([
      step.name,
      step.status,
      String(step.attempts),
      step.status === 'succeeded' ? bar(1, 10) : bar(step.progress ?? 0, 10),
      step.dependsOn.join(',') || '-',
      step.error ??
        (step.status === 'running' ? step.progressMessage : null) ??
        (step.cachedFrom ? `cached from ${step.cachedFrom}` : ''),
    ]);
  }
  process.stdout.write(`${table(rows)}\n`);
}

export function registerPipelineCommand(program: Command): void {
  const pipeline = program.command('pipeline').description('list, run, follow, cancel and retry pipelines');

  pipeline
    .command('list')
    .description('list the pipelines this Bertha can run')
    .action(async (_options, command: Command) =>
      withBertha(command, async (bertha) => {
        const rows = [['PIPELINE', 'STEPS', 'PARAMS', 'DESCRIPTION']];
        for (const definition of bertha.pipelines.catalog.list()) {
          rows.push([
            definition.name,
            definition.steps.map((step) => step.name).join(' -> '),
            Object.keys(definition.params).join(',') || '-',
            definition.description,
          ]);
        }
        process.stdout.write(`${table(rows)}\n`);
      }),
    );

  pipeline
    .command('run <name>')
    .description('start a run (and execute it here, with a progress bar, unless --detach)')
    .option('--param <key=value>', 'a run parameter (repeatable)', collect)
    .option('--detach', 'only queue the run: a running `bertha up` executes it')
    .action(async (name: string, options: { param?: string[]; detach?: boolean }, command: Command) =>
      withBertha(command, async (bertha) => {
        const { runner, store, catalog } = bertha.pipelines;
        const run = await runner.startRun({ pipeline: name, params: pairs(options.param, '--param'), source: 'cli' });
        process.stdout.write(`${run.id}\n`);
        if (options.detach) return;
        runner.start();
        const progress = new SingleBar({
          format: `${name} [{bar}] {percentage}% | {status} {steps}`,
          hideCursor: true,
          stream: process.stderr,
        });
        progress.start(100, 0, { status: 'queued', steps: '' });
        let detail = await runDetail(store, catalog, run.id);
        while (detail.run.status === 'queued' || detail.run.status === 'running') {
          await new Promise((resolve) => setTimeout(resolve, 200));
          detail = await runDetail(store, catalog, run.id);
          const active = detail.steps.filter((step) => step.status === 'running').map((step) => step.name);
          progress.update(Math.round(detail.progress * 100), { status: detail.run.status, steps: active.join(',') });
        }
        progress.stop();
        printDetail(detail);
        if (detail.run.status !== 'succeeded') process.exitCode = 1;
      }),
    );

  pipeline
    .command('runs')
    .description('a live table of runs with their progress (Ctrl-C to leave)')
    .option('--pipeline <name>', 'only this pipeline')
    .option('--limit <n>', 'how many runs', '20')
    .option('--once', 'print the table once and exit')
    .action(async (options: { pipeline?: string; limit: string; once?: boolean }, command: Command) =>
      withBertha(command, async (bertha) => {
        const { store } = bertha.pipelines;
        const live = !options.once && process.stdout.isTTY === true;
        let stop = false;
        process.once('SIGINT', () => {
          stop = true;
        });
        do {
          const runs = await store.listRuns({ pipeline: options.pipeline, limit: Number(options.limit) });
          const rows = [['RUN', 'PIPELINE', 'STATUS', 'PROGRESS', 'STEP', 'SOURCE', 'DURATION']];
          for (const run of runs) {
            const steps = await store.listSteps(run.id);
            const current = steps.find((step) => step.status === 'running')?.name ?? '-';
            rows.push([run.id, run.pipeline, run.status, bar(runProgress(steps)), current, run.source, duration(run)]);
          }
          const text = `${table(rows)}\n`;
          process.stdout.write(live ? `\u001b[H\u001b[2J${text}` : text);
          if (live) await new Promise((resolve) => setTimeout(resolve, 500));
        } while (live && !stop);
      }),
    );

  pipeline
    .command('show <run>')
    .description('a run with the state of every step of its DAG')
    .option('--json', 'print JSON')
    .action(async (runId: string, options: { json?: boolean }, command: Command) =>
      withBertha(command, async (bertha) => {
        const detail = await runDetail(bertha.pipelines.store, bertha.pipelines.catalog, runId);
        if (options.json) process.stdout.write(`${JSON.stringify(detail, null, 2)}\n`);
        else printDetail(detail);
      }),
    );

  pipeline
    .command('logs <run>')
    .description("a run's step logs")
    .option('--step <name>', 'only this step')
    .option('-f, --follow', 'keep printing new lines until the run ends')
    .action(async (runId: string, options: { step?: string; follow?: boolean }, command: Command) =>
      withBertha(command, async (bertha) => {
        const { store, catalog } = bertha.pipelines;
        await runDetail(store, catalog, runId);
        let after: string | undefined;
        for (;;) {
          const lines = await store.listLogs(runId, {
            ...(options.step ? { step: options.step } : {}),
            ...(after ? { after } : {}),
          });
          for (const line of lines) {
            process.stdout.write(`${line.createdAt} ${line.step}#${line.attempt} ${line.level} ${line.message}\n`);
            after = line.id;
          }
          const run = await store.getRun(runId);
          if (!options.follow || (lines.length === 0 && run && !['queued', 'running'].includes(run.status))) break;
          if (lines.length === 0) await new Promise((resolve) => setTimeout(resolve, 200));
        }
      }),
    );

  pipeline
    .command('cancel <run>')
    .description('cancel a queued or running run')
    .action(async (runId: string, _options, command: Command) =>
      withBertha(command, async (bertha) => {
        const run = await bertha.pipelines.runner.cancel(runId);
        process.stdout.write(`${run.id} ${run.status}${run.status === 'cancelled' ? '' : ' (cancel requested)'}\n`);
      }),
    );

  pipeline
    .command('retry <run>')
    .description('re-queue a failed or cancelled run from a step (default: every step that did not succeed)')
    .option('--from <step>', 'the step to start again from; its downstream steps run again too')
    .action(async (runId: string, options: { from?: string }, command: Command) =>
      withBertha(command, async (bertha) => {
        const run = await bertha.pipelines.runner.retry(runId, options.from);
        process.stdout.write(`${run.id} ${run.status}\n`);
      }),
    );
}
