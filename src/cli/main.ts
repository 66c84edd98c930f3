import { Command, Option } from 'commander';
import { BerthaError } from '../core/errors.ts';
import { BERTHA_VERSION } from '../core/version.ts';
import { registerAuthCommand } from './commands/auth.ts';
import { registerConfigCommand } from './commands/config.ts';
import { registerDeployCommand } from './commands/deploy.ts';
import { registerIngestCommand } from './commands/ingest.ts';
import { registerLineageCommand } from './commands/lineage.ts';
import { registerModelCommand } from './commands/model.ts';
import { registerModelsCommand } from './commands/models.ts';
import { registerMonitorCommand } from './commands/monitor.ts';
import { registerPipelineCommand } from './commands/pipeline.ts';
import { registerRolloutCommand } from './commands/rollout.ts';
import { registerRunsCommand } from './commands/runs.ts';
import { registerServeCommand } from './commands/serve.ts';
import { registerStepCommand } from './commands/step.ts';
import { registerTrainCommand } from './commands/train.ts';
import { registerUpCommand } from './commands/up.ts';
import { registerWorkerCommand } from './commands/worker.ts';

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function buildProgram(): Command {
  const program = new Command('bertha')
    .description('Bertha: closed-loop LLMOps (serve, collect feedback, monitor, retrain, evaluate, promote)')
    .version(BERTHA_VERSION)
    .addOption(
      new Option('-c, --config <file>', 'config file (default: ./bertha.yaml if present)').env('BERTHA_CONFIG'),
    )
    .option('-p, --port <port>', 'HTTP port (env BERTHA_PORT)')
    .option('--host <host>', 'HTTP host (env BERTHA_HOST)')
    .option('-d, --data-dir <dir>', 'where embedded state lives (env BERTHA_DATA_DIR, default ./.bertha)')
    .option('--set <key=value>', 'override any config key, e.g. --set log.level=debug (repeatable)', collect)
    .showHelpAfterError();
  registerUpCommand(program);
  registerServeCommand(program);
  registerWorkerCommand(program);
  registerConfigCommand(program);
  registerIngestCommand(program);
  registerAuthCommand(program);
  registerModelCommand(program);
  registerMonitorCommand(program);
  registerPipelineCommand(program);
  registerStepCommand(program);
  registerModelsCommand(program);
  registerRolloutCommand(program);
  registerRunsCommand(program);
  registerLineageCommand(program);
  registerDeployCommand(program);
  registerTrainCommand(program);
  return program;
}

try {
  await buildProgram().parseAsync(process.argv);
} catch (error) {
  if (BerthaError.isInstance(error)) {
    process.stderr.write(`bertha: ${error.message}\n`);
    process.exit(error.code === 'config_invalid' ? 78 : 1);
  }
  throw error;
}
