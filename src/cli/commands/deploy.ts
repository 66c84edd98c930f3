import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import YAML from 'yaml';
import { createBertha } from '../../app.ts';
import type { Config } from '../../config/index.ts';
import { BerthaError, ValidationError } from '../../core/errors.ts';
import { BERTHA_VERSION } from '../../core/version.ts';
import { imageForVersion, renderKubernetes } from '../../deploy/index.ts';
import { argoReferenceProblems, renderArgoManifests, strictSchemaProblems } from '../../pipelines/argo/index.ts';
import { cliLogger } from '../logger.ts';
import { configFrom } from '../options.ts';

interface RenderOptions {
  target: string;
  out?: string;
  image?: string;
  repoUrl?: string;
  revision: string;
  repoPath?: string;
}

const TARGETS = ['argo', 'k8s'];

async function writeFiles(out: string, files: { path: string; content: string }[]): Promise<void> {
  for (const file of files) {
    const target = path.join(out, file.path);
    await mkdir(path.dirname(target), { recursive: true });
    await writeFile(target, file.content);
    process.stdout.write(`${target}\n`);
  }
}

/** The pipeline definitions the local runner runs, from a Bertha that serves nothing. */
async function withDefinitions<T>(
  config: Config,
  work: (definitions: Parameters<typeof renderArgoManifests>[0]) => Promise<T>,
): Promise<T> {
  const bertha = await createBertha(config, { logger: cliLogger('warn'), serveChat: false });
  try {
    return await work(bertha.pipelines.catalog.list());
  } finally {
    await bertha.close();
  }
}

async function renderArgo(config: Config, out: string): Promise<void> {
  await withDefinitions(config, async (definitions) => {
    const manifests = renderArgoManifests(definitions, {
      ...config.pipelines.argo,
      uploadsPrefix: `${config.objects.s3.prefix}${config.objects.documentsPrefix}`,
    });
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
    await writeFiles(
      out,
      manifests.map(({ file, manifest }) => ({ path: file, content: YAML.stringify(manifest) })),
    );
  });
}

async function renderK8s(config: Config, out: string, options: RenderOptions): Promise<void> {
  if (!options.repoUrl) {
    throw new ValidationError(
      '--repo-url is required for --target k8s: the Git repository ArgoCD syncs the overlays from',
    );
  }
  const image = options.image ?? imageForVersion(config.pipelines.argo.image, BERTHA_VERSION);
  const { files, notes } = await withDefinitions(config, async (definitions) =>
    renderKubernetes({
      config,
      definitions,
      image,
      git: {
        repoUrl: options.repoUrl as string,
        revision: options.revision,
        path: options.repoPath ?? options.out ?? 'deploy/k8s',
      },
    }),
  );
  await writeFiles(out, files);
  process.stderr.write(`image: ${image}\n${notes.map((note) => `note: ${note}\n`).join('')}`);
}

export function registerDeployCommand(program: Command): void {
  const deploy = program.command('deploy').description('render deployment manifests for the scale-out engines');
  deploy
    .command('render')
    .description(
      'write manifests for a target (argo: WorkflowTemplates, EventSources, Sensors, EventBus; k8s: a kustomize base, dev/staging/prod overlays and ArgoCD Applications)',
    )
    .requiredOption('--target <target>', `what to render for: ${TARGETS.join(', ')}`)
    .option('-o, --out <dir>', 'output folder (default deploy/<target>)')
    .option(
      '--image <ref>',
      'k8s: the image with a pinned tag or digest (default pipelines.argo.image at this version)',
    )
    .option('--repo-url <url>', 'k8s: the Git repository ArgoCD syncs from')
    .option('--revision <rev>', 'k8s: the branch, tag or commit ArgoCD follows', 'HEAD')
    .option('--repo-path <path>', 'k8s: the output folder inside that repository (default: --out as given)')
    .action(async (options: RenderOptions, command: Command) => {
      if (!TARGETS.includes(options.target)) {
        throw new ValidationError(`unknown target '${options.target}' (known: ${TARGETS.join(', ')})`);
      }
      const { config } = configFrom(command);
      const out = path.resolve(options.out ?? `deploy/${options.target}`);
      if (options.target === 'argo') await renderArgo(config, out);
      else await renderK8s(config, out, options);
    });
}
