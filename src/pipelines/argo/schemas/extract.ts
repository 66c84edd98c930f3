import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Regenerates the committed schema subsets from the upstream JSON schemas:
 *   node --import tsx src/pipelines/argo/schemas/extract.ts <argo-workflows api/jsonschema/schema.json> <argo-events api/jsonschema/schema.json>
 * The Argo Events CRDs declare `spec` with `x-kubernetes-preserve-unknown-fields`, so the
 * CRD YAML checks nothing; `api/jsonschema/schema.json`, generated from the same Go types,
 * describes every field. Only the definitions reachable from the kinds Bertha renders are
 * kept, without their descriptions; run `npx biome format --write` on the output afterwards.
 * Sources: argoproj/argo-workflows f016ad89, argoproj/argo-events 6478ece4.
 */
interface JsonSchemaFile {
  definitions: Record<string, unknown>;
}

function reachable(schema: JsonSchemaFile, roots: string[]): Record<string, unknown> {
  const seen = new Set<string>();
  const stack = [...roots];
  while (stack.length > 0) {
    const name = stack.pop() as string;
    if (seen.has(name)) continue;
    const definition = schema.definitions[name];
    if (definition === undefined) throw new Error(`definition ${name} is missing`);
    seen.add(name);
    for (const match of JSON.stringify(definition).matchAll(/"\$ref":"#\/definitions\/([^"]+)"/g)) {
      stack.push(match[1] as string);
    }
  }
  const strip = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(strip);
    if (value && typeof value === 'object') {
      return Object.fromEntries(
        Object.entries(value)
          .filter(([key, child]) => !(key === 'description' && typeof child === 'string'))
          .map(([key, child]) => [key, strip(child)]),
      );
    }
    return value;
  };
  return Object.fromEntries([...seen].sort().map((name) => [name, strip(schema.definitions[name])]));
}

const here = path.dirname(fileURLToPath(import.meta.url));
const [workflowsFile, eventsFile] = process.argv.slice(2);
if (!workflowsFile || !eventsFile) {
  process.stderr.write('usage: extract.ts <argo-workflows schema.json> <argo-events schema.json>\n');
  process.exit(2);
}
const targets: [string, string, string[]][] = [
  [
    workflowsFile,
    'argo-workflows.json',
    ['io.argoproj.workflow.v1alpha1.Workflow', 'io.argoproj.workflow.v1alpha1.WorkflowTemplate'],
  ],
  [
    eventsFile,
    'argo-events.json',
    [
      'io.argoproj.events.v1alpha1.EventBus',
      'io.argoproj.events.v1alpha1.EventSource',
      'io.argoproj.events.v1alpha1.Sensor',
    ],
  ],
];
for (const [source, target, roots] of targets) {
  const schema = JSON.parse(readFileSync(source, 'utf8')) as JsonSchemaFile;
  writeFileSync(path.join(here, target), `${JSON.stringify({ definitions: reachable(schema, roots) })}\n`);
}
