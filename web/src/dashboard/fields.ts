/** Reads a field by its camelCase or snake_case name: the APIs differ (Bertha's own vs MLflow/OpenAI shapes). */
export function field(record: unknown, ...names: string[]): unknown {
  if (!record || typeof record !== 'object') return undefined;
  const object = record as Record<string, unknown>;
  for (const name of names) {
    if (object[name] !== undefined) return object[name];
    const snake = name.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
    if (object[snake] !== undefined) return object[snake];
  }
  return undefined;
}

export function text(record: unknown, ...names: string[]): string | undefined {
  const value = field(record, ...names);
  return value === undefined || value === null ? undefined : String(value);
}

export function num(record: unknown, ...names: string[]): number | undefined {
  const value = field(record, ...names);
  const parsed = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : Number.NaN;
  return Number.isFinite(parsed) ? parsed : undefined;
}

/** `{data: [...]}` (Bertha's lists) or a bare array. */
export function listOf(body: unknown, key = 'data'): unknown[] {
  if (Array.isArray(body)) return body;
  const inner = field(body, key);
  return Array.isArray(inner) ? inner : [];
}
