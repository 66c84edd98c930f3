import type { KnowledgeDeps } from '../../knowledge/index.ts';
import type { PipelineDefinition } from '../definition.ts';
import type { StepHandler } from '../handlers.ts';
import { vectorIngestion, vectorIngestionHandlers } from './vector-ingestion.ts';

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

export interface BuiltinPipelineDeps {
  /**
   * The knowledge base's ingestion dependencies, resolved when a step runs (the vector store
   * may finish opening after start-up). Without them `vector-ingestion` is not offered.
   */
  knowledge?: (() => KnowledgeDeps) | undefined;
}

export function builtinPipelines(deps: BuiltinPipelineDeps): BuiltinPipelines {
  const definitions: PipelineDefinition[] = [];
  let handlers: Record<string, StepHandler> = {};
  if (deps.knowledge) {
    definitions.push(vectorIngestion);
    handlers = { ...handlers, ...vectorIngestionHandlers(deps.knowledge) };
  }
  return { definitions, handlers };
}
