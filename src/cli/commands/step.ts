import { hostname } from 'node:os';
import type { Command } from 'commander';
import { createBertha } from '../../app.ts';
import { runOneStep } from '../../pipelines/index.ts';
import { configFrom } from '../options.ts';
import { pairs } from './pipeline.ts';

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function registerStepCommand(program: Command): void {
  program
    .command('step <pipeline> <step>')
    .description('execute one step of a run exactly as the local runner would (what each Argo pod runs)')
    .requiredOption('--run <id>', 'the run id (under Argo: the workflow name); created on first use')
    .option('--param <key=value>', 'a run parameter (repeatable)', collect)
    .option(
      '--input <name=key>',
      'the object key of an input artifact (repeatable); default: looked up in the run',
      collect,
    )
    .option('--outputs-dir <dir>', 'write one file per output artifact holding its object key')
    .option('--single-attempt', 'run one attempt and leave retries to the caller (Argo retryStrategy)')
    .action(
      async (
        pipeline: string,
        step: string,
        options: { run: string; param?: string[]; input?: string[]; outputsDir?: string; singleAttempt?: boolean },
        command: Command,
      ) => {
        const { config } = configFrom(command);
        const bertha = await createBertha(config, { serveChat: false });
        const controller = new AbortController();
        const onSignal = () => controller.abort({ kind: 'cancel' });
        process.once('SIGTERM', onSignal);
        process.once('SIGINT', onSignal);
        try {
          const outcome = await runOneStep({
            catalog: bertha.pipelines.catalog,
            store: bertha.pipelines.store,
            objects: bertha.objects,
            logger: bertha.logger.child({ component: 'pipelines' }),
            pipeline,
            step,
            runId: options.run,
            params: pairs(options.param, '--param'),
            inputKeys: pairs(options.input, '--input'),
            outputsDir: options.outputsDir,
            singleAttempt: options.singleAttempt === true,
            owner: `step:${hostname()}:${process.pid}`,
            signal: controller.signal,
          });
          process.stderr.write(
            `${pipeline}/${step} ${outcome.status}${outcome.status === 'failed' ? `: ${outcome.error}` : ''}\n`,
          );
          if (outcome.status !== 'succeeded') process.exitCode = 1;
        } finally {
          process.off('SIGTERM', onSignal);
          process.off('SIGINT', onSignal);
          await bertha.close();
        }
      },
    );
}
