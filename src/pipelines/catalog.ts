import { NotFoundError } from '../core/errors.ts';
import { type PipelineDefinition, PipelineDefinitionError } from './definition.ts';
import type { StepHandlerRegistry } from './handlers.ts';

/** The pipelines this Bertha can run: their definitions and the handlers behind every step. */
export interface PipelineCatalog {
  readonly handlers: StepHandlerRegistry;
  list(): PipelineDefinition[];
  find(name: string): PipelineDefinition | undefined;
  /** Throws NotFoundError (404) for an unknown pipeline. */
  get(name: string): PipelineDefinition;
}

export function createPipelineCatalog(
  definitions: PipelineDefinition[],
  handlers: StepHandlerRegistry,
): PipelineCatalog {
  const byName = new Map<string, PipelineDefinition>();
  for (const definition of definitions) {
    if (byName.has(definition.name)) throw new PipelineDefinitionError(definition.name, 'is defined twice');
    for (const step of definition.steps) {
      if (!handlers.has(step.handler)) {
        throw new PipelineDefinitionError(
          definition.name,
          `step '${step.name}' uses unregistered handler '${step.handler}'`,
        );
      }
    }
    byName.set(definition.name, definition);
  }
  return {
    handlers,
    list: () => [...byName.values()],
    find: (name) => byName.get(name),
    get(name) {
      const definition = byName.get(name);
      if (!definition) throw new NotFoundError('pipeline', name);
      return definition;
    },
  };
}
