import { isoNow } from '../core/ids.ts';
import type { MetadataDb } from '../db/index.ts';
import type { LineageDirection, LineageKind, NodeRef } from './kinds.ts';

/** A link no existing row holds, written by the step that made it (`feedback -> dataset`, `gate -> rollout`). */
export interface LineageEdge {
  from: NodeRef;
  to: NodeRef;
  /** What `from` is to `to`, as a verb: `contributed`, `trained`, `evaluated`, `started`. */
  relation: string;
  /** What the link carries: the content hash of a feedback row as the dataset holds it, an arm's verdict. */
  attributes?: Record<string, unknown>;
}

export interface StoredEdge extends LineageEdge {
  attributes: Record<string, unknown>;
  createdAt: string;
}

/** Where steps write their edges. A second write of the same edge changes nothing, so a retried step may repeat it. */
export interface LineageRecorder {
  link(edges: LineageEdge[]): Promise<void>;
}

/** The recorded edges, written as the loop runs and read by the graph query. */
export interface LineageStore extends LineageRecorder {
  /** Edges leaving `node` (downstream) or entering it (upstream), oldest first, at most `limit`. */
  edges(
    node: NodeRef,
    direction: LineageDirection,
    options: { kind?: LineageKind; limit: number },
  ): Promise<StoredEdge[]>;
}

/** The row the `0110_lineage` migration creates; this module is its only reader and writer. */
interface LineageEdgesTable {
  from_kind: string;
  from_id: string;
  to_kind: string;
  to_id: string;
  relation: string;
  attributes_json: string;
  created_at: string;
}

/** Rows per insert: far below SQLite's bound-parameter limit at 7 columns a row. */
const BATCH = 500;

export function createLineageStore(db: MetadataDb): LineageStore {
  const kysely = db.kysely.withTables<{ lineage_edges: LineageEdgesTable }>();
  return {
    async link(edges) {
      const now = isoNow();
      for (let start = 0; start < edges.length; start += BATCH) {
        const rows = edges.slice(start, start + BATCH).map((edge) => ({
          from_kind: edge.from.kind,
          from_id: edge.from.id,
          to_kind: edge.to.kind,
          to_id: edge.to.id,
          relation: edge.relation,
          attributes_json: JSON.stringify(edge.attributes ?? {}),
          created_at: now,
        }));
        await kysely
          .insertInto('lineage_edges')
          .values(rows)
          .onConflict((oc) => oc.columns(['from_kind', 'from_id', 'to_kind', 'to_id', 'relation']).doNothing())
          .execute();
      }
    },
    async edges(node, direction, options) {
      const [side, other] = direction === 'downstream' ? (['from', 'to'] as const) : (['to', 'from'] as const);
      let query = kysely
        .selectFrom('lineage_edges')
        .selectAll()
        .where(`${side}_kind`, '=', node.kind)
        .where(`${side}_id`, '=', node.id);
      if (options.kind) query = query.where(`${other}_kind`, '=', options.kind);
      const rows = await query.orderBy('created_at').orderBy(`${other}_id`).limit(options.limit).execute();
      return rows.map((row) => ({
        from: { kind: row.from_kind as LineageKind, id: row.from_id },
        to: { kind: row.to_kind as LineageKind, id: row.to_id },
        relation: row.relation,
        attributes: JSON.parse(row.attributes_json) as Record<string, unknown>,
        createdAt: row.created_at,
      }));
    },
  };
}
