import { z } from 'zod';
import { invalidParameter } from './errors.ts';

/**
 * Request fields in MLflow's JSON mapping of its protos: int64 may arrive as a number or a
 * string, repeated fields in a GET query as one value or many, doubles as numbers or the
 * strings "NaN", "Infinity", "-Infinity".
 */
export const int64 = z.union([
  z.number().int(),
  z
    .string()
    .regex(/^-?\d+$/)
    .transform(Number),
]);
export const double = z.union([
  z.number(),
  z.enum(['NaN', 'Infinity', '-Infinity']).transform((value) => Number(value)),
  z
    .string()
    .regex(/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/)
    .transform(Number),
]);
export const bool = z.union([
  z.boolean(),
  z.enum(['true', 'false', 'True', 'False']).transform((value) => value.toLowerCase() === 'true'),
]);
export const keyValue = z.object({ key: z.string(), value: z.string() });
export const keyOnly = z.object({ key: z.string(), value: z.string().optional() });

export function repeated<Schema extends z.ZodType>(item: Schema) {
  return z.preprocess((value) => (value === undefined || Array.isArray(value) ? value : [value]), z.array(item));
}

/** Parses a request message; failures become MLflow's INVALID_PARAMETER_VALUE naming the field. */
export function parseMessage<Schema extends z.ZodType>(schema: Schema, value: unknown): z.output<Schema> {
  const result = schema.safeParse(value ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue?.path.join('.') || 'request';
  if (issue?.code === 'invalid_type' && /received undefined/.test(issue.message)) {
    throw invalidParameter(
      `Missing value for required parameter '${field}'. See the API docs for more information about request parameters.`,
    );
  }
  throw invalidParameter(`Invalid value for parameter '${field}': ${issue?.message ?? 'invalid input'}`);
}
