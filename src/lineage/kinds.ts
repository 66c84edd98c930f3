import { BerthaError } from '../core/errors.ts';

/**
 * What a lineage node can be, and the id each kind is known by. Most ids are the primary key
 * of an existing row; a dataset has no row of its own (its version is the content hash of its
 * splits), and a document version is the document's id and content hash together.
 *
 * | kind               | id                                   | row                                  |
 * |--------------------|--------------------------------------|--------------------------------------|
 * | `answer`           | `chatcmpl_…` / `cmpl-…` (response id) | `answers`                            |
 * | `feedback`         | `fb_…`                               | `feedback` (one user's vote)         |
 * | `chunk`            | `chk_…`                              | `chunks`, or an answer's sources     |
 * | `document`         | `<doc_…>@<sha256>` (one version)     | `documents` + `chunks`               |
 * | `event`            | `evt_…`                              | `events` (an upload, an alert)       |
 * | `trigger`          | `trg_…`                              | `pipeline_triggers`                  |
 * | `run`              | `run_…` (or an Argo workflow name)   | `pipeline_runs`                      |
 * | `dataset`          | 16 hex (the dataset version)         | `lineage_edges` (+ its manifest)     |
 * | `tracking-run`     | 32 hex (MLflow run id)               | `tracking_runs` when embedded        |
 * | `model-version`    | `<model>/<n>`, `starter`, `local`    | `model_versions`, `answers`          |
 * | `gate`             | `evt_…` (its `gate.decided` event)   | `events`                             |
 * | `rollout`          | `rol_…`                              | `rollouts`                           |
 * | `rollout-decision` | `rdc_…`                              | `rollout_decisions`                  |
 */
export const LINEAGE_KINDS = [
  'answer',
  'feedback',
  'chunk',
  'document',
  'event',
  'trigger',
  'run',
  'dataset',
  'tracking-run',
  'model-version',
  'gate',
  'rollout',
  'rollout-decision',
] as const;

export type LineageKind = (typeof LINEAGE_KINDS)[number];

/** One node of the graph: a kind and an id in that kind's format. */
export interface NodeRef {
  kind: LineageKind;
  id: string;
}

/** Edges point from a cause to what it led to: `answer -> feedback -> dataset -> tracking-run -> ...`. */
export type LineageDirection = 'upstream' | 'downstream';

export class UnknownLineageKindError extends BerthaError {
  constructor(kind: string) {
    super('lineage_kind_unknown', `'${kind}' is not a lineage kind (one of ${LINEAGE_KINDS.join(', ')})`, 400, {
      kind,
      kinds: [...LINEAGE_KINDS],
    });
  }
}

export function isLineageKind(value: string): value is LineageKind {
  return (LINEAGE_KINDS as readonly string[]).includes(value);
}

export function nodeKey(node: NodeRef): string {
  return `${node.kind}:${node.id}`;
}

/** A document version's node id. */
export function documentNodeId(documentId: string, version: string): string {
  return `${documentId}@${version}`;
}

const PREFIXES: Array<[RegExp, LineageKind]> = [
  [/^(chatcmpl_|cmpl-|ans_)/, 'answer'],
  [/^fb_/, 'feedback'],
  [/^chk_/, 'chunk'],
  [/^doc_[^@]+@[0-9a-f]+$/, 'document'],
  [/^evt_/, 'event'],
  [/^trg_/, 'trigger'],
  [/^run_/, 'run'],
  [/^rol_/, 'rollout'],
  [/^rdc_/, 'rollout-decision'],
  [/^[0-9a-f]{16}$/, 'dataset'],
  [/^[0-9a-f]{32}$/, 'tracking-run'],
  [/^[^/\s]+\/\d+$/, 'model-version'],
];

/**
 * The node a user means by `<kind>/<id>` or a bare id whose format names its kind (the CLI's
 * `bertha lineage <id>`). A gate shares the `evt_` prefix with events, and `starter` or an
 * Argo run name say nothing: those are given with their kind.
 */
export function parseNodeRef(text: string): NodeRef {
  const slash = text.indexOf('/');
  if (slash > 0) {
    const kind = text.slice(0, slash);
    if (isLineageKind(kind)) return { kind, id: text.slice(slash + 1) };
  }
  const match = PREFIXES.find(([pattern]) => pattern.test(text));
  if (!match) {
    throw new BerthaError(
      'lineage_kind_ambiguous',
      `cannot tell what '${text}' is: give it as <kind>/<id>, kind one of ${LINEAGE_KINDS.join(', ')}`,
      400,
      { id: text },
    );
  }
  return { kind: match[1], id: text };
}
