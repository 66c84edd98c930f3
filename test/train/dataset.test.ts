import { describe, expect, onTestFinished, test } from 'vitest';
import { newId } from '../../src/core/ids.ts';
import type { MetadataDb } from '../../src/db/index.ts';
import { createFsObjectStore } from '../../src/objects/fs.ts';
import { readObject } from '../../src/objects/index.ts';
import { createEmbeddedRunLog } from '../../src/tracking/embedded-run-log.ts';
import { createTrackingStore } from '../../src/tracking/index.ts';
import { buildDataset } from '../../src/train/dataset.ts';
import { insertAnswer } from '../helpers/answers.ts';
import { dbFactories } from '../helpers/databases.ts';
import { tempDir } from '../helpers/temp.ts';

async function vote(
  db: MetadataDb,
  answerId: string,
  rating: 'up' | 'down',
  at: string,
  correction: string | null = null,
): Promise<string> {
  const id = newId('fb');
  await db.kysely
    .insertInto('feedback')
    .values({
      id,
      answer_id: answerId,
      user_id: `user-${id}`,
      model_version: 'v1',
      rating,
      comment: null,
      correction,
      created_at: at,
      updated_at: at,
    })
    .execute();
  return id;
}

async function document(db: MetadataDb, texts: string[], status = 'ingested'): Promise<void> {
  const id = newId('doc');
  const now = new Date().toISOString();
  await db.kysely
    .insertInto('documents')
    .values({
      id,
      key: `docs/${id}.md`,
      version: 'v2',
      status,
      error: null,
      size: 10,
      content_type: 'text/markdown',
      chunk_count: texts.length,
      metadata_json: '{}',
      created_at: now,
      updated_at: now,
      ingested_at: now,
    })
    .execute();
  // A chunk of an older version of the document is no longer part of the knowledge base.
  const rows = [...texts.map((text, i) => ({ text, version: 'v2', i })), { text: 'stale', version: 'v1', i: 99 }];
  for (const row of rows) {
    await db.kysely
      .insertInto('chunks')
      .values({
        id: newId('chk'),
        document_id: id,
        document_version: row.version,
        ordinal: row.i,
        text: row.text,
        metadata_json: '{}',
        created_at: now,
      })
      .execute();
  }
}

const lines = (body: Buffer) =>
  body
    .toString('utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);

for (const factory of dbFactories) {
  const available = await factory.available();
  describe.skipIf(!available)(`build-dataset on ${factory.name}`, () => {
    test('feedback of the window and the knowledge base become versioned train/valid sets, logged to the tracker', async () => {
      const db = await factory.create();
      onTestFinished(() => db.close());
      const objects = createFsObjectStore({ root: tempDir() });
      const tracking = createTrackingStore(db);
      const inside = '2026-11-20T10:00:00.000Z';
      const up = await vote(db, await insertAnswer(db, { answer: 'good answer' }), 'up', inside);
      await vote(db, await insertAnswer(db, { answer: 'wrong answer' }), 'down', inside, 'the corrected answer');
      await vote(db, await insertAnswer(db, { answer: 'bad answer' }), 'down', inside);
      await vote(db, await insertAnswer(db, { answer: 'too old' }), 'up', '2026-11-01T00:00:00.000Z');
      await document(db, ['Bertha closes the loop.', 'Feedback becomes training data.']);
      await document(db, ['not yet ingested'], 'pending');

      const window = { from: '2026-11-19T00:00:00Z', to: '2026-11-21T00:00:00Z' };
      const built = await buildDataset(
        { db, objects, runs: createEmbeddedRunLog(tracking, objects) },
        { window, validationFraction: 0.3 },
      );
      expect(built.counts).toMatchObject({ negatives: 1, thumbsUp: 1, corrections: 1, knowledgeChunks: 2 });
      expect(built.counts.train + built.counts.valid).toBe(4);
      const examples = [
        ...lines(await readObject(objects, built.trainKey)),
        ...lines(await readObject(objects, built.validKey)),
      ];
      expect(examples.map((e) => e.completion ?? e.text).sort()).toEqual(
        ['Bertha closes the loop.', 'Feedback becomes training data.', 'good answer', 'the corrected answer'].sort(),
      );
      expect(examples.find((e) => e.id === up)).toMatchObject({ prompt: 'What is Bertha?', source: 'thumbs_up' });
      expect(lines(await readObject(objects, built.negativesKey))).toEqual([
        expect.objectContaining({ kind: 'negative', completion: 'bad answer' }),
      ]);

      const run = await tracking.getRun(built.trackingRunId);
      expect(run.info.status).toBe('FINISHED');
      expect(run.data.params).toEqual(
        expect.arrayContaining([
          { key: 'window_from', value: '2026-11-19T00:00:00.000Z' },
          { key: 'dataset_version', value: built.version },
        ]),
      );
      expect(run.data.metrics.find((m) => m.key === 'examples_corrections')?.value).toBe(1);
      expect(run.inputs.dataset_inputs[0]?.dataset.digest).toBe(built.version);

      const again = await buildDataset(
        { db, objects, runs: createEmbeddedRunLog(tracking, objects) },
        { window, validationFraction: 0.3 },
      );
      expect(again.version).toBe(built.version);
      expect(again.trackingRunId).not.toBe(built.trackingRunId);
    });

    test('votes on failed or cancelled answers are counted apart, not negatives; a correction on one is still a target', async () => {
      const db = await factory.create();
      onTestFinished(() => db.close());
      const objects = createFsObjectStore({ root: tempDir() });
      const tracking = createTrackingStore(db);
      const inside = '2026-11-20T10:00:00.000Z';
      await vote(db, await insertAnswer(db, { answer: '', status: 'failed' }), 'down', inside);
      await vote(db, await insertAnswer(db, { answer: 'Bert', status: 'cancelled' }), 'down', inside);
      await vote(db, await insertAnswer(db, { answer: '', status: 'failed' }), 'down', inside, 'what it should say');
      await vote(db, await insertAnswer(db, { answer: 'plain bad' }), 'down', inside);

      const window = { from: '2026-11-19T00:00:00Z', to: '2026-11-21T00:00:00Z' };
      const built = await buildDataset(
        { db, objects, runs: createEmbeddedRunLog(tracking, objects) },
        { window, validationFraction: 0 },
      );
      expect(built.counts).toMatchObject({ negatives: 1, corrections: 1, votesOnUnfinished: 2, train: 1 });
      expect(lines(await readObject(objects, built.negativesKey))).toEqual([
        expect.objectContaining({ completion: 'plain bad' }),
      ]);
      expect(lines(await readObject(objects, built.trainKey))).toEqual([
        expect.objectContaining({ completion: 'what it should say', source: 'correction' }),
      ]);
    });
  });
}
