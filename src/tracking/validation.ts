import { invalidParameter } from './errors.ts';

/** MLflow's limits (mlflow/utils/validation.py). */
export const LIMITS = {
  metricsPerBatch: 1000,
  paramsTagsPerBatch: 100,
  entitiesPerBatch: 1000,
  keyLength: 250,
  paramValueLength: 6000,
  tagValueLength: 8000,
  searchMaxResults: 50_000,
  searchDefaultResults: 1000,
} as const;

const VALID_NAME = /^[/\w.\- ]*$/;

/** Names may be treated as file paths, so MLflow rejects any that would resolve elsewhere. */
function pathUnsafe(name: string): boolean {
  const segments = name.split('/');
  return name.startsWith('/') || segments.some((segment) => segment === '.' || segment === '..') || name.includes('//');
}

export function validateKey(kind: 'metric' | 'param' | 'tag', key: unknown): string {
  if (typeof key !== 'string' || key.length === 0) {
    throw invalidParameter(`Missing value for required parameter 'key' of the ${kind}`);
  }
  if (key.length > LIMITS.keyLength) {
    throw invalidParameter(
      `${kind} key '${key.slice(0, 40)}...' had length ${key.length}, which exceeded length limit of ${LIMITS.keyLength}`,
    );
  }
  if (kind !== 'tag' && !VALID_NAME.test(key)) {
    throw invalidParameter(
      `Invalid ${kind} name: '${key}'. Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), and slashes (/).`,
    );
  }
  if (pathUnsafe(key)) {
    throw invalidParameter(
      `Invalid ${kind} name: '${key}'. Names may be treated as files in certain cases, and must not resolve to other names when treated as such.`,
    );
  }
  return key;
}

export function validateValue(kind: 'param' | 'tag', key: string, value: unknown): string {
  if (typeof value !== 'string')
    throw invalidParameter(`Missing value for required parameter 'value' of ${kind} '${key}'`);
  const limit = kind === 'param' ? LIMITS.paramValueLength : LIMITS.tagValueLength;
  if (value.length > limit) {
    throw invalidParameter(
      `${kind} '${key}' had value length ${value.length}, which exceeded length limit of ${limit}`,
    );
  }
  return value;
}

export function validateBatchSize(metrics: number, params: number, tags: number): void {
  if (metrics > LIMITS.metricsPerBatch) {
    throw invalidParameter(
      `A batch logging request can contain at most ${LIMITS.metricsPerBatch} metrics. Got ${metrics} metrics. Please split up metrics across multiple requests and try again.`,
    );
  }
  if (params > LIMITS.paramsTagsPerBatch) {
    throw invalidParameter(
      `A batch logging request can contain at most ${LIMITS.paramsTagsPerBatch} params. Got ${params} params. Please split up params across multiple requests and try again.`,
    );
  }
  if (tags > LIMITS.paramsTagsPerBatch) {
    throw invalidParameter(
      `A batch logging request can contain at most ${LIMITS.paramsTagsPerBatch} tags. Got ${tags} tags. Please split up tags across multiple requests and try again.`,
    );
  }
  const total = metrics + params + tags;
  if (total > LIMITS.entitiesPerBatch) {
    throw invalidParameter(
      `A batch logging request can contain at most ${LIMITS.entitiesPerBatch} metrics, params, and tags in total. Got ${total} entities.`,
    );
  }
}

export function maxResults(value: number | undefined, fallback: number, limit: number): number {
  const n = value ?? fallback;
  if (!Number.isInteger(n) || n <= 0 || n > limit) {
    throw invalidParameter(
      `Invalid value ${value} for parameter 'max_results' supplied. It must be a positive integer at most ${limit}.`,
    );
  }
  return n;
}
