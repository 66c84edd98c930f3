import multipart from '@fastify/multipart';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { NotFoundError, ValidationError } from '../core/errors.ts';
import { parseInput } from '../core/validate.ts';
import { type EventBus, type ObjectChangeFeed, publishObjectEvent } from '../events/index.ts';
import { unsafeKeyReason } from '../objects/index.ts';
import { createDocumentStore } from './documents.ts';
import { ingestRefusal } from './formats.ts';
import { type KnowledgeDeps, removeDocument } from './ingest.ts';
import { searchKnowledge } from './search.ts';
import type { SearchMode } from './vector-store.ts';

export interface KnowledgeRouteDeps {
  knowledge: KnowledgeDeps;
  bus: EventBus;
  /** Told about uploads and deletions so the watcher does not announce them a second time. */
  feed: ObjectChangeFeed | undefined;
  documentsPrefix: string;
  maxUploadBytes: number;
  searchMode: SearchMode;
}

/**
 * The object key for an uploaded file: its own name (any folders a client put in the file
 * name, including `../`, are dropped) or the `key` field, under the documents prefix.
 */
export function uploadKey(prefix: string, filename: string | undefined, explicitKey: string | undefined): string {
  let relative: string;
  if (explicitKey !== undefined) {
    relative = explicitKey.trim();
  } else {
    const name = (filename ?? '').split(/[\\/]/).pop() ?? '';
    relative = name.trim();
  }
  const key = `${prefix}${relative}`;
  const reason = relative ? unsafeKeyReason(key) : 'empty file name';
  if (reason) throw new ValidationError(`invalid document name ${JSON.stringify(relative)}: ${reason}`, { key });
  return key;
}

const listQuery = z
  .object({
    status: z.enum(['pending', 'ingested', 'failed']).optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  })
  .strict();

const searchBody = z
  .object({
    query: z.string().min(1),
    topK: z.number().int().min(1).max(100).default(5),
    mode: z.enum(['vector', 'fulltext', 'hybrid']).optional(),
    filter: z
      .object({
        documentKeys: z.array(z.string()).optional(),
        keyPrefix: z.string().optional(),
        metadata: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

/** Upload, list, inspect and delete documents; search for debugging retrieval. */
export function registerKnowledgeRoutes(app: FastifyInstance, deps: KnowledgeRouteDeps): void {
  const documents = createDocumentStore(deps.knowledge.db);
  const { objects } = deps.knowledge;

  // Multipart parsing lives in its own scope so it cannot clash with another route's registration.
  app.register(async (scope) => {
    await scope.register(multipart, {
      limits: { fileSize: deps.maxUploadBytes, files: 100, fields: 10 },
      throwFileSizeLimit: true,
    });

    scope.post('/v1/documents', async (request, reply) => {
      if (!request.isMultipart()) throw new ValidationError('expected multipart/form-data with one or more files');
      const stored = [];
      let explicitKey: string | undefined;
      for await (const part of request.parts()) {
        if (part.type === 'field') {
          if (part.fieldname === 'key') explicitKey = String(part.value);
          continue;
        }
        const key = uploadKey(deps.documentsPrefix, part.filename, explicitKey);
        explicitKey = undefined;
        // toBuffer throws fastify's 413 RequestFileTooLargeError past `fileSize`.
        const bytes = await part.toBuffer();
        // Files earlier in the same request are already stored and announced: the refusal says which.
        const refusal = ingestRefusal(key, bytes, stored.length > 0 ? { stored: stored.map((item) => item.key) } : {});
        if (refusal) throw refusal;
        const info = await objects.put(key, bytes);
        await deps.feed?.note(key, info);
        const document = await documents.markPending(key, info.size);
        const { event } = await publishObjectEvent(deps.bus, {
          type: 'object.created',
          source: 'upload',
          key,
          etag: info.etag,
          size: info.size,
        });
        stored.push({
          key,
          size: info.size,
          etag: info.etag,
          documentId: document.id,
          status: document.status,
          eventId: event.id,
        });
      }
      if (stored.length === 0) throw new ValidationError('no file in the upload');
      return reply.status(201).send({ data: stored });
    });
  });

  app.get('/v1/documents', async (request) => {
    const query = parseInput(listQuery, request.query, 'query');
    return { data: await documents.list(query) };
  });

  app.get<{ Params: { id: string } }>('/v1/documents/:id', async (request) => {
    const document = await documents.byId(request.params.id);
    if (!document) throw new NotFoundError('document', request.params.id);
    return { ...document, chunks: await documents.chunksOf(document.id) };
  });

  app.delete<{ Params: { id: string } }>('/v1/documents/:id', async (request) => {
    const document = await documents.byId(request.params.id);
    if (!document) throw new NotFoundError('document', request.params.id);
    await objects.delete(document.key);
    await deps.feed?.note(document.key, undefined);
    const removed = await removeDocument(deps.knowledge, { key: document.key });
    await publishObjectEvent(deps.bus, { type: 'object.removed', source: 'api', key: document.key });
    return { id: document.id, key: document.key, deleted: true, chunksRemoved: removed.chunksRemoved };
  });

  app.post('/v1/knowledge/search', async (request) => {
    const body = parseInput(searchBody, request.body);
    const mode = body.mode ?? deps.searchMode;
    const started = performance.now();
    const data = await searchKnowledge(deps.knowledge, {
      query: body.query,
      topK: body.topK,
      mode,
      filter: body.filter,
    });
    return { mode, tookMs: Math.round((performance.now() - started) * 100) / 100, data };
  });
}
