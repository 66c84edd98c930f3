import { describe, expect, onTestFinished, test } from 'vitest';
import { configSchema } from '../../src/config/schema.ts';
import { isoNow } from '../../src/core/ids.ts';
import { createLogger } from '../../src/core/logger.ts';
import { createDocumentStore, createKnowledgeRetriever } from '../../src/knowledge/index.ts';
import { readObject } from '../../src/objects/index.ts';
import { argoReferenceProblems, renderArgoManifests, strictSchemaProblems } from '../../src/pipelines/argo/index.ts';
import { builtinPipelines } from '../../src/pipelines/builtin/index.ts';
import { dbFactories } from '../helpers/databases.ts';
import { embeddedKnowledge } from '../helpers/knowledge.ts';
import { tempDir } from '../helpers/temp.ts';
import { startBuiltinRunner } from './builtin-runner.ts';
import { waitFor } from './wait.ts';

for (const factory of dbFactories) {
  const available = await factory.available();
  describe.skipIf(!available)(`vector-ingestion on ${factory.name}`, () => {
    test('an upload is loaded, embedded and stored by three steps, and a removal takes its chunks out', async () => {
      const db = await factory.create();
      onTestFinished(() => db.close());
      const logger = createLogger('silent');
      const knowledge = await embeddedKnowledge(db, tempDir(), logger);
      const { objects, vectors } = knowledge;
      const { store, runner, finished } = startBuiltinRunner({
        db,
        objects,
        logger,
        builtin: builtinPipelines({ knowledge: () => knowledge }),
        concurrency: 2,
        leaseMs: 10_000,
      });

      const key = 'documents/shipping.md';
      await objects.put(key, '# Shipping\nParcels ship from Rotterdam. Delivery takes three working days.\n');
      const run = await finished(
        (await runner.startRun({ pipeline: 'vector-ingestion', params: { key }, source: 'test' })).id,
      );
      expect(run.status).toBe('succeeded');
      const artifacts = await store.listArtifacts(run.id);
      expect(artifacts.map((artifact) => `${artifact.step}.${artifact.name}`).sort()).toEqual([
        'create-vectors.vectorized',
        'ingest-vectors.result',
        'load-document.loaded',
      ]);
      const result = artifacts.find((artifact) => artifact.name === 'result');
      expect(JSON.parse((await readObject(objects, result?.objectKey as string)).toString())).toMatchObject({
        key,
        status: 'ingested',
        chunkCount: 1,
      });
      const retriever = createKnowledgeRetriever({ embedder: knowledge.embedder, vectors, mode: 'hybrid' });
      const [best] = await retriever.retrieve('where do parcels ship from', { topK: 1 });
      expect(best?.text).toContain('Rotterdam');
      expect((await store.listLogs(run.id, { step: 'load-document' }))[0]?.message).toBe(`document ${key}: loaded`);

      // The sensor's trigger for object.removed, as src/events/sensors.ts writes it.
      await objects.delete(key);
      const now = isoNow();
      await db.kysely
        .insertInto('pipeline_triggers')
        .values({
          id: 'trg_removed',
          sensor: 'ingest-removed-object',
          event_id: null,
          pipeline: 'vector-ingestion',
          params_json: JSON.stringify({ key, change: 'removed' }),
          concurrency_key: `vector-ingestion:${key}`,
          status: 'pending',
          reason: null,
          run_id: null,
          created_at: now,
          updated_at: now,
        })
        .execute();
      const trigger = await waitFor('the removal trigger to launch', async () => {
        const row = await db.kysely
          .selectFrom('pipeline_triggers')
          .selectAll()
          .where('id', '=', 'trg_removed')
          .executeTakeFirst();
        return row?.run_id ? row : undefined;
      });
      const removal = await finished(trigger.run_id as string);
      expect(removal).toMatchObject({ status: 'succeeded', params: { key, change: 'removed' } });
      expect(await vectors.count()).toBe(0);
    });

    test('a document that cannot be read fails its run with the reason recorded on the document', async () => {
      const db = await factory.create();
      onTestFinished(() => db.close());
      const logger = createLogger('silent');
      const knowledge = await embeddedKnowledge(db, tempDir(), logger);
      const { store, runner, finished } = startBuiltinRunner({
        db,
        objects: knowledge.objects,
        logger,
        builtin: builtinPipelines({ knowledge: () => knowledge }),
        concurrency: 2,
        leaseMs: 10_000,
      });

      const key = 'documents/broken.pdf';
      await knowledge.objects.put(key, '%PDF-1.4\nthis is not a pdf');
      const run = await finished(
        (await runner.startRun({ pipeline: 'vector-ingestion', params: { key }, source: 'test' })).id,
      );
      const document = await createDocumentStore(db).byKey(key);
      expect(document).toMatchObject({ status: 'failed', error: expect.stringMatching(/corrupt PDF/) });
      expect(run).toMatchObject({
        status: 'failed',
        error: `step 'load-document' failed: ${document?.error}`,
      });
      expect(Object.fromEntries((await store.listSteps(run.id)).map((step) => [step.name, step.status]))).toEqual({
        'load-document': 'failed',
        'create-vectors': 'skipped',
        'ingest-vectors': 'skipped',
      });
      expect(await knowledge.vectors.count()).toBe(0);
    });
  });
}

test('vector-ingestion compiles to a WorkflowTemplate and upload and removal Sensors that pass every check', () => {
  const { definitions } = builtinPipelines({
    knowledge: () => {
      throw new Error('rendering never runs a step');
    },
  });
  const manifests = renderArgoManifests(definitions, { ...configSchema.parse({}).pipelines.argo });
  expect(manifests.map(({ manifest }) => `${manifest.kind}/${manifest.metadata.name}`)).toEqual([
    'EventBus/default',
    'EventSource/alertmanager',
    'EventSource/minio',
    'WorkflowTemplate/vector-ingestion',
    'Sensor/vector-ingestion-on-uploads',
    'Sensor/vector-ingestion-on-removals',
  ]);
  for (const { manifest } of manifests) expect(strictSchemaProblems(manifest)).toEqual([]);
  expect(argoReferenceProblems(manifests)).toEqual([]);
  const removal = manifests[5]?.manifest as unknown as {
    spec: { triggers: { template: { argoWorkflow: unknown } }[] };
  };
  expect(removal.spec.triggers[0]?.template.argoWorkflow).toMatchObject({
    source: {
      resource: {
        spec: {
          arguments: {
            parameters: [
              { name: 'key', value: '' },
              { name: 'change', value: 'removed' },
            ],
          },
        },
      },
    },
    parameters: [
      {
        src: { dependencyName: 'removals', dataKey: 'notification.0.s3.object.key' },
        dest: 'spec.arguments.parameters.0.value',
      },
    ],
  });
});
