import { describe, expect, onTestFinished, test } from 'vitest';
import { createLogger } from '../../src/core/logger.ts';
import {
  createDocumentStore,
  createKnowledgeRetriever,
  createVectors,
  ingestObject,
  ingestVectors,
  type KnowledgeDeps,
  loadDocument,
  removeDocument,
} from '../../src/knowledge/index.ts';
import { dbFactories } from '../helpers/databases.ts';
import { makePdf } from '../helpers/documents.ts';
import { embeddedKnowledge } from '../helpers/knowledge.ts';
import { tempDir } from '../helpers/temp.ts';

for (const factory of dbFactories) {
  const available = await factory.available();
  describe.skipIf(!available)(`knowledge ingestion on ${factory.name}`, () => {
    async function setup(): Promise<KnowledgeDeps> {
      const db = await factory.create();
      onTestFinished(() => db.close());
      return embeddedKnowledge(db, tempDir(), createLogger('silent'));
    }

    const guide =
      '# Returns\nItems can be returned within 30 days. Refunds go to the original card.\n' +
      '# Shipping\nParcels ship from Rotterdam. Delivery takes three working days.';

    test('ingesting a document records it, its version and chunks, and makes it retrievable', async () => {
      const deps = await setup();
      await deps.objects.put('documents/policy.md', guide);
      const result = await ingestObject(deps, 'documents/policy.md');
      expect(result).toMatchObject({ status: 'ingested', chunkCount: 2 });
      const documents = createDocumentStore(deps.db);
      const document = await documents.byKey('documents/policy.md');
      expect(document).toMatchObject({ status: 'ingested', chunkCount: 2, contentType: 'text/markdown', error: null });
      expect(document?.version).toMatch(/^[0-9a-f]{64}$/);
      const chunks = await documents.chunksOf(document?.id as string);
      expect(chunks.map((chunk) => chunk.documentVersion)).toEqual([document?.version, document?.version]);
      expect(chunks[1]?.metadata).toMatchObject({ heading: 'Shipping' });

      const retriever = createKnowledgeRetriever({ embedder: deps.embedder, vectors: deps.vectors, mode: 'hybrid' });
      const [best] = await retriever.retrieve('where do parcels ship from', { topK: 1 });
      expect(best).toMatchObject({
        documentId: document?.id,
        documentKey: 'documents/policy.md',
        documentVersion: document?.version,
        metadata: { heading: 'Shipping' },
      });
      expect(best?.text).toContain('Rotterdam');
    });

    test('the same content again does nothing; changed content replaces the chunks', async () => {
      const deps = await setup();
      await deps.objects.put('documents/policy.md', guide);
      await ingestObject(deps, 'documents/policy.md');
      expect(await ingestObject(deps, 'documents/policy.md')).toMatchObject({ status: 'unchanged', chunkCount: 0 });
      expect(await deps.vectors.count()).toBe(2);

      await deps.objects.put('documents/policy.md', '# Returns\nNo returns after 14 days.');
      const changed = await ingestObject(deps, 'documents/policy.md');
      expect(changed).toMatchObject({ status: 'ingested', chunkCount: 1 });
      expect(await deps.vectors.count()).toBe(1);
      const hits = await deps.vectors.search({ mode: 'fulltext', topK: 5, text: 'Rotterdam' });
      expect(hits).toEqual([]);
      const [only] = await deps.vectors.search({ mode: 'fulltext', topK: 5, text: 'returns' });
      expect(only?.chunk.documentVersion).toBe(changed.version);
    });

    test('a removed object removes its document and chunks; a stale removal does not', async () => {
      const deps = await setup();
      await deps.objects.put('documents/a.md', guide);
      await ingestObject(deps, 'documents/a.md');
      expect(await removeDocument(deps, { key: 'documents/a.md' })).toMatchObject({
        removed: false,
        stillExists: true,
      });
      await deps.objects.delete('documents/a.md');
      expect(await removeDocument(deps, { key: 'documents/a.md' })).toMatchObject({ removed: true, chunksRemoved: 2 });
      expect(await deps.vectors.count()).toBe(0);
      expect(await createDocumentStore(deps.db).byKey('documents/a.md')).toBeUndefined();
      // An ingestion for an object that is gone by the time it runs cleans up instead of failing.
      expect(await ingestObject(deps, 'documents/a.md')).toMatchObject({ status: 'missing' });
    });

    test('a corrupt or empty file fails that document with a recorded error, and the next one still ingests', async () => {
      const deps = await setup();
      await deps.objects.put('documents/broken.pdf', '%PDF-1.4 garbage');
      await deps.objects.put('documents/empty.txt', '');
      await deps.objects.put('documents/manual.pdf', makePdf(['Press the red button.', 'Then wait.']));
      expect(await ingestObject(deps, 'documents/broken.pdf')).toMatchObject({
        status: 'failed',
        error: expect.stringMatching(/corrupt PDF/),
      });
      expect(await ingestObject(deps, 'documents/empty.txt')).toMatchObject({
        status: 'failed',
        error: expect.stringMatching(/empty/),
      });
      expect(await ingestObject(deps, 'documents/manual.pdf')).toMatchObject({ status: 'ingested', chunkCount: 2 });
      const documents = createDocumentStore(deps.db);
      expect(await documents.byKey('documents/broken.pdf')).toMatchObject({
        status: 'failed',
        error: expect.stringMatching(/corrupt PDF/),
      });
      expect((await documents.list({ limit: 10, status: 'failed' })).map((d) => d.key)).toEqual([
        'documents/broken.pdf',
        'documents/empty.txt',
      ]);
      const [page2] = await deps.vectors.search({
        mode: 'fulltext',
        topK: 1,
        text: 'wait',
        filter: { metadata: { page: 2 } },
      });
      expect(page2?.chunk.metadata).toMatchObject({ page: 2 });
    });

    test('a failure storing chunks fails the document with the reason, but never a newer version of it', async () => {
      const deps = await setup();
      await deps.objects.put('documents/policy.md', guide);
      const vectorized = await createVectors(deps, await loadDocument(deps, { key: 'documents/policy.md' }));
      const failing: KnowledgeDeps = {
        ...deps,
        vectors: {
          ...deps.vectors,
          upsert: async () => {
            throw new Error('disk full');
          },
        },
      };
      await expect(ingestVectors(failing, vectorized)).rejects.toThrow('disk full');
      const documents = createDocumentStore(deps.db);
      expect(await documents.byKey('documents/policy.md')).toMatchObject({
        status: 'failed',
        error: 'storing chunks failed: disk full',
      });

      // A newer version began while an older one was still being embedded: the old run's failure leaves it alone.
      const stale = await createVectors(deps, await loadDocument(deps, { key: 'documents/policy.md' }));
      await deps.objects.put('documents/policy.md', `${guide}\n# Contact\nWrite to us.`);
      const newer = await loadDocument(deps, { key: 'documents/policy.md' });
      await expect(ingestVectors(failing, { ...stale, status: 'vectorized' })).resolves.toMatchObject({
        status: 'superseded',
      });
      expect(await documents.markFailed('documents/policy.md', stale.version as string, 'late failure')).toBe(false);
      expect(await documents.byKey('documents/policy.md')).toMatchObject({ status: 'pending', version: newer.version });
    });

    test('step outputs survive a JSON round trip, as pipeline artifacts do', async () => {
      const deps = await setup();
      await deps.objects.put('documents/policy.md', guide);
      const loaded = JSON.parse(JSON.stringify(await loadDocument(deps, { key: 'documents/policy.md' })));
      const vectorized = JSON.parse(JSON.stringify(await createVectors(deps, loaded)));
      expect(vectorized.chunks[0].vector).toHaveLength(256);
      const { ingestVectors } = await import('../../src/knowledge/index.ts');
      expect(await ingestVectors(deps, vectorized)).toMatchObject({ status: 'ingested', chunkCount: 2 });
    });
  });
}
