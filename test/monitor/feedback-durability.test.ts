import path from 'node:path';
import { expect, onTestFinished, test } from 'vitest';
import { createSqliteDb } from '../../src/db/sqlite.ts';
import { createFeedbackStore } from '../../src/monitor/index.ts';
import { insertAnswer } from '../helpers/answers.ts';
import { startBerthaProcess } from '../helpers/bertha-process.ts';
import { tempDir } from '../helpers/temp.ts';

test('feedback survives a crash right after the 201', async () => {
  const dataDir = tempDir();
  const bertha = await startBerthaProcess(['--data-dir', dataDir], {}, 60_000);
  const db = createSqliteDb({ path: path.join(dataDir, 'bertha.sqlite') });
  onTestFinished(() => db.close());
  const answer = await insertAnswer(db, { modelVersion: 'v-crash' });

  const response = await fetch(`${bertha.url}/v1/feedback`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-bertha-user': 'ada' },
    body: JSON.stringify({ response_id: answer, rating: 'down', comment: 'kept' }),
  });
  expect(response.status).toBe(201);
  bertha.child.kill('SIGKILL');
  await bertha.exited;

  const stored = await createFeedbackStore(db).list();
  expect(stored).toHaveLength(1);
  expect(stored[0]).toMatchObject({ responseId: answer, userId: 'ada', rating: 'down', comment: 'kept' });
});

test('a comment added to a vote survives a crash right after the 200', async () => {
  const dataDir = tempDir();
  const bertha = await startBerthaProcess(['--data-dir', dataDir], {}, 60_000);
  const db = createSqliteDb({ path: path.join(dataDir, 'bertha.sqlite') });
  onTestFinished(() => db.close());
  const answer = await insertAnswer(db, { modelVersion: 'v-crash' });

  const clicked = await fetch(`${bertha.url}/v1/feedback`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ response_id: answer, rating: 'down' }),
  });
  expect(clicked.status).toBe(201);
  const { id } = (await clicked.json()) as { id: string };
  const commented = await fetch(`${bertha.url}/v1/feedback/${id}`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ comment: 'kept', correction: 'also kept' }),
  });
  expect(commented.status).toBe(200);
  bertha.child.kill('SIGKILL');
  await bertha.exited;

  const stored = await createFeedbackStore(db).list();
  expect(stored).toEqual([expect.objectContaining({ id, rating: 'down', comment: 'kept', correction: 'also kept' })]);
});
