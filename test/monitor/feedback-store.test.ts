import { Registry } from 'prom-client';
import { describe, expect, onTestFinished, test } from 'vitest';
import { createLogger } from '../../src/core/logger.ts';
import { createFeedbackMetrics, createFeedbackStore, type FeedbackStore } from '../../src/monitor/index.ts';
import { insertAnswer } from '../helpers/answers.ts';
import { dbFactories } from '../helpers/databases.ts';

/** The feedback series on a registry of their own, exported (as by the monitor lease's holder) unless told otherwise. */
function feedbackMetrics(store: FeedbackStore, exported = () => true) {
  const registry = new Registry();
  return { registry, metrics: createFeedbackMetrics(registry, store, { exported, logger: createLogger('silent') }) };
}

async function counterValues(registry: Registry): Promise<Record<string, number>> {
  const metric = await registry.getSingleMetric('bertha_feedback_total')?.get();
  return Object.fromEntries(
    (metric?.values ?? []).map((value) => [`${value.labels.model_version}/${value.labels.rating}`, value.value]),
  );
}

/** The ISO time of a millisecond no earlier write shares (timestamps have millisecond resolution). */
function nextMillisecond(): string {
  const start = Date.now();
  while (Date.now() === start) {}
  return new Date().toISOString();
}

for (const factory of dbFactories) {
  const available = await factory.available();
  describe.skipIf(!available)(`feedback store on ${factory.name}`, () => {
    async function open() {
      const db = await factory.create();
      onTestFinished(() => db.close());
      return { db, store: createFeedbackStore(db) };
    }

    test('a second vote by the same user replaces the first and is counted once', async () => {
      const { db, store } = await open();
      const answer = await insertAnswer(db, { modelVersion: 'v7' });
      const first = await store.record({ responseId: answer, userId: 'ada', rating: 'down', comment: 'wrong' });
      expect(first).toMatchObject({ replaced: false, counted: true, previousRating: null });
      const again = await store.record({ responseId: answer, userId: 'ada', rating: 'down' });
      expect(again).toMatchObject({ replaced: true, counted: false, previousRating: 'down' });
      const changed = await store.record({ responseId: answer, userId: 'ada', rating: 'up', correction: 'better' });
      expect(changed).toMatchObject({ replaced: true, counted: true, previousRating: 'down' });
      expect(changed.feedback.id).toBe(first.feedback.id);

      const listed = await store.list();
      expect(listed).toHaveLength(1);
      expect(listed[0]).toMatchObject({ rating: 'up', modelVersion: 'v7', correction: 'better', comment: null });
      expect(await store.currentCounts()).toEqual([{ modelVersion: 'v7', rating: 'up', count: 1 }]);
      const counted = await store.countedVotes();
      expect(counted.sort((a, b) => a.rating.localeCompare(b.rating))).toEqual([
        { modelVersion: 'v7', rating: 'down', count: 1 },
        { modelVersion: 'v7', rating: 'up', count: 1 },
      ]);
    });

    test('concurrent first votes by one user on one response leave one vote', async () => {
      const { db, store } = await open();
      const answer = await insertAnswer(db);
      const results = await Promise.all(
        Array.from({ length: 8 }, () => store.record({ responseId: answer, userId: 'bob', rating: 'down' })),
      );
      expect(results.filter((result) => !result.replaced)).toHaveLength(1);
      expect(results.filter((result) => result.counted)).toHaveLength(1);
      expect(await store.list()).toHaveLength(1);
    });

    test('among concurrent votes, one on an unknown response fails alone', async () => {
      const { db, store } = await open();
      const answer = await insertAnswer(db);
      const results = await Promise.allSettled([
        ...Array.from({ length: 10 }, (_, i) => store.record({ responseId: answer, userId: `u${i}`, rating: 'up' })),
        store.record({ responseId: 'ans_missing', userId: 'x', rating: 'down' }),
      ]);
      expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(10);
      expect(results.at(-1)).toMatchObject({ status: 'rejected', reason: { status: 404 } });
      expect(await store.list()).toHaveLength(10);
    });

    test('a vote on an unknown response is rejected as not found', async () => {
      const { store } = await open();
      await expect(store.record({ responseId: 'ans_missing', userId: 'ada', rating: 'up' })).rejects.toMatchObject({
        status: 404,
        code: 'not_found',
      });
      expect(await store.list()).toHaveLength(0);
    });

    test('listing filters by model version, rating and time, and pages newest first', async () => {
      const { db, store } = await open();
      const a1 = await insertAnswer(db, { modelVersion: 'v1' });
      const a2 = await insertAnswer(db, { modelVersion: 'v2' });
      for (const user of ['u1', 'u2', 'u3']) await store.record({ responseId: a1, userId: user, rating: 'down' });
      const middle = nextMillisecond();
      nextMillisecond();
      await store.record({ responseId: a2, userId: 'u1', rating: 'up' });
      await store.record({ responseId: a2, userId: 'u2', rating: 'down' });

      expect(await store.list({ modelVersion: 'v1' })).toHaveLength(3);
      expect((await store.list({ rating: 'up' })).map((record) => record.responseId)).toEqual([a2]);
      expect(await store.list({ since: middle })).toHaveLength(2);
      expect(await store.list({ until: middle })).toHaveLength(3);
      const page1 = await store.list({ limit: 2 });
      const page2 = await store.list({ limit: 2, before: page1.at(-1)?.id });
      const page3 = await store.list({ limit: 2, before: page2.at(-1)?.id });
      expect([...page1, ...page2, ...page3].map((record) => record.userId)).toEqual(['u2', 'u1', 'u3', 'u2', 'u1']);
    });

    test('a comment after the vote updates the same row and is no second vote', async () => {
      const { db, store } = await open();
      const answer = await insertAnswer(db, { modelVersion: 'v8' });
      const { registry } = feedbackMetrics(store);
      const clicked = await store.record({ responseId: answer, userId: 'ada', rating: 'down' });
      const commented = await store.update({
        id: clicked.feedback.id,
        userId: 'ada',
        comment: 'made up',
        correction: 'The answer is 42.',
      });
      expect(commented).toMatchObject({ counted: false, previousRating: 'down' });
      expect(commented.feedback).toMatchObject({
        id: clicked.feedback.id,
        rating: 'down',
        comment: 'made up',
        correction: 'The answer is 42.',
        createdAt: clicked.feedback.createdAt,
      });
      expect(await store.list()).toEqual([commented.feedback]);
      expect(await store.countedVotes()).toEqual([{ modelVersion: 'v8', rating: 'down', count: 1 }]);
      const votes = await db.kysely.selectFrom('feedback_votes').selectAll().execute();
      expect(votes).toHaveLength(1);

      // Left out, a field is kept; null clears it.
      const cleared = await store.update({ id: clicked.feedback.id, userId: 'ada', correction: null });
      expect(cleared.feedback).toMatchObject({ comment: 'made up', correction: null });
      expect(await counterValues(registry)).toEqual({ 'v8/up': 0, 'v8/down': 1 });
    });

    test('changing the rating by update counts once, like a second vote', async () => {
      const { db, store } = await open();
      const answer = await insertAnswer(db, { modelVersion: 'v9' });
      const { registry, metrics } = feedbackMetrics(store);
      const clicked = await store.record({ responseId: answer, userId: 'ada', rating: 'up' });
      const changes = await Promise.all(
        Array.from({ length: 4 }, () => store.update({ id: clicked.feedback.id, userId: 'ada', rating: 'down' })),
      );
      expect(changes.filter((change) => change.counted)).toEqual([
        expect.objectContaining({ previousRating: 'up', counted: true }),
      ]);
      expect(await counterValues(registry)).toEqual({ 'v9/up': 1, 'v9/down': 1 });
      expect(await metrics.tallies()).toEqual([
        { modelVersion: 'v9', upTotal: 1, downTotal: 1, upVotes: 0, downVotes: 1 },
      ]);
    });

    test("an update of an unknown vote, or of another user's, is not found and changes nothing", async () => {
      const { db, store } = await open();
      const answer = await insertAnswer(db);
      const vote = await store.record({ responseId: answer, userId: 'ada', rating: 'up', comment: 'mine' });
      await expect(store.update({ id: 'fb_missing', userId: 'ada', comment: 'x' })).rejects.toMatchObject({
        status: 404,
      });
      await expect(store.update({ id: vote.feedback.id, userId: 'eve', rating: 'down' })).rejects.toMatchObject({
        status: 404,
      });
      expect(await store.get(vote.feedback.id)).toEqual(vote.feedback);
    });

    test('metrics are read from the database, so a restart does not reset the counters', async () => {
      const { db, store } = await open();
      const answer = await insertAnswer(db, { modelVersion: 'v3' });
      const { registry } = feedbackMetrics(store);
      for (const [user, rating] of [
        ['a', 'down'],
        ['b', 'down'],
        ['c', 'up'],
        ['a', 'up'],
      ] as const) {
        await store.record({ responseId: answer, userId: user, rating });
      }
      const before = await counterValues(registry);
      expect(before).toEqual({ 'v3/up': 2, 'v3/down': 2 });

      const restarted = feedbackMetrics(store);
      expect(await counterValues(restarted.registry)).toEqual(before);
      expect(await restarted.metrics.tallies()).toEqual([
        { modelVersion: 'v3', upTotal: 2, downTotal: 2, upVotes: 2, downVotes: 1 },
      ]);
      const ratio = await restarted.registry.getSingleMetric('bertha_feedback_down_ratio')?.get();
      expect(ratio?.values[0]?.value).toBeCloseTo(1 / 3);
    });

    test('only the exporting process gives feedback samples, so a sum over processes counts each vote once', async () => {
      const { db, store } = await open();
      const answer = await insertAnswer(db, { modelVersion: 'v4' });
      await store.record({ responseId: answer, userId: 'ada', rating: 'down' });
      let exporting = true;
      const exporter = feedbackMetrics(store, () => exporting);
      const other = feedbackMetrics(store, () => !exporting);
      expect(await counterValues(exporter.registry)).toEqual({ 'v4/up': 0, 'v4/down': 1 });
      expect(await counterValues(other.registry)).toEqual({});
      expect(await other.registry.metrics()).not.toContain('bertha_feedback_down_ratio{');

      // The lease moved: the other process exports the same stored counts.
      exporting = false;
      await store.record({ responseId: answer, userId: 'bob', rating: 'up' });
      expect(await counterValues(exporter.registry)).toEqual({});
      expect(await counterValues(other.registry)).toEqual({ 'v4/up': 1, 'v4/down': 1 });
    });
  });
}
