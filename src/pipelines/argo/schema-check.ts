import { createRequire } from 'node:module';

/** A JSON-schema node as the Argo generators write them (draft-07 subset). */
interface SchemaNode {
  $ref?: string;
  type?: string | string[];
  properties?: Record<string, SchemaNode>;
  additionalProperties?: SchemaNode | boolean;
  items?: SchemaNode;
  required?: string[];
  const?: unknown;
  enum?: unknown[];
  'x-kubernetes-preserve-unknown-fields'?: boolean;
}

interface SchemaFile {
  definitions: Record<string, SchemaNode>;
}

const require = createRequire(import.meta.url);
const workflows = require('./schemas/argo-workflows.json') as SchemaFile;
const events = require('./schemas/argo-events.json') as SchemaFile;

const ROOTS: Record<string, { file: SchemaFile; definition: string }> = {
  WorkflowTemplate: { file: workflows, definition: 'io.argoproj.workflow.v1alpha1.WorkflowTemplate' },
  Workflow: { file: workflows, definition: 'io.argoproj.workflow.v1alpha1.Workflow' },
  EventSource: { file: events, definition: 'io.argoproj.events.v1alpha1.EventSource' },
  Sensor: { file: events, definition: 'io.argoproj.events.v1alpha1.Sensor' },
  EventBus: { file: events, definition: 'io.argoproj.events.v1alpha1.EventBus' },
};

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function matchesType(value: unknown, type: string | string[]): boolean {
  const actual = typeOf(value);
  const allowed = Array.isArray(type) ? type : [type];
  return allowed.includes(actual) || (actual === 'integer' && allowed.includes('number'));
}

/**
 * Checks a manifest against the upstream Argo JSON schema, strictly: unlike the Kubernetes
 * models, an unknown field anywhere is a problem (a misspelt key would otherwise be dropped
 * silently by the controller). Returns one line per problem, `path: what`.
 */
export function strictSchemaProblems(manifest: { kind?: unknown }): string[] {
  const root = ROOTS[String(manifest.kind)];
  if (!root) return [`kind: no schema for '${String(manifest.kind)}'`];
  const problems: string[] = [];
  const resolve = (node: SchemaNode): SchemaNode => {
    let current = node;
    while (current.$ref) {
      const name = current.$ref.replace('#/definitions/', '');
      const next = root.file.definitions[name];
      if (!next) throw new Error(`schema reference ${current.$ref} is missing`);
      current = next;
    }
    return current;
  };
  const visit = (value: unknown, node: SchemaNode, at: string) => {
    const schema = resolve(node);
    if (schema.type && !matchesType(value, schema.type)) {
      problems.push(`${at}: expected ${String(schema.type)}, got ${typeOf(value)}`);
      return;
    }
    if (schema.const !== undefined && value !== schema.const) problems.push(`${at}: must be ${String(schema.const)}`);
    if (schema.enum && !schema.enum.includes(value)) problems.push(`${at}: not one of ${schema.enum.join(', ')}`);
    if (Array.isArray(value) && schema.items) {
      for (const [index, item] of value.entries()) visit(item, schema.items as SchemaNode, `${at}[${index}]`);
      return;
    }
    if (typeOf(value) !== 'object') return;
    const object = value as Record<string, unknown>;
    for (const key of schema.required ?? []) {
      if (!(key in object)) problems.push(`${at}: missing required field '${key}'`);
    }
    for (const [key, child] of Object.entries(object)) {
      const where = at ? `${at}.${key}` : key;
      const property = schema.properties?.[key];
      if (property) visit(child, property, where);
      else if (typeof schema.additionalProperties === 'object') visit(child, schema.additionalProperties, where);
      else if (schema.properties && !schema['x-kubernetes-preserve-unknown-fields']) {
        problems.push(`${where}: unknown field`);
      }
    }
  };
  visit(manifest, { $ref: `#/definitions/${root.definition}` }, '');
  return problems;
}
