import type { PipelineDefinition } from '../definition.ts';
import type { StepHandler } from '../handlers.ts';

/**
 * The pipelines Bertha ships. Only pipelines whose every step does its real work are listed:
 * `llm-retraining` (build-dataset -> retrain-model -> {benchmark-gold, benchmark-specific} ->
 * log-metrics -> {hallucination-eval, factcheck-eval, subject-matter-eval} -> log-model -> gate
 * -> deploy) joins here as a definition plus its handlers once the trainer, evaluation and
 * tracking capabilities export those steps.
 */
export interface BuiltinPipelines {
  definitions: PipelineDefinition[];
  handlers: Record<string, StepHandler>;
}

export function builtinPipelines(): BuiltinPipelines {
  return { definitions: [], handlers: {} };
}
