import { createHash } from 'node:crypto';
import type { MetadataDb } from '../../db/index.ts';
import { documentNodeId, type LineageEdge, lineageDatasets } from '../../lineage/index.ts';
import { type ObjectStore, readObject } from '../../objects/index.ts';
import type { BuiltDataset } from '../../train/index.ts';

/** A dataset row as the split files hold it: a feedback target, a knowledge passage or a negative. */
interface DatasetRow {
  kind: 'feedback' | 'knowledge' | 'negative';
  id: string;
  source?: string;
  document_id?: string;
}

/** Chunk ids per query when looking up which document version a passage came from. */
const LOOKUP_BATCH = 500;

/**
 * What `build-dataset` records about a dataset version: an edge from every feedback row it
 * holds (with the split, the role and the SHA-256 of the row exactly as stored, so a vote
 * changed later is still told apart), from every document version its passages came from,
 * and from the run that built it, with the counts and window.
 */
export async function datasetLineage(
  deps: { db: MetadataDb; objects: ObjectStore },
  dataset: BuiltDataset,
  runId: string,
): Promise<{ edges: LineageEdge[]; documents: string[] }> {
  const to = { kind: 'dataset', id: dataset.version } as const;
  const edges: LineageEdge[] = [];
  const passages = new Set<string>();
  const splits = [
    ['train', dataset.trainKey],
    ['valid', dataset.validKey],
    ['negatives', dataset.negativesKey],
  ] as const;
  for (const [split, key] of splits) {
    const lines = (await readObject(deps.objects, key)).toString('utf8').split('\n');
    for (const line of lines) {
      if (line.trim() === '') continue;
      const row = JSON.parse(line) as DatasetRow;
      if (row.kind === 'knowledge') {
        passages.add(row.id);
        continue;
      }
      edges.push({
        from: { kind: 'feedback', id: row.id },
        to,
        relation: 'contributed to',
        attributes: {
          split,
          role: row.kind === 'negative' ? 'negative' : row.source,
          contentHash: createHash('sha256').update(line).digest('hex'),
        },
      });
    }
  }

  const perVersion = new Map<string, { key: string; version: string; passages: number }>();
  const chunkIds = [...passages];
  for (let start = 0; start < chunkIds.length; start += LOOKUP_BATCH) {
    const rows = await deps.db.kysely
      .selectFrom('chunks')
      .innerJoin('documents', 'documents.id', 'chunks.document_id')
      .select(['chunks.document_id', 'chunks.document_version', 'documents.key'])
      .where('chunks.id', 'in', chunkIds.slice(start, start + LOOKUP_BATCH))
      .execute();
    for (const row of rows) {
      const id = documentNodeId(row.document_id, row.document_version);
      const seen = perVersion.get(id) ?? { key: row.key, version: row.document_version, passages: 0 };
      seen.passages += 1;
      perVersion.set(id, seen);
    }
  }
  for (const [id, document] of perVersion) {
    edges.push({
      from: { kind: 'document', id },
      to,
      relation: 'contributed to',
      attributes: { passages: document.passages },
    });
  }
  edges.push({
    from: { kind: 'run', id: runId },
    to,
    relation: 'built',
    attributes: {
      counts: dataset.counts,
      window: dataset.window,
      manifestKey: dataset.manifestKey,
      trackingRunId: dataset.trackingRunId,
    },
  });
  const documents = [...perVersion.values()].map((document) =>
    lineageDatasets.document(document.key, document.version),
  );
  return { edges, documents };
}
