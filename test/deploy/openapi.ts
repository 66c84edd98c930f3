/** A node of a CRD's `openAPIV3Schema` (structural schema, inline, no `$ref`). */
export interface OpenApiNode {
  type?: string;
  properties?: Record<string, OpenApiNode>;
  additionalProperties?: OpenApiNode | boolean;
  items?: OpenApiNode;
  required?: string[];
  enum?: unknown[];
  format?: string;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

/**
 * Checks a value against a CRD schema as the API server's pruning would, strictly: a field the
 * schema does not declare is a problem (the API server would drop it without a word). One
 * line per problem, `path: what`.
 */
export function openApiProblems(schema: OpenApiNode, value: unknown): string[] {
  const problems: string[] = [];
  const visit = (node: OpenApiNode, current: unknown, at: string) => {
    const actual = typeOf(current);
    if (node['x-kubernetes-int-or-string']) {
      if (actual !== 'integer' && actual !== 'string') problems.push(`${at}: expected an integer or a string`);
      return;
    }
    if (node.type && node.type !== actual && !(node.type === 'number' && actual === 'integer')) {
      problems.push(`${at}: expected ${node.type}, got ${actual}`);
      return;
    }
    if (node.enum && !node.enum.includes(current)) problems.push(`${at}: not one of ${node.enum.join(', ')}`);
    if (Array.isArray(current)) {
      if (node.items) for (const [index, item] of current.entries()) visit(node.items, item, `${at}[${index}]`);
      return;
    }
    if (actual !== 'object') return;
    const object = current as Record<string, unknown>;
    for (const key of node.required ?? [])
      if (!(key in object)) problems.push(`${at}: missing required field '${key}'`);
    for (const [key, child] of Object.entries(object)) {
      const where = at ? `${at}.${key}` : key;
      const property = node.properties?.[key];
      if (property) visit(property, child, where);
      else if (typeof node.additionalProperties === 'object') visit(node.additionalProperties, child, where);
      // An object schema without properties (CRDs' `metadata`) is checked by the API server itself.
      else if (node.properties && node.additionalProperties !== true && !node['x-kubernetes-preserve-unknown-fields']) {
        problems.push(`${where}: unknown field`);
      }
    }
  };
  visit(schema, value, '');
  return problems;
}
