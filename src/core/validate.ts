import type { z } from 'zod';
import { ValidationError } from './errors.ts';

/** Parses request input at the edge; the error names the offending field. */
export function parseInput<Schema extends z.ZodType>(
  schema: Schema,
  value: unknown,
  what = 'request body',
): z.output<Schema> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue && issue.path.length > 0 ? issue.path.join('.') : undefined;
  const message = issue ? `${field ? `${field}: ` : ''}${issue.message}` : 'invalid input';
  throw new ValidationError(`invalid ${what}: ${message}`, {
    ...(field ? { param: field } : {}),
    issues: result.error.issues.map((item) => ({ path: item.path.join('.'), message: item.message })),
  });
}
