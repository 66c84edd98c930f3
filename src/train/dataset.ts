import { createHash } from 'node:crypto';
import { ValidationError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { MetadataDb } from '../db/index.ts';
import { type ObjectStore, readObject } from '../objects/index.ts';
import type { RunLog } from '../tracking/index.ts';

/**
 * The `build-dataset` step: the knowledge base (current chunks of ingested documents) and the
 * human feedback of a time window become versioned train/validation sets. Targets: answers
 * voted up, and corrections (a correction replaces the answer, whatever the vote). Answers
 * voted down without a correction are kept apart as negatives. Everything is JSON lines in
 * the object store under `datasets/<version>/`, and the counts and window go to the tracker.
 *
 * Votes on answers that failed or were cancelled (a runtime error, a client that went away)
 * judge the service, not the model's text: their partial or empty text is neither a target
 * nor a negative. They are counted (`votesOnUnfinished`) so the manifest shows what was left
 * out, and they still move the feedback metrics that trigger retraining. A correction on such
 * an answer is still a target when the answer's prompt was recorded: it says what the model
 * should have said.
 */
export interface BuildDatasetDeps {
  db: MetadataDb;
  objects: ObjectStore;
  /** Where the build is recorded (`tracking.uri` or the embedded tracker). */
  runs: RunLog;
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
  | {
      kind: 'feedback';
      id: string;
      /** The prompt the model saw, rendered with its chat template and passages. */
      prompt: string;
      /** The user's last turn, as asked (absent in datasets built before it was recorded). */
      question?: string;
      completion: string;
      source: 'thumbs_up' | 'correction';
    }
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
    /** Votes without a correction on failed or cancelled answers: not training data. */
    votesOnUnfinished: number;
    /** Votes without a correction on answers that ended in tool calls: their text is not all the model wrote. */
    votesOnToolCalls: number;
  };
  trackingRunId: string;
}

const jsonl = (rows: readonly object[]) => rows.map((row) => `${JSON.stringify(row)}\n`).join('');

/** The examples of one split (`trainKey` or `validKey`). */
export async function readExamples(objects: ObjectStore, key: string): Promise<DatasetExample[]> {
  return (await readObject(objects, key))
    .toString('utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as DatasetExample);
}

/** Held-out text of a dataset (its validation split, chosen by hash): knowledge passages and corrected answers. */
export async function heldOutTexts(
  objects: ObjectStore,
  dataset: BuiltDataset,
): Promise<Array<{ id: string; text: string }>> {
  return (await readExamples(objects, dataset.validKey)).map((example) =>
    example.kind === 'knowledge'
      ? { id: example.id, text: example.text }
      : { id: example.id, text: example.completion },
  );
}

/** Held-out questions of a dataset with the answer users approved or corrected it to. */
export async function heldOutQuestions(
  objects: ObjectStore,
  dataset: BuiltDataset,
): Promise<Array<{ id: string; question: string; reference: string }>> {
  return (await readExamples(objects, dataset.validKey)).flatMap((example) =>
    example.kind === 'feedback' && example.question?.trim()
      ? [{ id: example.id, question: example.question, reference: example.completion }]
      : [],
  );
}

function lastUserTurn(messagesJson: string): string {
  const messages = JSON.parse(messagesJson) as Array<{ role: string; content: string }>;
  return messages.findLast((message) => message.role === 'user')?.content ?? '';
}

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
    .select([
      'feedback.id as id',
      'feedback.rating',
      'feedback.correction',
      'answers.prompt',
      'answers.messages_json',
      'answers.answer',
      'answers.status',
      'answers.params_json',
    ])
    .where('feedback.updated_at', '>=', window.from)
    .where('feedback.updated_at', '<', window.to)
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
  let votesOnUnfinished = 0;
  let votesOnToolCalls = 0;
  for (const row of voted) {
    const correction = row.correction?.trim();
    if (row.status !== 'completed' && !(correction && row.prompt)) {
      votesOnUnfinished++;
    } else if (
      !correction &&
      (JSON.parse(row.params_json) as { finishReason?: string }).finishReason === 'tool_calls'
    ) {
      votesOnToolCalls++;
    } else if (correction) {
      corrections++;
      examples.push({
        kind: 'feedback',
        id: row.id,
        prompt: row.prompt,
        question: lastUserTurn(row.messages_json),
        completion: correction,
        source: 'correction',
      });
    } else if (row.rating === 'up') {
      thumbsUp++;
      examples.push({
        kind: 'feedback',
        id: row.id,
        prompt: row.prompt,
        question: lastUserTurn(row.messages_json),
        completion: row.answer,
        source: 'thumbs_up',
      });
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
    votesOnUnfinished,
    votesOnToolCalls,
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

  const runs = deps.runs;
  const runId = await runs.startRun({
    experiment: options.experiment ?? 'bertha-datasets',
    runName: `dataset-${version}`,
    tags: { 'bertha.step': 'build-dataset' },
  });
  await runs.log(runId, {
    params: {
      window_from: window.from,
      window_to: window.to,
      dataset_version: version,
      validation_fraction: String(fraction),
      train_key: keys.trainKey,
      valid_key: keys.validKey,
    },
    metrics: Object.fromEntries(Object.entries(counts).map(([key, value]) => [`examples_${key}`, value])),
  });
  await runs.logInputs(runId, [
    { name: 'bertha-feedback-knowledge', digest: version, source: prefix, context: 'training' },
  ]);
  await runs.endRun(runId);
  await deps.objects.put(
    keys.manifestKey,
    Buffer.from(`${JSON.stringify({ version, window, counts, trackingRunId: runId }, null, 2)}\n`),
  );
  deps.logger?.child({ component: 'build-dataset' }).info({ version, window, counts }, 'dataset built');
  return { version, ...keys, window, counts, trackingRunId: runId };
}
