import type { MetadataDb } from '../db/index.ts';
import type { LineageKind, NodeRef } from './kinds.ts';
import { documentVersion, parseSources, registryVersion } from './row-links.ts';
import type { LineageStore } from './store.ts';

/** A node as the API, the CLI tree and the dashboard show it. */
export interface LineageNode extends NodeRef {
  /** One line for a person. */
  label: string;
  status?: string | undefined;
  /** When it happened or was last changed (ISO-8601). */
  at?: string | undefined;
  details: Record<string, unknown>;
}

type Describer = (db: MetadataDb, store: LineageStore, id: string) => Promise<LineageNode | undefined>;

function clip(text: string, length = 60): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > length ? `${flat.slice(0, length - 1)}…` : flat;
}

function lastUserTurn(messagesJson: string): string {
  const messages = JSON.parse(messagesJson) as Array<{ role?: string; content?: unknown }>;
  const content = messages.findLast((message) => message.role === 'user')?.content;
  return typeof content === 'string' ? content : '';
}

/** Thumbs-down share of an arm's votes, as the rollout controller saw them. */
function downRate(arm: unknown): number | null {
  const { up, down } = (arm ?? {}) as { up?: number; down?: number };
  const votes = (up ?? 0) + (down ?? 0);
  return votes > 0 ? (down ?? 0) / votes : null;
}

const percent = (rate: number | null) => (rate === null ? 'no votes' : `${Math.round(rate * 100)}% down`);

const DESCRIBERS: Record<LineageKind, Describer> = {
  async answer(db, _store, id) {
    const row = await db.kysely
      .selectFrom('answers')
      .select(['model_version', 'messages_json', 'answer', 'status', 'created_at', 'sources_json', 'provenance_json'])
      .where('id', '=', id)
      .executeTakeFirst();
    if (!row) return undefined;
    const question = lastUserTurn(row.messages_json);
    return {
      kind: 'answer',
      id,
      label: `"${clip(question, 50)}" → "${clip(row.answer, 50)}"`,
      status: row.status,
      at: row.created_at,
      details: {
        modelVersion: row.model_version,
        question,
        answer: row.answer,
        sources: parseSources(row.sources_json),
        // The answer's stamp: base and adapter digests, template, settings, document versions.
        provenance: row.provenance_json ? (JSON.parse(row.provenance_json) as unknown) : null,
      },
    };
  },
  async feedback(db, _store, id) {
    const row = await db.kysely
      .selectFrom('feedback')
      .select(['answer_id', 'user_id', 'model_version', 'rating', 'comment', 'correction', 'updated_at'])
      .where('id', '=', id)
      .executeTakeFirst();
    if (!row) return undefined;
    const said = row.correction ?? row.comment;
    return {
      kind: 'feedback',
      id,
      label: `${row.rating === 'up' ? 'thumbs up' : 'thumbs down'} by ${row.user_id}${said ? `: "${clip(said, 50)}"` : ''}`,
      status: row.rating,
      at: row.updated_at,
      details: {
        answerId: row.answer_id,
        user: row.user_id,
        modelVersion: row.model_version,
        rating: row.rating,
        comment: row.comment,
        correction: row.correction,
      },
    };
  },
  async chunk(db, _store, id) {
    const row = await db.kysely
      .selectFrom('chunks')
      .innerJoin('documents', 'documents.id', 'chunks.document_id')
      .select(['chunks.text', 'chunks.ordinal', 'chunks.created_at', 'documents.key', 'chunks.document_version'])
      .where('chunks.id', '=', id)
      .executeTakeFirst();
    if (row) {
      return {
        kind: 'chunk',
        id,
        label: `${row.key} #${row.ordinal}: "${clip(row.text, 50)}"`,
        at: row.created_at,
        details: {
          document: row.key,
          documentVersion: row.document_version,
          ordinal: Number(row.ordinal),
          text: row.text,
        },
      };
    }
    const cited = await db.kysely
      .selectFrom('answers')
      .select('sources_json')
      .where('sources_json', 'like', `%${id}%`)
      .limit(1)
      .executeTakeFirst();
    const source = cited && parseSources(cited.sources_json).find((candidate) => candidate.chunkId === id);
    if (!source) return undefined;
    return {
      kind: 'chunk',
      id,
      label: `${source.documentKey ?? source.documentId} (a version since replaced)`,
      status: 'replaced',
      details: { document: source.documentKey, documentVersion: source.documentVersion },
    };
  },
  async document(db, _store, id) {
    const parsed = documentVersion(id);
    if (!parsed) return undefined;
    const row = await db.kysely
      .selectFrom('documents')
      .select(['key', 'version', 'status', 'updated_at', 'ingested_at', 'chunk_count'])
      .where('id', '=', parsed.documentId)
      .executeTakeFirst();
    if (!row) return undefined;
    const current = row.version === parsed.version;
    return {
      kind: 'document',
      id,
      label: `${row.key}@${parsed.version.slice(0, 12)}${current ? '' : ' (since replaced)'}`,
      status: current ? row.status : 'replaced',
      at: current ? (row.ingested_at ?? row.updated_at) : undefined,
      details: {
        key: row.key,
        version: parsed.version,
        currentVersion: row.version,
        ...(current ? { chunks: Number(row.chunk_count) } : {}),
      },
    };
  },
  async event(db, _store, id) {
    const row = await db.kysely
      .selectFrom('events')
      .select(['type', 'source', 'subject', 'created_at', 'payload_json'])
      .where('id', '=', id)
      .executeTakeFirst();
    if (!row) return undefined;
    return {
      kind: 'event',
      id,
      label: `${row.type} from ${row.source}${row.subject ? ` (${row.subject})` : ''}`,
      at: row.created_at,
      details: { type: row.type, source: row.source, subject: row.subject, payload: JSON.parse(row.payload_json) },
    };
  },
  async trigger(db, _store, id) {
    const row = await db.kysely
      .selectFrom('pipeline_triggers')
      .select(['sensor', 'pipeline', 'status', 'reason', 'created_at', 'params_json'])
      .where('id', '=', id)
      .executeTakeFirst();
    if (!row) return undefined;
    return {
      kind: 'trigger',
      id,
      label: `sensor ${row.sensor} → ${row.pipeline}${row.reason ? ` (${row.reason})` : ''}`,
      status: row.status,
      at: row.created_at,
      details: { sensor: row.sensor, pipeline: row.pipeline, params: JSON.parse(row.params_json), reason: row.reason },
    };
  },
  async run(db, _store, id) {
    const row = await db.kysely
      .selectFrom('pipeline_runs')
      .select(['pipeline', 'status', 'source', 'params_json', 'error', 'created_at', 'finished_at'])
      .where('id', '=', id)
      .executeTakeFirst();
    if (!row) return undefined;
    return {
      kind: 'run',
      id,
      label: `${row.pipeline} run, started by ${row.source}`,
      status: row.status,
      at: row.finished_at ?? row.created_at,
      details: { pipeline: row.pipeline, params: JSON.parse(row.params_json), error: row.error },
    };
  },
  async dataset(_db, store, id) {
    const node = { kind: 'dataset', id } as const;
    const [built] = await store.edges(node, 'upstream', { kind: 'run', limit: 1 });
    const touching = built ?? (await store.edges(node, 'downstream', { limit: 1 }))[0];
    if (!touching) return undefined;
    const counts = built?.attributes.counts as Record<string, number> | undefined;
    const summary = counts
      ? `: ${counts.train ?? 0} train, ${counts.valid ?? 0} valid, ${counts.negatives ?? 0} negatives`
      : '';
    return {
      kind: 'dataset',
      id,
      label: `dataset ${id}${summary}`,
      at: touching.createdAt,
      details: built?.attributes ?? {},
    };
  },
  async 'tracking-run'(db, store, id) {
    const row = await db.kysely
      .selectFrom('tracking_runs')
      .select(['name', 'status', 'start_time', 'end_time'])
      .where('run_id', '=', id)
      .executeTakeFirst();
    if (row) {
      const started = new Date(Number(row.start_time)).toISOString();
      return {
        kind: 'tracking-run',
        id,
        label: `tracking run ${row.name}`,
        status: row.status,
        at: started,
        details: {},
      };
    }
    // Recorded on a remote MLflow (`tracking.uri`): known here through the links to it.
    const registered = await db.kysely
      .selectFrom('model_versions')
      .select('name')
      .where('run_id', '=', id)
      .executeTakeFirst();
    const linked = registered ?? (await store.edges({ kind: 'tracking-run', id }, 'upstream', { limit: 1 }))[0];
    if (!linked) return undefined;
    return { kind: 'tracking-run', id, label: `tracking run ${id} (on the remote tracker)`, details: {} };
  },
  async 'model-version'(db, store, id) {
    const parsed = registryVersion(id);
    const row = parsed
      ? await db.kysely
          .selectFrom('model_versions')
          .select(['description', 'status', 'creation_timestamp'])
          .where('name', '=', parsed.name)
          .where('version', '=', parsed.version)
          .executeTakeFirst()
      : undefined;
    if (parsed && row) {
      const tags = await db.kysely
        .selectFrom('model_version_tags')
        .select(['key', 'value'])
        .where('name', '=', parsed.name)
        .where('version', '=', parsed.version)
        .execute();
      const aliases = await db.kysely
        .selectFrom('registered_model_aliases')
        .select('alias')
        .where('name', '=', parsed.name)
        .where('version', '=', parsed.version)
        .execute();
      const tag = (key: string) => tags.find((item) => item.key === key)?.value;
      const arm = tag('bertha.arm');
      const gate = tag('bertha.gate.decision');
      return {
        kind: 'model-version',
        id,
        label: `${id}${arm ? ` (${arm} arm)` : ''}${aliases.length ? ` @${aliases.map((a) => a.alias).join(' @')}` : ''}`,
        status: gate ? `gate ${gate}` : row.status,
        at: new Date(Number(row.creation_timestamp)).toISOString(),
        details: {
          description: row.description,
          aliases: aliases.map((item) => item.alias),
          tags: Object.fromEntries(tags.map((item) => [item.key, item.value])),
        },
      };
    }
    // The starter, a configured or an upstream model: known by the answers and rollouts that name it.
    const answered = await db.kysely
      .selectFrom('answers')
      .select('created_at')
      .where('model_version', '=', id)
      .limit(1)
      .executeTakeFirst();
    const rolled = await db.kysely
      .selectFrom('rollouts')
      .select('id')
      .where((eb) => eb.or([eb('challenger_version', '=', id), eb('champion_version', '=', id)]))
      .limit(1)
      .executeTakeFirst();
    const edged = (await store.edges({ kind: 'model-version', id }, 'downstream', { limit: 1 }))[0];
    if (!answered && !rolled && !edged) return undefined;
    return { kind: 'model-version', id, label: `${id} (not in the registry)`, details: {} };
  },
  async gate(db, _store, id) {
    const row = await db.kysely
      .selectFrom('events')
      .select(['payload_json', 'created_at'])
      .where('id', '=', id)
      .where('type', '=', 'gate.decided')
      .executeTakeFirst();
    if (!row) return undefined;
    const payload = JSON.parse(row.payload_json) as {
      decision?: string;
      chosenVersion?: string | null;
      championVersion?: string;
      reasons?: string[];
      runId?: string;
    };
    return {
      kind: 'gate',
      id,
      label: `gate ${payload.decision}: ${payload.chosenVersion ?? 'no arm'} against ${payload.championVersion}`,
      status: payload.decision,
      at: row.created_at,
      details: payload,
    };
  },
  async rollout(db, _store, id) {
    const row = await db.kysely.selectFrom('rollouts').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) return undefined;
    return {
      kind: 'rollout',
      id,
      label: `canary of ${row.challenger_version} against ${row.champion_version}${row.status === 'running' ? ` at ${Math.round(Number(row.share) * 100)}%` : ''}`,
      status: row.status,
      at: row.finished_at ?? row.created_at,
      details: { model: row.model, step: Number(row.step), share: Number(row.share), reason: row.reason },
    };
  },
  async 'rollout-decision'(db, _store, id) {
    const row = await db.kysely.selectFrom('rollout_decisions').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) return undefined;
    const evidence = JSON.parse(row.evidence_json) as { champion?: unknown; challenger?: unknown };
    const rates = { challenger: downRate(evidence.challenger), champion: downRate(evidence.champion) };
    const shown = evidence.challenger
      ? `: challenger ${percent(rates.challenger)}, champion ${percent(rates.champion)}`
      : '';
    return {
      kind: 'rollout-decision',
      id,
      label: `${row.kind} (${Math.round(Number(row.share_before) * 100)}% → ${Math.round(Number(row.share_after) * 100)}%)${shown}`,
      status: row.kind,
      at: row.created_at,
      details: { reason: row.reason, downRate: rates, evidence },
    };
  },
};

/** What a node is, for display; undefined when no row or edge knows it. */
export function describeNode(db: MetadataDb, store: LineageStore, node: NodeRef): Promise<LineageNode | undefined> {
  return DESCRIBERS[node.kind](db, store, node.id);
}
