import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ModelBundle } from '../models/index.ts';
import { CHALLENGER, PROMPT_CHALLENGER } from './aliases.ts';
import type { ModelRegistry } from './registry.ts';
import type { RunLog } from './run-log.ts';

export const RETRAINING_EXPERIMENT = 'llm-retraining';

export interface RegisterRetrainedDeps {
  runs: RunLog;
  registry: ModelRegistry;
  /** The chat service loads local files: the model is kept under the data dir, keyed by pipeline run. */
  dataDir: string;
  /** Registered model the version is added to (`config.tracking.model`). */
  model: string;
  retrievalTopK: number;
}

/** A retrained model and what went into it, as the train capability describes it. */
export interface RetrainedModel {
  pipelineRunId: string;
  dataset: {
    version: string;
    manifestKey: string;
    window: { from: string; to: string };
    trackingRunId: string;
    counts: Record<string, number>;
  };
  /** `adapter`: `body` is a LoRA GGUF on `baseGguf`; `model`: a whole GGUF. */
  kind: 'adapter' | 'model';
  baseGguf: string;
  parentVersion: string;
  params: Record<string, string | number>;
  metrics: Record<string, number>;
  /** Per-step series (`train_loss`, `valid_loss`), logged as metric history. */
  curves?: Record<string, { step: number; value: number }[]> | undefined;
  body: Buffer;
}

/** The tracking run and registry version a retrained model became. */
export interface RegisteredRetraining {
  trackingRunId: string;
  name: string;
  version: string;
  alias: string;
  /** How the challenger differs from its parent: new weights (a LoRA adapter or a whole model) or a prompt. */
  arm: 'adapter' | 'model' | 'prompt';
  /** The model file kept under the data dir (absent for the prompt arm). */
  modelPath?: string;
}

/**
 * Records a retrained model: a tracking run with its params, metrics, dataset and model file,
 * then a registry version whose bundle serves it, aliased `challenger`.
 */
export async function registerRetrained(
  deps: RegisterRetrainedDeps,
  trained: RetrainedModel,
): Promise<RegisteredRetraining> {
  const { dataset } = trained;
  const file = trained.kind === 'adapter' ? 'adapter.gguf' : 'model.gguf';
  const modelPath = path.join(deps.dataDir, 'models', RETRAINING_EXPERIMENT, trained.pipelineRunId, file);
  await mkdir(path.dirname(modelPath), { recursive: true });
  await writeFile(modelPath, trained.body);

  const runs = deps.runs;
  const runId = await runs.startRun({
    experiment: RETRAINING_EXPERIMENT,
    runName: `retrain-${dataset.version}`,
    tags: {
      'bertha.pipeline_run': trained.pipelineRunId,
      'bertha.parent_version': trained.parentVersion,
      'bertha.dataset_run': dataset.trackingRunId,
    },
  });
  await runs.log(runId, {
    params: {
      dataset_version: dataset.version,
      window_from: dataset.window.from,
      window_to: dataset.window.to,
      base_gguf: trained.baseGguf,
      parent_version: trained.parentVersion,
      ...trained.params,
    },
    metrics: {
      ...Object.fromEntries(Object.entries(dataset.counts).map(([key, value]) => [`examples_${key}`, value])),
      ...trained.metrics,
    },
    ...(trained.curves ? { history: trained.curves } : {}),
  });
  await runs.logInputs(runId, [
    {
      name: 'bertha-feedback-knowledge',
      digest: dataset.version,
      source: path.posix.dirname(dataset.manifestKey),
      context: 'training',
    },
  ]);
  await runs.logArtifact(runId, file, trained.body);

  const registered = await registerVersion(deps, {
    runId,
    alias: CHALLENGER,
    bundle: {
      base: { kind: 'gguf', path: trained.kind === 'adapter' ? trained.baseGguf : modelPath },
      adapters: trained.kind === 'adapter' ? [{ path: modelPath, scale: 1 }] : [],
      generation: {},
      retrieval: { enabled: true, topK: deps.retrievalTopK },
      lineage: {
        runId,
        trainingDataSnapshot: dataset.manifestKey,
        feedbackWindow: dataset.window,
        parentVersion: trained.parentVersion,
      },
    },
    description: `retrained on dataset ${dataset.version} (feedback ${dataset.window.from} .. ${dataset.window.to})`,
    tags: {
      'bertha.arm': trained.kind,
      'bertha.dataset_version': dataset.version,
      'bertha.pipeline_run': trained.pipelineRunId,
    },
  });
  await runs.endRun(runId);
  return { ...registered, arm: trained.kind, modelPath };
}

/** The few-shot arm: the base model unchanged, its system prompt showing approved answers. */
export interface PromptChallenger {
  pipelineRunId: string;
  dataset: RetrainedModel['dataset'];
  base: ModelBundle;
  systemPrompt: string;
  /** Dataset example ids the prompt shows. */
  exampleIds: string[];
}

/**
 * Records the in-context arm: a tracking run with its prompt as an artifact, and a registry
 * version with the base's bundle and the new system prompt, aliased `challenger-prompt`.
 */
export async function registerPromptChallenger(
  deps: RegisterRetrainedDeps,
  challenger: PromptChallenger,
): Promise<RegisteredRetraining> {
  const { dataset, base } = challenger;
  const runs = deps.runs;
  const runId = await runs.startRun({
    experiment: RETRAINING_EXPERIMENT,
    runName: `prompt-${dataset.version}`,
    tags: {
      'bertha.pipeline_run': challenger.pipelineRunId,
      'bertha.parent_version': base.version,
      'bertha.dataset_run': dataset.trackingRunId,
      'bertha.arm': 'prompt',
    },
  });
  await runs.log(runId, {
    params: {
      arm: 'prompt',
      dataset_version: dataset.version,
      parent_version: base.version,
      examples: challenger.exampleIds.length,
      example_ids: challenger.exampleIds.join(',').slice(0, 6000),
    },
  });
  await runs.logArtifact(runId, 'system-prompt.txt', Buffer.from(challenger.systemPrompt));
  const { version: _version, lineage: _lineage, eval: _eval, ...rest } = base;
  const registered = await registerVersion(deps, {
    runId,
    alias: PROMPT_CHALLENGER,
    bundle: {
      ...rest,
      systemPrompt: challenger.systemPrompt,
      lineage: {
        runId,
        trainingDataSnapshot: dataset.manifestKey,
        feedbackWindow: dataset.window,
        parentVersion: base.version,
      },
    },
    description: `${base.version} with ${challenger.exampleIds.length} approved answers from dataset ${dataset.version} in its prompt`,
    tags: {
      'bertha.arm': 'prompt',
      'bertha.dataset_version': dataset.version,
      'bertha.pipeline_run': challenger.pipelineRunId,
    },
  });
  await runs.endRun(runId);
  return { ...registered, arm: 'prompt' };
}

async function registerVersion(
  deps: RegisterRetrainedDeps,
  input: {
    runId: string;
    alias: string;
    bundle: Omit<ModelBundle, 'version'>;
    description: string;
    tags: Record<string, string>;
  },
): Promise<Pick<RegisteredRetraining, 'trackingRunId' | 'name' | 'version' | 'alias'>> {
  const version = await deps.registry.registerBundle({
    name: deps.model,
    bundle: input.bundle,
    runId: input.runId,
    description: input.description,
    tags: Object.entries({ ...input.tags, 'bertha.tracking_target': deps.runs.target }).map(([key, value]) => ({
      key,
      value,
    })),
  });
  await deps.registry.setAlias(deps.model, input.alias, version.version);
  return { trackingRunId: input.runId, name: deps.model, version: version.version, alias: input.alias };
}
