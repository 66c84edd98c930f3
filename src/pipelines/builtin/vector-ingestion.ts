import {
  createVectors,
  DocumentNotLoadedError,
  ingestVectors,
  type KnowledgeDeps,
  type LoadedDocument,
  loadDocument,
  type VectorizedDocument,
} from '../../knowledge/index.ts';
import { documentNodeId, lineageDatasets } from '../../lineage/index.ts';
import { definePipeline } from '../definition.ts';
import type { StepContext, StepHandler } from '../handlers.ts';

/**
 * The seed's ingestion workflow: load-document -> create-vectors -> ingest-vectors. The same
 * run handles an upload and a removal: a key whose object is gone loads as `missing`, and
 * ingest-vectors then removes the document's chunks. A document that cannot be read (corrupt,
 * empty, a format no loader reads) fails load-document, and so the run, with the reason that is
 * also recorded on the document.
 */
export const vectorIngestion = definePipeline({
  name: 'vector-ingestion',
  description: 'load a document from object storage, embed its chunks, and replace them in the vector store',
  params: {
    key: { type: 'string', description: 'object key of the document' },
    change: {
      type: 'string',
      description: 'what happened to the object (`created` or `removed`), recorded with the run',
      default: 'created',
    },
  },
  steps: [
    {
      name: 'load-document',
      handler: 'knowledge.load-document',
      description: 'read the object, hash it, extract its text',
      params: ['key'],
      outputs: ['loaded'],
      retry: { limit: 2, backoffMs: 1_000 },
      timeoutMs: 10 * 60_000,
    },
    {
      name: 'create-vectors',
      handler: 'knowledge.create-vectors',
      description: 'split into chunks and embed them',
      inputs: { loaded: { from: 'load-document', artifact: 'loaded' } },
      outputs: ['vectorized'],
      // The embedder may be a remote server that is briefly down.
      retry: { limit: 3, backoffMs: 2_000 },
      timeoutMs: 60 * 60_000,
    },
    {
      name: 'ingest-vectors',
      handler: 'knowledge.ingest-vectors',
      description: "replace the document's chunks in the vector store and the metadata DB",
      inputs: { vectorized: { from: 'create-vectors', artifact: 'vectorized' } },
      outputs: ['result'],
      retry: { limit: 2, backoffMs: 1_000 },
      timeoutMs: 30 * 60_000,
    },
  ],
  argoEvents: [
    { source: 'uploads', parameters: { key: 'notification.0.s3.object.key' }, constants: { change: 'created' } },
    { source: 'removals', parameters: { key: 'notification.0.s3.object.key' }, constants: { change: 'removed' } },
  ],
});

/** The knowledge steps, each given the run's AbortSignal and a logger that records into the step log. */
export function vectorIngestionHandlers(knowledge: () => KnowledgeDeps): Record<string, StepHandler> {
  const depsFor = (context: StepContext): KnowledgeDeps => ({ ...knowledge(), signal: context.signal });
  return {
    'knowledge.load-document': async (context) => {
      const loaded = await loadDocument(depsFor(context), { key: String(context.params.key) });
      context.lineage.read(lineageDatasets.object(loaded.key));
      if (loaded.status === 'failed') {
        // Recorded on the document already; the run fails with the same reason, so the two agree.
        throw new DocumentNotLoadedError(loaded.key, loaded.error ?? 'the document could not be read');
      }
      context.log.info(`document ${loaded.key}: ${loaded.status}`, {
        version: loaded.version,
        sections: loaded.sections.length,
      });
      await context.artifacts.writeJson('loaded', loaded);
    },
    'knowledge.create-vectors': async (context) => {
      const loaded = await context.inputs.json<LoadedDocument>('loaded');
      await context.progress(0, `embedding ${loaded.sections.length} sections`);
      const vectorized = await createVectors(depsFor(context), loaded);
      context.log.info(`document ${vectorized.key}: ${vectorized.status}, ${vectorized.chunks.length} chunks`, {
        embedder: vectorized.embedder,
      });
      await context.artifacts.writeJson('vectorized', vectorized);
    },
    'knowledge.ingest-vectors': async (context) => {
      const vectorized = await context.inputs.json<VectorizedDocument>('vectorized');
      const result = await ingestVectors(depsFor(context), vectorized);
      if (result.status === 'ingested' && result.documentId && result.version) {
        // The version's chunks and its document row exist; which run (and so which upload event) made them does not.
        await context.lineage.link([
          {
            from: { kind: 'run', id: context.runId },
            to: { kind: 'document', id: documentNodeId(result.documentId, result.version) },
            relation: 'ingested',
            attributes: { chunks: result.chunkCount },
          },
        ]);
        context.lineage.wrote(lineageDatasets.document(result.key, result.version));
      }
      context.log.info(`document ${result.key}: ${result.status}, ${result.chunkCount} chunks stored`);
      await context.artifacts.writeJson('result', result);
    },
  };
}
