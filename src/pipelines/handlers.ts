import type { ObjectBody, ObjectInfo } from '../objects/index.ts';
import type { RunParams } from './definition.ts';
import type { StepLineage } from './step-lineage.ts';

export interface StepLogger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export interface StepInputs {
  /** The names the step declared. */
  readonly names: string[];
  read(name: string): Promise<Buffer>;
  json<T = unknown>(name: string): Promise<T>;
}

export interface ArtifactWriter {
  write(name: string, body: ObjectBody): Promise<ObjectInfo>;
  writeJson(name: string, value: unknown): Promise<ObjectInfo>;
}

/** Everything a step handler gets; the same in the local runner and in `bertha step` under Argo. */
export interface StepContext {
  runId: string;
  pipeline: string;
  step: string;
  attempt: number;
  /** Only the pipeline parameters the step declared. */
  params: RunParams;
  inputs: StepInputs;
  artifacts: ArtifactWriter;
  /** Lines are stored with the step's attempt and streamed to whoever follows the run. */
  log: StepLogger;
  /** Fraction done in [0, 1], with an optional note; stored on the step row. */
  progress(fraction: number, message?: string): Promise<void>;
  /** Aborted on cancel, timeout, or when the runner loses its lease. */
  signal: AbortSignal;
  /** Lineage edges the step made, and the datasets its OpenLineage events report. */
  lineage: StepLineage;
}

/** What a handler may return; by default the run goes on to the steps that depend on this one. */
export interface StepResult {
  /**
   * The steps after this one have nothing to do: they are marked skipped with this reason and
   * the run ends. A decision, not a failure (retraining on a dataset already trained on).
   */
  skipRemaining?: string;
}

// biome-ignore lint/suspicious/noConfusingVoidType: most handlers return nothing; `async () => {}` is a Promise<void>
export type StepHandler = (context: StepContext) => Promise<void | StepResult>;

export interface StepHandlerRegistry {
  get(name: string): StepHandler | undefined;
  has(name: string): boolean;
  names(): string[];
}

export function createStepHandlerRegistry(handlers: Record<string, StepHandler>): StepHandlerRegistry {
  const table = new Map(Object.entries(handlers));
  return {
    get: (name) => table.get(name),
    has: (name) => table.has(name),
    names: () => [...table.keys()].sort(),
  };
}
