import { NotFoundError } from '../core/errors.ts';
import type { PipelineCatalog } from './catalog.ts';
import type { PipelineDefinition } from './definition.ts';
import type { ArtifactRecord, AttemptRecord, RunRecord, RunStore, StepRecord } from './store.ts';

export interface StepState extends StepRecord {
  dependsOn: string[];
  inputs: Record<string, string>;
  outputs: string[];
  artifacts: ArtifactRecord[];
  attemptHistory: AttemptRecord[];
}

export interface RunDetail {
  run: RunRecord;
  /** Steps in the pipeline's topological order, each with its place in the DAG and its state. */
  steps: StepState[];
  /** Fraction of steps done (succeeded), running steps counted by their own progress. */
  progress: number;
}

export function describePipeline(definition: PipelineDefinition) {
  return {
    name: definition.name,
    description: definition.description,
    params: definition.params,
    steps: definition.steps.map((step) => ({
      name: step.name,
      description: step.description,
      dependsOn: step.dependsOn,
      params: step.params,
      inputs: Object.fromEntries(
        Object.entries(step.inputs).map(([name, ref]) => [name, `${ref.from}.${ref.artifact}`]),
      ),
      outputs: step.outputs,
      retry: step.retry,
      timeoutMs: step.timeoutMs,
      cacheKey: step.cacheKey ?? null,
    })),
  };
}

export function runProgress(steps: StepRecord[]): number {
  if (steps.length === 0) return 0;
  const done = steps.reduce(
    (sum, step) => sum + (step.status === 'succeeded' ? 1 : step.status === 'running' ? (step.progress ?? 0) : 0),
    0,
  );
  return done / steps.length;
}

export async function runDetail(store: RunStore, catalog: PipelineCatalog, runId: string): Promise<RunDetail> {
  const run = await store.getRun(runId);
  if (!run) throw new NotFoundError('run', runId);
  const [steps, artifacts, attempts] = await Promise.all([
    store.listSteps(runId),
    store.listArtifacts(runId),
    store.listAttempts(runId),
  ]);
  const definition = catalog.find(run.pipeline);
  const order = definition?.steps.map((step) => step.name) ?? steps.map((step) => step.name);
  const states = order.flatMap((name): StepState[] => {
    const record = steps.find((step) => step.name === name);
    if (!record) return [];
    const spec = definition?.steps.find((step) => step.name === name);
    return [
      {
        ...record,
        dependsOn: spec?.dependsOn ?? [],
        inputs: Object.fromEntries(
          Object.entries(spec?.inputs ?? {}).map(([input, ref]) => [input, `${ref.from}.${ref.artifact}`]),
        ),
        outputs: spec?.outputs ?? [],
        artifacts: artifacts.filter((artifact) => artifact.step === name),
        attemptHistory: attempts.filter((attempt) => attempt.step === name),
      },
    ];
  });
  return { run, steps: states, progress: runProgress(steps) };
}
