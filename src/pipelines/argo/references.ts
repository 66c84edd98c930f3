import type { RenderedManifest } from './compile.ts';

type Json = Record<string, unknown>;

function asArray(value: unknown): Json[] {
  return Array.isArray(value) ? (value as Json[]) : [];
}

function get(value: unknown, ...path: string[]): unknown {
  let current = value;
  for (const key of path) current = current && typeof current === 'object' ? (current as Json)[key] : undefined;
  return current;
}

/** Every `{{...}}` expression inside a value, with where it was found. */
function expressions(value: unknown, at: string, found: { at: string; expression: string }[] = []) {
  if (typeof value === 'string') {
    for (const match of value.matchAll(/\{\{\s*([^}]+?)\s*\}\}/g)) found.push({ at, expression: match[1] as string });
  } else if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) expressions(item, `${at}[${index}]`, found);
  } else if (value && typeof value === 'object') {
    for (const [key, child] of Object.entries(value)) expressions(child, `${at}.${key}`, found);
  }
  return found;
}

function workflowTemplateProblems(manifest: Json): string[] {
  const problems: string[] = [];
  const name = String(get(manifest, 'metadata', 'name'));
  const spec = get(manifest, 'spec') as Json;
  const templates = asArray(spec.templates);
  const byName = new Map(templates.map((template) => [String(template.name), template]));
  const workflowParams = new Set(asArray(get(spec, 'arguments', 'parameters')).map((param) => String(param.name)));
  if (!byName.has(String(spec.entrypoint)))
    problems.push(`${name}: entrypoint '${String(spec.entrypoint)}' is not a template`);
  for (const template of templates) {
    const where = `${name}.templates.${String(template.name)}`;
    const inputs = new Set(asArray(get(template, 'inputs', 'parameters')).map((param) => String(param.name)));
    const tasks = asArray(get(template, 'dag', 'tasks'));
    const taskNames = new Set(tasks.map((task) => String(task.name)));
    const dependenciesOf = new Map(tasks.map((task) => [String(task.name), asArray(task.dependencies).map(String)]));
    const upstream = (task: string, seen = new Set<string>()): Set<string> => {
      for (const dep of dependenciesOf.get(task) ?? []) {
        if (!seen.has(dep)) {
          seen.add(dep);
          upstream(dep, seen);
        }
      }
      return seen;
    };
    for (const task of tasks) {
      const taskName = String(task.name);
      const target = byName.get(String(task.template));
      if (!target) problems.push(`${where}.${taskName}: template '${String(task.template)}' does not exist`);
      for (const dep of asArray(task.dependencies).map(String)) {
        if (!taskNames.has(dep)) problems.push(`${where}.${taskName}: depends on unknown task '${dep}'`);
      }
      const declared = new Set(asArray(get(target, 'inputs', 'parameters')).map((param) => String(param.name)));
      const given = asArray(get(task, 'arguments', 'parameters')).map((param) => String(param.name));
      for (const param of given) {
        if (!declared.has(param))
          problems.push(`${where}.${taskName}: passes '${param}', which its template does not take`);
      }
      for (const param of declared) {
        if (!given.includes(param)) problems.push(`${where}.${taskName}: does not pass input '${param}'`);
      }
      for (const { at, expression } of expressions(task.arguments, `${where}.${taskName}.arguments`)) {
        const match = /^tasks\.([^.]+)\.outputs\.parameters\.(.+)$/.exec(expression);
        if (!match) continue;
        const [, producer, output] = match as unknown as [string, string, string];
        if (!upstream(taskName).has(producer)) {
          problems.push(`${at}: uses task '${producer}', which is not upstream of '${taskName}'`);
          continue;
        }
        const producerTemplate = byName.get(String(tasks.find((candidate) => candidate.name === producer)?.template));
        const outputs = asArray(get(producerTemplate, 'outputs', 'parameters')).map((param) => String(param.name));
        if (!outputs.includes(output)) problems.push(`${at}: task '${producer}' has no output parameter '${output}'`);
      }
    }
    for (const { at, expression } of expressions(template.container, `${where}.container`)) {
      const input = /^inputs\.parameters\.(.+)$/.exec(expression)?.[1];
      if (input !== undefined && !inputs.has(input)) problems.push(`${at}: input parameter '${input}' is not declared`);
      const param = /^workflow\.parameters\.(.+)$/.exec(expression)?.[1];
      if (param !== undefined && !workflowParams.has(param)) {
        problems.push(`${at}: workflow parameter '${param}' is not declared`);
      }
    }
  }
  return problems;
}

function sensorProblems(manifest: Json, all: RenderedManifest[]): string[] {
  const problems: string[] = [];
  const name = String(get(manifest, 'metadata', 'name'));
  const spec = get(manifest, 'spec') as Json;
  const dependencies = asArray(spec.dependencies);
  const dependencyNames = new Set(dependencies.map((dependency) => String(dependency.name)));
  for (const dependency of dependencies) {
    const source = all.find(
      (candidate) =>
        candidate.manifest.kind === 'EventSource' && candidate.manifest.metadata.name === dependency.eventSourceName,
    );
    if (!source) {
      problems.push(`${name}: event source '${String(dependency.eventSourceName)}' is not rendered`);
      continue;
    }
    const sourceSpec = get(source.manifest, 'spec') as Json;
    const eventNames = Object.values(sourceSpec).flatMap((value) =>
      value && typeof value === 'object' && !Array.isArray(value) ? Object.keys(value) : [],
    );
    if (!eventNames.includes(String(dependency.eventName))) {
      problems.push(
        `${name}: event source '${String(dependency.eventSourceName)}' has no event '${String(dependency.eventName)}'`,
      );
    }
  }
  for (const trigger of asArray(spec.triggers)) {
    const argo = get(trigger, 'template', 'argoWorkflow') as Json | undefined;
    if (!argo) continue;
    const workflow = get(argo, 'source', 'resource') as Json;
    const templateName = String(get(workflow, 'spec', 'workflowTemplateRef', 'name'));
    const template = all.find(
      (candidate) =>
        candidate.manifest.kind === 'WorkflowTemplate' && candidate.manifest.metadata.name === templateName,
    );
    if (!template) problems.push(`${name}: workflow template '${templateName}' is not rendered`);
    const workflowParams = asArray(get(workflow, 'spec', 'arguments', 'parameters'));
    const templateParams = asArray(get(template?.manifest, 'spec', 'arguments', 'parameters')).map((param) =>
      String(param.name),
    );
    for (const param of workflowParams) {
      if (!templateParams.includes(String(param.name))) {
        problems.push(`${name}: workflow parameter '${String(param.name)}' is not a parameter of '${templateName}'`);
      }
    }
    for (const parameter of asArray(argo.parameters)) {
      const dependency = String(get(parameter, 'src', 'dependencyName'));
      if (!dependencyNames.has(dependency))
        problems.push(`${name}: parameter source '${dependency}' is not a dependency`);
      const index = /^spec\.arguments\.parameters\.(\d+)\.value$/.exec(String(parameter.dest))?.[1];
      if (index === undefined || Number(index) >= workflowParams.length) {
        problems.push(`${name}: parameter destination '${String(parameter.dest)}' names no workflow parameter`);
      }
    }
  }
  return problems;
}

/**
 * What schemas cannot see: DAG tasks naming templates, tasks or outputs that do not exist,
 * `{{...}}` expressions pointing nowhere, Sensors naming missing event sources, events,
 * workflow templates or parameter slots.
 */
export function argoReferenceProblems(manifests: RenderedManifest[]): string[] {
  return manifests.flatMap(({ manifest }) => {
    if (manifest.kind === 'WorkflowTemplate') return workflowTemplateProblems(manifest);
    if (manifest.kind === 'Sensor') return sensorProblems(manifest, manifests);
    return [];
  });
}
