import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ValidationError } from '../core/errors.ts';
import { parseInput } from '../core/validate.ts';
import type { MetadataDb } from '../db/index.ts';
import { lineageGraph } from './graph.ts';
import { isLineageKind, UnknownLineageKindError } from './kinds.ts';
import { openLineageNamespace, toOpenLineage } from './openlineage.ts';
import { createRunEventStore, type RunEventStore } from './run-events.ts';
import { createLineageStore } from './store.ts';

export interface LineageRouteDeps {
  db: MetadataDb;
  /** The data dir names the OpenLineage namespace (`bertha://<host><data dir>`). */
  dataDir: string;
}

const graphQuery = z
  .object({
    direction: z.enum(['both', 'upstream', 'downstream']).default('both'),
    depth: z.coerce.number().int().min(1).max(20).default(8),
    maxNodes: z.coerce.number().int().min(1).max(2000).default(300),
  })
  .strict();

const exportQuery = z
  .object({
    since: z.iso.datetime({ offset: true }).optional(),
    run: z.string().min(1).optional(),
  })
  .strict();

/** Events read per query while an export streams. */
const EXPORT_PAGE = 500;

async function* exportLines(events: RunEventStore, filter: z.output<typeof exportQuery>, namespace: string) {
  const since = filter.since ? new Date(filter.since).toISOString() : undefined;
  let after: string | undefined;
  for (;;) {
    const page = await events.list({ since, pipelineRunId: filter.run, after, limit: EXPORT_PAGE });
    for (const event of page) yield `${JSON.stringify(toOpenLineage(event, namespace))}\n`;
    if (page.length < EXPORT_PAGE) return;
    after = page.at(-1)?.id;
  }
}

/**
 * Lineage API: `GET /v1/lineage/{kind}/{id}` walks the graph from one node (the id may hold
 * slashes: `model-version/bertha-chat/3`); `GET /v1/lineage/openlineage` streams the pipeline
 * steps' OpenLineage run events as JSON lines.
 */
export function registerLineageRoutes(app: FastifyInstance, deps: LineageRouteDeps): void {
  const store = createLineageStore(deps.db);
  const events = createRunEventStore(deps.db);
  const namespace = openLineageNamespace(deps.dataDir);

  app.get('/v1/lineage/openlineage', async (request, reply) => {
    const filter = parseInput(exportQuery, request.query, 'query');
    return reply.type('application/x-ndjson').send(Readable.from(exportLines(events, filter, namespace)));
  });

  app.get<{ Params: { kind: string; '*': string } }>('/v1/lineage/:kind/*', async (request) => {
    const { kind } = request.params;
    if (!isLineageKind(kind)) throw new UnknownLineageKindError(kind);
    const id = request.params['*'];
    if (!id) throw new ValidationError(`a ${kind} id is required: /v1/lineage/${kind}/<id>`);
    const options = parseInput(graphQuery, request.query, 'query');
    return lineageGraph({ db: deps.db, store }, { kind, id }, options);
  });
}
