export { createPipelineCatalog, type PipelineCatalog } from './catalog.ts';
export { createStepHandlerRegistry } from './handlers.ts';
export { type RunDetail, runDetail, runProgress } from './run-detail.ts';
export type { RunObserver } from './run-observer.ts';
export { runOneStep } from './run-step.ts';
export { createLocalRunner, type LocalRunner } from './runner.ts';
export { createRunStore, type RunRecord, type RunStore } from './store.ts';
export type { RunOrigin } from './triggers.ts';
