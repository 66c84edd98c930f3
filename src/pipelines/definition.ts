import { ValidationError } from '../core/errors.ts';

/**
 * A pipeline is data: a DAG of named steps. The local runner and the Argo compiler read the
 * same definition; the code of a step lives in the handler registry under `handler`.
 */
export type ParamType = 'string' | 'number' | 'boolean';
export type ParamValue = string | number | boolean;

export interface ParamSpec {
  type: ParamType;
  description: string;
  /** A parameter without a default is required when a run starts. */
  default?: ParamValue;
}

export interface RetryPolicy {
  /** Attempts after the first one. */
  limit: number;
  /** Wait before the first retry; each further retry waits `factor` times longer, up to `maxBackoffMs`. */
  backoffMs: number;
  factor: number;
  maxBackoffMs: number;
}

/** An input artifact: output `artifact` of step `from` in the same run. */
export interface ArtifactRef {
  from: string;
  artifact: string;
}

export interface StepSpec {
  name: string;
  /** Name in the step-handler registry. */
  handler: string;
  description?: string;
  dependsOn?: string[];
  /** Pipeline parameters this step reads. */
  params?: string[];
  /** Input name -> another step's output; the producer becomes a dependency. */
  inputs?: Record<string, ArtifactRef>;
  /** Names of the artifacts the step must write. */
  outputs?: string[];
  retry?: Partial<RetryPolicy>;
  timeoutMs?: number;
  /**
   * When set, a step whose rendered key (`{{params.x}}` substituted, plus its inputs' etags)
   * matches an earlier successful step reuses that step's artifacts instead of running.
   */
  cacheKey?: string;
}

/** What sets a pipeline off in Argo Events (the local runner gets the same from sensors). */
export interface ArgoEventsTrigger {
  /** `uploads` / `removals`: object created in / removed from the documents bucket; `alertmanager`: a firing alert. */
  source: 'uploads' | 'removals' | 'alertmanager';
  /** Workflow parameter -> path in the event (Argo Events `dataKey`), e.g. `notification.0.s3.object.key`. */
  parameters: Record<string, string>;
  /** Workflow parameters with a fixed value for this trigger. */
  constants?: Record<string, string>;
}

export interface PipelineSpec {
  name: string;
  description: string;
  params?: Record<string, ParamSpec>;
  steps: StepSpec[];
  argoEvents?: ArgoEventsTrigger[];
}

export interface ResolvedStep extends Required<Pick<StepSpec, 'name' | 'handler' | 'dependsOn' | 'params'>> {
  description: string;
  inputs: Record<string, ArtifactRef>;
  outputs: string[];
  retry: RetryPolicy;
  timeoutMs: number;
  cacheKey: string | undefined;
}

export interface PipelineDefinition {
  name: string;
  description: string;
  params: Record<string, ParamSpec>;
  /** In a topological order. */
  steps: ResolvedStep[];
  argoEvents: ArgoEventsTrigger[];
}

export const DEFAULT_RETRY: RetryPolicy = { limit: 0, backoffMs: 1_000, factor: 2, maxBackoffMs: 60_000 };
export const DEFAULT_TIMEOUT_MS = 60 * 60 * 1000;

const NAME = /^[a-z][a-z0-9-]{0,62}$/;
const PARAM_NAME = /^[a-z][a-zA-Z0-9_]{0,62}$/;

export class PipelineDefinitionError extends ValidationError {
  constructor(pipeline: string, problem: string) {
    super(`pipeline '${pipeline}': ${problem}`, { pipeline });
  }
}

function order(spec: PipelineSpec, deps: Map<string, string[]>): string[] {
  const state = new Map<string, 'visiting' | 'done'>();
  const sorted: string[] = [];
  const visit = (name: string, path: string[]) => {
    const seen = state.get(name);
    if (seen === 'done') return;
    if (seen === 'visiting') {
      const cycle = [...path.slice(path.indexOf(name)), name].join(' -> ');
      throw new PipelineDefinitionError(spec.name, `dependency cycle ${cycle}`);
    }
    state.set(name, 'visiting');
    for (const dep of deps.get(name) ?? []) visit(dep, [...path, name]);
    state.set(name, 'done');
    sorted.push(name);
  };
  for (const step of spec.steps) visit(step.name, []);
  return sorted;
}

/** Checks a pipeline once, when it is defined: names, dangling references, unknown parameters, cycles. */
export function definePipeline(spec: PipelineSpec): PipelineDefinition {
  const fail = (problem: string): never => {
    throw new PipelineDefinitionError(spec.name, problem);
  };
  if (!NAME.test(spec.name)) fail('name must be lower-case letters, digits and dashes');
  const params = spec.params ?? {};
  for (const [name, param] of Object.entries(params)) {
    if (!PARAM_NAME.test(name)) fail(`parameter '${name}' is not a valid name`);
    if (param.default !== undefined && typeof param.default !== param.type) {
      fail(`parameter '${name}' default is not a ${param.type}`);
    }
  }
  if (spec.steps.length === 0) fail('has no steps');
  const names = new Set<string>();
  for (const step of spec.steps) {
    if (!NAME.test(step.name)) fail(`step '${step.name}' must be lower-case letters, digits and dashes`);
    if (names.has(step.name)) fail(`step '${step.name}' is defined twice`);
    names.add(step.name);
  }
  const byName = new Map(spec.steps.map((step) => [step.name, step]));
  const deps = new Map<string, string[]>();
  for (const step of spec.steps) {
    const stepDeps = new Set(step.dependsOn ?? []);
    for (const dep of stepDeps) {
      if (!names.has(dep)) fail(`step '${step.name}' depends on unknown step '${dep}'`);
    }
    for (const param of step.params ?? []) {
      if (!(param in params)) fail(`step '${step.name}' reads unknown parameter '${param}'`);
    }
    for (const [input, ref] of Object.entries(step.inputs ?? {})) {
      const producer = byName.get(ref.from);
      if (!producer) fail(`step '${step.name}' input '${input}' comes from unknown step '${ref.from}'`);
      if (!(producer?.outputs ?? []).includes(ref.artifact)) {
        fail(
          `step '${step.name}' input '${input}' names '${ref.from}.${ref.artifact}', which that step does not output`,
        );
      }
      stepDeps.add(ref.from);
    }
    for (const match of (step.cacheKey ?? '').matchAll(/\{\{\s*params\.([^}\s]+)\s*\}\}/g)) {
      if (!(step.params ?? []).includes(match[1] as string)) {
        fail(`step '${step.name}' cache key uses parameter '${match[1]}' that the step does not read`);
      }
    }
    if (step.timeoutMs !== undefined && !(step.timeoutMs > 0)) fail(`step '${step.name}' timeout must be positive`);
    const retry = { ...DEFAULT_RETRY, ...step.retry };
    if (!Number.isInteger(retry.limit) || retry.limit < 0) fail(`step '${step.name}' retry limit must be >= 0`);
    deps.set(step.name, [...stepDeps]);
  }
  for (const trigger of spec.argoEvents ?? []) {
    for (const param of [...Object.keys(trigger.parameters), ...Object.keys(trigger.constants ?? {})]) {
      if (!(param in params)) fail(`argo events trigger sets unknown parameter '${param}'`);
    }
  }
  const sorted = order(spec, deps);
  const steps = sorted.map((name): ResolvedStep => {
    const step = byName.get(name) as StepSpec;
    return {
      name,
      handler: step.handler,
      description: step.description ?? '',
      dependsOn: deps.get(name) ?? [],
      params: step.params ?? [],
      inputs: step.inputs ?? {},
      outputs: step.outputs ?? [],
      retry: { ...DEFAULT_RETRY, ...step.retry },
      timeoutMs: step.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      cacheKey: step.cacheKey,
    };
  });
  return {
    name: spec.name,
    description: spec.description,
    params,
    steps,
    argoEvents: spec.argoEvents ?? [],
  };
}

export type RunParams = Record<string, ParamValue>;

/** Parameters given to a run (typed, or strings from a CLI or an event) checked and completed with defaults. */
export function resolveRunParams(definition: PipelineDefinition, given: Record<string, unknown>): RunParams {
  const resolved: RunParams = {};
  for (const key of Object.keys(given)) {
    if (!(key in definition.params)) {
      throw new ValidationError(`pipeline '${definition.name}' has no parameter '${key}'`, { param: key });
    }
  }
  for (const [name, spec] of Object.entries(definition.params)) {
    const raw = given[name];
    if (raw === undefined || raw === null) {
      if (spec.default === undefined) {
        throw new ValidationError(`pipeline '${definition.name}' needs parameter '${name}'`, { param: name });
      }
      resolved[name] = spec.default;
      continue;
    }
    resolved[name] = coerce(definition.name, name, spec.type, raw);
  }
  return resolved;
}

function coerce(pipeline: string, name: string, type: ParamType, raw: unknown): ParamValue {
  if (typeof raw === type) return raw as ParamValue;
  if (typeof raw === 'string') {
    if (type === 'number' && raw.trim() !== '' && Number.isFinite(Number(raw))) return Number(raw);
    if (type === 'boolean' && (raw === 'true' || raw === 'false')) return raw === 'true';
  }
  throw new ValidationError(`pipeline '${pipeline}' parameter '${name}' must be a ${type}`, { param: name });
}

/** The wait before retry number `retry` (1-based). */
export function backoffFor(policy: RetryPolicy, retry: number): number {
  return Math.min(policy.maxBackoffMs, policy.backoffMs * policy.factor ** (retry - 1));
}

export function stepOf(definition: PipelineDefinition, name: string): ResolvedStep | undefined {
  return definition.steps.find((step) => step.name === name);
}
