import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import YAML from 'yaml';
import { createBertha } from '../../app.ts';
import { BerthaError, ValidationError } from '../../core/errors.ts';
import { createLogger } from '../../core/logger.ts';
import { argoReferenceProblems, renderArgoManifests, strictSchemaProblems } from '../../pipelines/argo/index.ts';
import { configFrom } from '../options.ts';

export function registerDeployCommand(program: Command): void {
  const deploy = program.command('deploy').description('render deployment manifests for the scale-out engines');
  deploy
    .command('render')
    .description('write manifests for a target (argo: WorkflowTemplates, EventSources, Sensors, EventBus)')
    .requiredOption('--target <target>', 'what to render for: argo')
    .option('-o, --out <dir>', 'output folder', 'deploy/argo')
    .action(async (options: { target: string; out: string }, command: Command) => {
      if (options.target !== 'argo') throw new ValidationError(`unknown target '${options.target}' (known: argo)`);
      const { config } = configFrom(command);
      const bertha = await createBertha(config, { logger: createLogger('warn') });
      try {
        const manifests = renderArgoManifests(bertha.pipelines.catalog.list(), config.pipelines.argo);
        // Refuse to write what Argo would reject or silently ignore.
        const problems = [
          ...manifests.flatMap(({ file, manifest }) =>
            strictSchemaProblems(manifest).map((problem) => `${file}: ${problem}`),
          ),
          ...argoReferenceProblems(manifests),
        ];
        if (problems.length > 0) {
          throw new BerthaError('render_invalid', `rendered manifests are invalid:\n${problems.join('\n')}`, 500);
        }
        const out = path.resolve(options.out);
        await mkdir(out, { recursive: true });
        for (const { file, manifest } of manifests) {
          await writeFile(path.join(out, file), YAML.stringify(manifest));
          process.stdout.write(`${path.join(out, file)}\n`);
        }
      } finally {
        await bertha.close();
      }
    });
}
