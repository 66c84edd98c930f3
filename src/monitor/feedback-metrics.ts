import { Counter, Gauge, type Registry } from 'prom-client';
import type { FeedbackStore, Rating, RecordedFeedback } from './feedback-store.ts';

/** Per model version: counted votes (the counter) and current votes (the ratio's basis). */
export interface ModelFeedbackTally {
  modelVersion: string;
  upTotal: number;
  downTotal: number;
  upVotes: number;
  downVotes: number;
}

export interface FeedbackMetrics {
  /** Called after a vote is committed. */
  observe(result: RecordedFeedback): void;
  tallies(): ModelFeedbackTally[];
}

function downRatio(tally: ModelFeedbackTally): number {
  const votes = tally.upVotes + tally.downVotes;
  return votes === 0 ? 0 : tally.downVotes / votes;
}

/**
 * `bertha_feedback_total{rating, model_version}` counts votes that were new or changed the
 * rating; `bertha_feedback_down_ratio{model_version}` is the share of current votes that
 * are thumbs-down. Both start from the database, so a restart is not a counter reset to
 * Prometheus (a reset would make `increase()` and the seed's `down > up` rule misread).
 * Both ratings are exported for every model version, so `down > up` has an `up` series to
 * compare against before the first thumbs-up.
 */
export async function createFeedbackMetrics(registry: Registry, store: FeedbackStore): Promise<FeedbackMetrics> {
  const total = new Counter({
    name: 'bertha_feedback_total',
    help: 'Feedback votes on answers that were new or changed the rating, by rating and model version.',
    labelNames: ['rating', 'model_version'] as const,
    registers: [registry],
  });
  const ratio = new Gauge({
    name: 'bertha_feedback_down_ratio',
    help: "Share of users' current votes that are thumbs-down, by model version.",
    labelNames: ['model_version'] as const,
    registers: [registry],
  });
  const tallies = new Map<string, ModelFeedbackTally>();

  function tallyFor(modelVersion: string): ModelFeedbackTally {
    let tally = tallies.get(modelVersion);
    if (!tally) {
      tally = { modelVersion, upTotal: 0, downTotal: 0, upVotes: 0, downVotes: 0 };
      tallies.set(modelVersion, tally);
      total.inc({ rating: 'up', model_version: modelVersion }, 0);
      total.inc({ rating: 'down', model_version: modelVersion }, 0);
    }
    return tally;
  }

  function count(tally: ModelFeedbackTally, rating: Rating, field: 'Total' | 'Votes', by: number): void {
    const key = `${rating}${field}` as 'upTotal' | 'downTotal' | 'upVotes' | 'downVotes';
    tally[key] += by;
  }

  const [counted, current] = await Promise.all([store.countedVotes(), store.currentCounts()]);
  for (const row of counted) {
    count(tallyFor(row.modelVersion), row.rating, 'Total', row.count);
    total.inc({ rating: row.rating, model_version: row.modelVersion }, row.count);
  }
  for (const row of current) count(tallyFor(row.modelVersion), row.rating, 'Votes', row.count);
  for (const tally of tallies.values()) ratio.set({ model_version: tally.modelVersion }, downRatio(tally));

  return {
    observe(result) {
      const { modelVersion, rating } = result.feedback;
      const tally = tallyFor(modelVersion);
      if (!result.counted) return;
      count(tally, rating, 'Total', 1);
      total.inc({ rating, model_version: modelVersion });
      count(tally, rating, 'Votes', 1);
      if (result.previousRating) count(tally, result.previousRating, 'Votes', -1);
      ratio.set({ model_version: modelVersion }, downRatio(tally));
    },
    tallies: () => [...tallies.values()].map((tally) => ({ ...tally })),
  };
}
