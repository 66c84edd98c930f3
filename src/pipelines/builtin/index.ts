import type { KnowledgeDeps } from '../../knowledge/index.ts';
import type { PipelineDefinition } from '../definition.ts';
import type { StepHandler } from '../handlers.ts';
import { llmRetraining, llmRetrainingHandlers, type RetrainingDeps } from './llm-retraining.ts';

export { loopRunTiming } from './loop-timing.ts';

import { vectorIngestion, vectorIngestionHandlers } from './vector-ingestion.ts';

/**
 * The pipelines Bertha ships. Only pipelines whose every step does its real work are listed:
 * `llm-retraining` runs build-dataset -> (prompt-challenger | retrain-model -> log-model) ->
 * benchmark (with the hallucination, fact-check and subject-matter evaluations) -> gate -> deploy.
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
  /** Database, tracking, registry and trainer settings of `llm-retraining`; without them it is not offered. */
  retraining?: (() => RetrainingDeps) | undefined;
}

export function builtinPipelines(deps: BuiltinPipelineDeps): BuiltinPipelines {
  const definitions: PipelineDefinition[] = [];
  let handlers: Record<string, StepHandler> = {};
  if (deps.knowledge) {
    definitions.push(vectorIngestion);
    handlers = { ...handlers, ...vectorIngestionHandlers(deps.knowledge) };
  }
  if (deps.retraining) {
    definitions.push(llmRetraining);
    handlers = { ...handlers, ...llmRetrainingHandlers(deps.retraining) };
  }
  return { definitions, handlers };
}
