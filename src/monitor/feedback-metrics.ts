import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../core/logger.ts';
import type { FeedbackStore, Rating } from './feedback-store.ts';

/** Per model version: counted votes (the counter) and current votes (the ratio's basis). */
export interface ModelFeedbackTally {
  modelVersion: string;
  upTotal: number;
  downTotal: number;
  upVotes: number;
  downVotes: number;
}

export interface FeedbackMetrics {
  /** Every model version's tally, read from the database (every replica's votes). */
  tallies(): Promise<ModelFeedbackTally[]>;
}

export function downRatio(tally: Pick<ModelFeedbackTally, 'upVotes' | 'downVotes'>): number {
  const votes = tally.upVotes + tally.downVotes;
  return votes === 0 ? 0 : tally.downVotes / votes;
}

async function readTallies(store: FeedbackStore): Promise<ModelFeedbackTally[]> {
  const [counted, current] = await Promise.all([store.countedVotes(), store.currentCounts()]);
  const tallies = new Map<string, ModelFeedbackTally>();
  const tallyFor = (modelVersion: string) => {
    let tally = tallies.get(modelVersion);
    if (!tally) {
      tally = { modelVersion, upTotal: 0, downTotal: 0, upVotes: 0, downVotes: 0 };
      tallies.set(modelVersion, tally);
    }
    return tally;
  };
  const totalOf = { up: 'upTotal', down: 'downTotal' } as const satisfies Record<Rating, keyof ModelFeedbackTally>;
  const votesOf = { up: 'upVotes', down: 'downVotes' } as const satisfies Record<Rating, keyof ModelFeedbackTally>;
  for (const row of counted) tallyFor(row.modelVersion)[totalOf[row.rating]] += row.count;
  for (const row of current) tallyFor(row.modelVersion)[votesOf[row.rating]] += row.count;
  return [...tallies.values()];
}

/**
 * `bertha_feedback_total{rating, model_version}` counts votes that were new or changed the
 * rating; `bertha_feedback_down_ratio{model_version}` is the share of current votes that are
 * thumbs-down. Both are read from the database at each scrape, so they hold every replica's
 * votes and a restart is no counter reset to Prometheus (a reset would make `increase()` and
 * the seed's `down > up` rule misread). Only the process for which `exported()` is true (the
 * monitor lease's holder) gives samples: with one exporter, `sum()` over every process equals
 * the stored counts. Both ratings are exported for every model version, so `down > up` has an
 * `up` series to compare against before the first thumbs-up.
 */
export function createFeedbackMetrics(
  registry: Registry,
  store: FeedbackStore,
  options: { exported(): boolean; logger: Logger },
): FeedbackMetrics {
  let last: ModelFeedbackTally[] = [];
  let reading: Promise<ModelFeedbackTally[]> | undefined;

  /** One read per scrape for both series; the last good one while the database is unreachable. */
  function scrapeTallies(): Promise<ModelFeedbackTally[]> {
    reading ??= readTallies(store)
      .then((tallies) => {
        last = tallies;
        return tallies;
      })
      .catch((error: unknown) => {
        options.logger.warn({ err: error }, 'could not read feedback counts; exporting the last ones read');
        return last;
      })
      .finally(() => {
        reading = undefined;
      });
    return reading;
  }

  new Counter({
    name: 'bertha_feedback_total',
    help: 'Feedback votes on answers that were new or changed the rating, by rating and model version.',
    labelNames: ['rating', 'model_version'] as const,
    registers: [registry],
    async collect() {
      const tallies = options.exported() ? await scrapeTallies() : [];
      this.reset();
      for (const tally of tallies) {
        this.inc({ rating: 'up', model_version: tally.modelVersion }, tally.upTotal);
        this.inc({ rating: 'down', model_version: tally.modelVersion }, tally.downTotal);
      }
    },
  });
  new Gauge({
    name: 'bertha_feedback_down_ratio',
    help: "Share of users' current votes that are thumbs-down, by model version.",
    labelNames: ['model_version'] as const,
    registers: [registry],
    async collect() {
      const tallies = options.exported() ? await scrapeTallies() : [];
      this.reset();
      for (const tally of tallies) this.set({ model_version: tally.modelVersion }, downRatio(tally));
    },
  });

  return { tallies: () => readTallies(store) };
}
