import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Workflow, WorkflowTemplate } from '@kubernetes-models/argo-workflows/argoproj.io/v1alpha1';
import { describe, expect, test } from 'vitest';
import YAML from 'yaml';
import { configSchema } from '../../src/config/schema.ts';
import {
  argoReferenceProblems,
  type RenderedManifest,
  renderArgoManifests,
  strictSchemaProblems,
} from '../../src/pipelines/argo/index.ts';
import { tempDir } from '../helpers/temp.ts';
import { testCatalog, wordStats } from './fixtures.ts';

// biome-ignore lint/suspicious/noExplicitAny: rendered manifests are walked by path in the assertions
type Loose = any;

const argo = configSchema.parse({}).pipelines.argo;
const options = { ...argo, command: ['bertha'] };

function crd(kind: string) {
  const file = path.resolve(`test/pipelines/argo-events-crds/argoproj.io_${kind}.yaml`);
  return YAML.parse(readFileSync(file, 'utf8')) as {
    spec: {
      group: string;
      names: { kind: string };
      versions: { name: string; schema: { openAPIV3Schema: { required: string[] } } }[];
    };
  };
}

function render(): RenderedManifest[] {
  return renderArgoManifests(testCatalog(tempDir()).list(), options);
}

describe('Argo compilation', () => {
  test('renders an EventBus, the event sources, a WorkflowTemplate per pipeline and a Sensor per trigger', () => {
    const kinds = render().map(({ manifest }) => `${manifest.kind}/${manifest.metadata.name}`);
    expect(kinds).toEqual(
      expect.arrayContaining([
        'EventBus/default',
        'EventSource/alertmanager',
        'EventSource/minio',
        'WorkflowTemplate/word-stats',
        'WorkflowTemplate/gated',
        'Sensor/word-stats-on-uploads',
      ]),
    );
  });

  test('every WorkflowTemplate and every Workflow a Sensor submits passes the kubernetes-models validation', () => {
    for (const { manifest } of render()) {
      if (manifest.kind === 'WorkflowTemplate')
        expect(() => new WorkflowTemplate(manifest as never).validate()).not.toThrow();
      if (manifest.kind === 'Sensor') {
        const resource = (manifest as Loose).spec.triggers[0].template.argoWorkflow.source.resource;
        expect(() => new Workflow(resource).validate()).not.toThrow();
        expect(strictSchemaProblems(resource)).toEqual([]);
      }
    }
  });

  test('every manifest matches the upstream Argo schemas strictly (no unknown fields) and its CRD', () => {
    for (const { manifest } of render()) {
      expect({ name: manifest.metadata.name, problems: strictSchemaProblems(manifest) }).toEqual({
        name: manifest.metadata.name,
        problems: [],
      });
      const plural = { EventBus: 'eventbus', EventSource: 'eventsources', Sensor: 'sensors' }[manifest.kind as string];
      if (plural) {
        const definition = crd(plural);
        expect(manifest.apiVersion).toBe(`${definition.spec.group}/${definition.spec.versions[0]?.name}`);
        expect(manifest.kind).toBe(definition.spec.names.kind);
        for (const field of definition.spec.versions[0]?.schema.openAPIV3Schema.required ?? [])
          expect(manifest).toHaveProperty(field);
      }
    }
  });

  test('no DAG task, expression or Sensor points at something that does not exist', () => {
    expect(argoReferenceProblems(render())).toEqual([]);
  });

  test('each step is a container running `bertha step` with the run parameters and its input artifacts', () => {
    const template = render().find(
      ({ manifest }) => manifest.metadata.name === 'word-stats' && manifest.kind === 'WorkflowTemplate',
    );
    const spec = ((template as RenderedManifest).manifest as Loose).spec;
    const report = spec.templates.find((entry: { name: string }) => entry.name === 'report');
    expect(report.container.args).toEqual([
      'step',
      'word-stats',
      'report',
      '--run',
      '{{workflow.name}}',
      '--single-attempt',
      '--outputs-dir',
      '/tmp/bertha/outputs',
      '--param',
      'text={{workflow.parameters.text}}',
      '--param',
      'minLength={{workflow.parameters.minLength}}',
      '--input',
      'counts={{inputs.parameters.counts}}',
      '--input',
      'longest={{inputs.parameters.longest}}',
    ]);
    const task = spec.templates[0].dag.tasks.find((entry: { name: string }) => entry.name === 'report');
    expect(task.dependencies).toEqual(['count', 'longest']);
    expect(task.arguments.parameters[0]).toEqual({
      name: 'counts',
      value: '{{tasks.count.outputs.parameters.counts}}',
    });
    const sensor = render().find(({ manifest }) => manifest.kind === 'Sensor');
    expect(((sensor as RenderedManifest).manifest as Loose).spec.triggers[0].template.argoWorkflow.parameters).toEqual([
      {
        src: { dependencyName: 'uploads', dataKey: 'notification.0.s3.object.key' },
        dest: 'spec.arguments.parameters.0.value',
      },
    ]);
  });

  test('the checks catch a misspelt field and a dangling reference', () => {
    const manifests = renderArgoManifests([wordStats], options);
    const template = manifests.find(({ manifest }) => manifest.kind === 'WorkflowTemplate')?.manifest as Loose;
    template.spec.templates[1].container.imagePullPolicyy = 'Always';
    template.spec.templates[0].dag.tasks[1].dependencies = ['splitt'];
    template.spec.templates[0].dag.tasks[3].arguments.parameters[0].value = '{{tasks.count.outputs.parameters.count}}';
    expect(strictSchemaProblems(template)).toEqual(['spec.templates[1].container.imagePullPolicyy: unknown field']);
    expect(argoReferenceProblems(manifests)).toEqual(
      expect.arrayContaining([
        "word-stats.templates.main.count: depends on unknown task 'splitt'",
        "word-stats.templates.main.report.arguments.parameters[0].value: task 'count' has no output parameter 'count'",
      ]),
    );
    const sensor = manifests.find(({ manifest }) => manifest.kind === 'Sensor')?.manifest as Loose;
    sensor.spec.dependencies[0].eventName = 'upload';
    expect(argoReferenceProblems(manifests)).toContain(
      "word-stats-on-uploads: event source 'minio' has no event 'upload'",
    );
  });
});
