import { createHash } from 'node:crypto';
import { ValidationError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { MetadataDb } from '../db/index.ts';
import type { ObjectStore } from '../objects/index.ts';
import { experimentIdFor, type TrackingStore } from '../tracking/index.ts';

/**
 * The `build-dataset` step: the knowledge base (current chunks of ingested documents) and the
 * human feedback of a time window become versioned train/validation sets. Targets: answers
 * voted up, and corrections (a correction replaces the answer, whatever the vote). Answers
 * voted down without a correction are kept apart as negatives. Everything is JSON lines in
 * the object store under `datasets/<version>/`, and the counts and window go to the tracker.
 */
export interface BuildDatasetDeps {
  db: MetadataDb;
  objects: ObjectStore;
  tracking: TrackingStore;
  logger?: Logger;
}

export interface BuildDatasetOptions {
  /** ISO timestamps; feedback last updated within [from, to) is used. */
  window: { from: string; to: string };
  /** Share of examples held out for validation, chosen by a hash of each example's id. */
  validationFraction?: number;
  /** Tracker experiment that records dataset builds. */
  experiment?: string;
}

export type DatasetExample =
  | { kind: 'feedback'; id: string; prompt: string; completion: string; source: 'thumbs_up' | 'correction' }
  | { kind: 'knowledge'; id: string; text: string; document_id: string };

export interface NegativeExample {
  kind: 'negative';
  id: string;
  prompt: string;
  completion: string;
}

export interface BuiltDataset {
  /** Content hash of train + validation: the same data gives the same version. */
  version: string;
  trainKey: string;
  validKey: string;
  negativesKey: string;
  manifestKey: string;
  window: { from: string; to: string };
  counts: {
    train: number;
    valid: number;
    negatives: number;
    thumbsUp: number;
    corrections: number;
    knowledgeChunks: number;
  };
  trackingRunId: string;
}

const jsonl = (rows: readonly object[]) => rows.map((row) => `${JSON.stringify(row)}\n`).join('');

function inValidation(id: string, fraction: number): boolean {
  const bucket = createHash('sha256').update(id).digest().readUInt32BE(0) / 0x1_0000_0000;
  return bucket < fraction;
}

export async function buildDataset(deps: BuildDatasetDeps, options: BuildDatasetOptions): Promise<BuiltDataset> {
  const { from, to } = options.window;
  if (!(Date.parse(from) < Date.parse(to))) throw new ValidationError(`invalid window: ${from} .. ${to}`);
  const fraction = options.validationFraction ?? 0.1;
  if (!(fraction >= 0 && fraction < 1)) throw new ValidationError('validationFraction must be in [0, 1)');
  const window = { from: new Date(from).toISOString(), to: new Date(to).toISOString() };
  const k = deps.db.kysely;

  const voted = await k
    .selectFrom('feedback')
    .innerJoin('answers', 'answers.id', 'feedback.answer_id')
    .select(['feedback.id as id', 'feedback.rating', 'feedback.correction', 'answers.prompt', 'answers.answer'])
    .where('feedback.updated_at', '>=', window.from)
    .where('feedback.updated_at', '<', window.to)
    .where('answers.status', '=', 'completed')
    .orderBy('feedback.id')
    .execute();
  const chunks = await k
    .selectFrom('chunks')
    .innerJoin('documents', 'documents.id', 'chunks.document_id')
    .select(['chunks.id as id', 'chunks.text', 'chunks.document_id'])
    .where('documents.status', '=', 'ingested')
    .whereRef('chunks.document_version', '=', 'documents.version')
    .orderBy('chunks.document_id')
    .orderBy('chunks.ordinal')
    .execute();

  const examples: DatasetExample[] = [];
  const negatives: NegativeExample[] = [];
  let thumbsUp = 0;
  let corrections = 0;
  for (const row of voted) {
    const correction = row.correction?.trim();
    if (correction) {
      corrections++;
      examples.push({ kind: 'feedback', id: row.id, prompt: row.prompt, completion: correction, source: 'correction' });
    } else if (row.rating === 'up') {
      thumbsUp++;
      examples.push({ kind: 'feedback', id: row.id, prompt: row.prompt, completion: row.answer, source: 'thumbs_up' });
    } else if (row.rating === 'down') {
      negatives.push({ kind: 'negative', id: row.id, prompt: row.prompt, completion: row.answer });
    }
  }
  for (const chunk of chunks) {
    examples.push({ kind: 'knowledge', id: chunk.id, text: chunk.text, document_id: chunk.document_id });
  }
  const train = examples.filter((e) => !inValidation(e.id, fraction));
  const valid = examples.filter((e) => inValidation(e.id, fraction));
  const trainBody = jsonl(train);
  const validBody = jsonl(valid);
  const version = createHash('sha256').update(trainBody).update('\0').update(validBody).digest('hex').slice(0, 16);
  const prefix = `datasets/${version}`;
  const counts = {
    train: train.length,
    valid: valid.length,
    negatives: negatives.length,
    thumbsUp,
    corrections,
    knowledgeChunks: chunks.length,
  };
  const keys = {
    trainKey: `${prefix}/train.jsonl`,
    validKey: `${prefix}/valid.jsonl`,
    negativesKey: `${prefix}/negatives.jsonl`,
    manifestKey: `${prefix}/manifest.json`,
  };
  await deps.objects.put(keys.trainKey, Buffer.from(trainBody));
  await deps.objects.put(keys.validKey, Buffer.from(validBody));
  await deps.objects.put(keys.negativesKey, Buffer.from(jsonl(negatives)));

  const tracking = deps.tracking;
  const run = await tracking.createRun({
    experimentId: await experimentIdFor(tracking, options.experiment ?? 'bertha-datasets'),
    runName: `dataset-${version}`,
    tags: [{ key: 'bertha.step', value: 'build-dataset' }],
  });
  const runId = run.info.run_id;
  const now = Date.now();
  await tracking.logBatch(runId, {
    params: [
      { key: 'window_from', value: window.from },
      { key: 'window_to', value: window.to },
      { key: 'dataset_version', value: version },
      { key: 'validation_fraction', value: String(fraction) },
      { key: 'train_key', value: keys.trainKey },
      { key: 'valid_key', value: keys.validKey },
    ],
    metrics: Object.entries(counts).map(([key, value]) => ({ key: `examples_${key}`, value, timestamp: now, step: 0 })),
  });
  await tracking.logInputs(runId, [
    {
      tags: [{ key: 'mlflow.data.context', value: 'training' }],
      dataset: { name: 'bertha-feedback-knowledge', digest: version, source_type: 'bertha', source: prefix },
    },
  ]);
  await tracking.updateRun({ runId, status: 'FINISHED', endTime: Date.now() });
  await deps.objects.put(
    keys.manifestKey,
    Buffer.from(`${JSON.stringify({ version, window, counts, trackingRunId: runId }, null, 2)}\n`),
  );
  deps.logger?.child({ component: 'build-dataset' }).info({ version, window, counts }, 'dataset built');
  return { version, ...keys, window, counts, trackingRunId: runId };
}
