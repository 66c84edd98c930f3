import type { MetadataDb } from '../db/index.ts';
import { documentNodeId, type LineageDirection, type LineageKind, type NodeRef } from './kinds.ts';

/** One neighbour of a node and the edge to it, as `from <relation> to` reads downstream. */
export interface Link {
  node: NodeRef;
  relation: string;
  attributes?: Record<string, unknown>;
}

type Finder = (db: MetadataDb, id: string, limit: number) => Promise<Link[]>;

/** What an answer's `sources_json` holds per retrieved passage (src/chat/answers.ts `AnswerSource`). */
interface AnswerSource {
  documentId?: string;
  documentKey?: string;
  documentVersion?: string;
  chunkId?: string;
  score?: number;
}

export function parseSources(json: string): AnswerSource[] {
  const parsed = JSON.parse(json) as unknown;
  return Array.isArray(parsed) ? (parsed as AnswerSource[]) : [];
}

/** `<model>/<n>` as the registry keys it; undefined for `starter`, `local` and other unregistered versions. */
export function registryVersion(id: string): { name: string; version: number } | undefined {
  const slash = id.lastIndexOf('/');
  const version = Number(id.slice(slash + 1));
  return slash > 0 && Number.isInteger(version) && version > 0 ? { name: id.slice(0, slash), version } : undefined;
}

/** `<doc id>@<version>` split in two; undefined when the id has no version. */
export function documentVersion(id: string): { documentId: string; version: string } | undefined {
  const at = id.lastIndexOf('@');
  return at > 0 ? { documentId: id.slice(0, at), version: id.slice(at + 1) } : undefined;
}

const link = (kind: LineageKind, id: string, relation: string, attributes?: Record<string, unknown>): Link => ({
  node: { kind, id },
  relation,
  ...(attributes ? { attributes } : {}),
});

/** The answers whose retrieved passages include `chunkId`, newest first. */
async function answersCiting(db: MetadataDb, chunkId: string, limit: number) {
  const rows = await db.kysely
    .selectFrom('answers')
    .select(['id', 'sources_json'])
    .where('sources_json', 'like', `%${chunkId}%`)
    .orderBy('created_at', 'desc')
    .limit(limit)
    .execute();
  return rows.flatMap((row) => {
    const source = parseSources(row.sources_json).find((candidate) => candidate.chunkId === chunkId);
    return source ? [{ answerId: row.id, source }] : [];
  });
}

/**
 * The links existing rows already hold, per kind and direction: `feedback.answer_id`,
 * `answers.model_version` and `sources_json`, `model_versions.run_id`, `rollouts`' versions,
 * `pipeline_runs.trigger_id`, `pipeline_triggers.event_id`, `chunks.document_version`,
 * `rollout_decisions.rollout_id`. Edges no row holds are in `lineage_edges` (store.ts).
 */
const FINDERS: Partial<Record<LineageKind, Partial<Record<LineageDirection, Finder>>>> = {
  answer: {
    async upstream(db, id) {
      const row = await db.kysely
        .selectFrom('answers')
        .select(['model_version', 'sources_json'])
        .where('id', '=', id)
        .executeTakeFirst();
      if (!row) return [];
      const chunks = new Map<string, AnswerSource>();
      for (const source of parseSources(row.sources_json)) if (source.chunkId) chunks.set(source.chunkId, source);
      return [
        link('model-version', row.model_version, 'answered'),
        ...[...chunks].map(([chunkId, source]) =>
          link('chunk', chunkId, 'grounded', { score: source.score, document: source.documentKey }),
        ),
      ];
    },
    async downstream(db, id, limit) {
      const rows = await db.kysely
        .selectFrom('feedback')
        .select(['id', 'rating'])
        .where('answer_id', '=', id)
        .orderBy('created_at')
        .limit(limit)
        .execute();
      return rows.map((row) => link('feedback', row.id, 'rated in', { rating: row.rating }));
    },
  },
  feedback: {
    async upstream(db, id) {
      const row = await db.kysely.selectFrom('feedback').select('answer_id').where('id', '=', id).executeTakeFirst();
      return row ? [link('answer', row.answer_id, 'rated in')] : [];
    },
  },
  chunk: {
    async upstream(db, id) {
      const row = await db.kysely
        .selectFrom('chunks')
        .select(['document_id', 'document_version'])
        .where('id', '=', id)
        .executeTakeFirst();
      if (row) return [link('document', documentNodeId(row.document_id, row.document_version), 'split into')];
      // A passage of a version since replaced: the answers that used it still say where it came from.
      const [cited] = await answersCiting(db, id, 1);
      const { documentId, documentVersion: version } = cited?.source ?? {};
      return documentId && version ? [link('document', documentNodeId(documentId, version), 'split into')] : [];
    },
    async downstream(db, id, limit) {
      return (await answersCiting(db, id, limit)).map((cited) =>
        link('answer', cited.answerId, 'grounded', { score: cited.source.score }),
      );
    },
  },
  document: {
    async downstream(db, id, limit) {
      const parsed = documentVersion(id);
      if (!parsed) return [];
      const rows = await db.kysely
        .selectFrom('chunks')
        .select(['id', 'ordinal'])
        .where('document_id', '=', parsed.documentId)
        .where('document_version', '=', parsed.version)
        .orderBy('ordinal')
        .limit(limit)
        .execute();
      return rows.map((row) => link('chunk', row.id, 'split into', { ordinal: Number(row.ordinal) }));
    },
  },
  event: {
    async downstream(db, id, limit) {
      const rows = await db.kysely
        .selectFrom('pipeline_triggers')
        .select(['id', 'sensor'])
        .where('event_id', '=', id)
        .orderBy('created_at')
        .limit(limit)
        .execute();
      return rows.map((row) => link('trigger', row.id, 'fired', { sensor: row.sensor }));
    },
  },
  trigger: {
    async upstream(db, id) {
      const row = await db.kysely
        .selectFrom('pipeline_triggers')
        .select('event_id')
        .where('id', '=', id)
        .executeTakeFirst();
      return row?.event_id ? [link('event', row.event_id, 'fired')] : [];
    },
    async downstream(db, id) {
      const row = await db.kysely
        .selectFrom('pipeline_triggers')
        .select('run_id')
        .where('id', '=', id)
        .executeTakeFirst();
      return row?.run_id ? [link('run', row.run_id, 'launched')] : [];
    },
  },
  run: {
    async upstream(db, id) {
      const row = await db.kysely
        .selectFrom('pipeline_runs')
        .select('trigger_id')
        .where('id', '=', id)
        .executeTakeFirst();
      return row?.trigger_id ? [link('trigger', row.trigger_id, 'launched')] : [];
    },
  },
  'tracking-run': {
    async downstream(db, id, limit) {
      const rows = await db.kysely
        .selectFrom('model_versions')
        .select(['name', 'version'])
        .where('run_id', '=', id)
        .orderBy('version')
        .limit(limit)
        .execute();
      return rows.map((row) => link('model-version', `${row.name}/${row.version}`, 'registered'));
    },
  },
  'model-version': {
    async upstream(db, id) {
      const parsed = registryVersion(id);
      if (!parsed) return [];
      const row = await db.kysely
        .selectFrom('model_versions')
        .select(['run_id', 'bundle_json'])
        .where('name', '=', parsed.name)
        .where('version', '=', parsed.version)
        .executeTakeFirst();
      if (!row) return [];
      const links: Link[] = [];
      const parent = row.bundle_json ? parentVersionOf(row.bundle_json) : undefined;
      if (parent) links.push(link('model-version', parent, 'parent of'));
      if (row.run_id) links.push(link('tracking-run', row.run_id, 'registered'));
      return links;
    },
    async downstream(db, id, limit) {
      const rollouts = await db.kysely
        .selectFrom('rollouts')
        .select(['id', 'champion_version', 'challenger_version'])
        .where((eb) => eb.or([eb('challenger_version', '=', id), eb('champion_version', '=', id)]))
        .orderBy('created_at')
        .limit(limit)
        .execute();
      const children = await db.kysely
        .selectFrom('model_versions')
        .select(['name', 'version', 'bundle_json'])
        .where('bundle_json', 'like', `%"parentVersion":"${id}"%`)
        .orderBy('version')
        .limit(limit)
        .execute();
      // Answers last: a served version has many, and the node budget should reach its rollouts first.
      const answers = await db.kysely
        .selectFrom('answers')
        .select('id')
        .where('model_version', '=', id)
        .orderBy('created_at', 'desc')
        .limit(limit)
        .execute();
      return [
        ...rollouts.map((row) =>
          link('rollout', row.id, row.challenger_version === id ? 'challenger in' : 'champion in'),
        ),
        ...children
          .filter((row) => row.bundle_json && parentVersionOf(row.bundle_json) === id)
          .map((row) => link('model-version', `${row.name}/${row.version}`, 'parent of')),
        ...answers.map((row) => link('answer', row.id, 'answered')),
      ];
    },
  },
  rollout: {
    async upstream(db, id) {
      const row = await db.kysely
        .selectFrom('rollouts')
        .select(['champion_version', 'challenger_version'])
        .where('id', '=', id)
        .executeTakeFirst();
      return row
        ? [
            link('model-version', row.challenger_version, 'challenger in'),
            link('model-version', row.champion_version, 'champion in'),
          ]
        : [];
    },
    async downstream(db, id, limit) {
      const rows = await db.kysely
        .selectFrom('rollout_decisions')
        .select(['id', 'kind'])
        .where('rollout_id', '=', id)
        .orderBy('created_at')
        .orderBy('id')
        .limit(limit)
        .execute();
      return rows.map((row) => link('rollout-decision', row.id, 'took', { decision: row.kind }));
    },
  },
  'rollout-decision': {
    async upstream(db, id) {
      const row = await db.kysely
        .selectFrom('rollout_decisions')
        .select('rollout_id')
        .where('id', '=', id)
        .executeTakeFirst();
      return row ? [link('rollout', row.rollout_id, 'took')] : [];
    },
  },
};

export function parentVersionOf(bundleJson: string): string | undefined {
  const bundle = JSON.parse(bundleJson) as { lineage?: { parentVersion?: unknown } };
  const parent = bundle.lineage?.parentVersion;
  return typeof parent === 'string' && parent !== '' ? parent : undefined;
}

/** The neighbours existing rows give `node` in one direction, at most `limit` per kind of link. */
export function rowLinks(db: MetadataDb, node: NodeRef, direction: LineageDirection, limit: number): Promise<Link[]> {
  const finder = FINDERS[node.kind]?.[direction];
  return finder ? finder(db, node.id, limit) : Promise.resolve([]);
}
