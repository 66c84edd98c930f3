import { ValidationError } from '../core/errors.ts';
import { LOOP_BUCKETS, LOOP_INTERVALS, type LoopInterval, loopMetricName } from './loop-metrics.ts';
import { type AlertingRule, durationMs } from './rules.ts';

export interface LoopObjective {
  /** Seconds; one of `LOOP_BUCKETS`, so the rule reads the bucket at exactly this bound. */
  seconds: number;
  /** What the objective is, for the alert's description. */
  title: string;
}

/**
 * How long each hop of the loop should take at most. An upload should be searchable within
 * minutes; an alert (the ratio rule holds for 5 minutes by default) within a quarter hour of
 * the vote that tipped it; training and evaluation within hours on the machine the loop runs
 * on; a canary collects live votes, so its promotion is allowed days.
 */
export const LOOP_OBJECTIVES: Record<LoopInterval, LoopObjective> = {
  feedback_to_alert: { seconds: 900, title: 'feedback to alert' },
  alert_to_run_started: { seconds: 300, title: 'alert to retraining run started' },
  dataset_to_candidate: { seconds: 14400, title: 'dataset to candidate' },
  candidate_to_verdict: { seconds: 7200, title: 'candidate to gate verdict' },
  verdict_to_full_traffic: { seconds: 172800, title: 'verdict to full traffic' },
  time_to_rollback: { seconds: 86400, title: 'time to rollback' },
  upload_to_searchable: { seconds: 300, title: 'upload to searchable' },
};

export type LoopObjectives = Record<LoopInterval, LoopObjective>;

/**
 * The defaults with the configured objectives (`monitor.loopObjectives`, durations) over them. A
 * rule reads the histogram bucket at exactly the objective, so anything but a bucket bound is refused.
 */
export function loopObjectives(configured: Partial<Record<LoopInterval, string | undefined>> = {}): LoopObjectives {
  const objectives = { ...LOOP_OBJECTIVES };
  for (const [interval, duration] of Object.entries(configured) as [LoopInterval, string | undefined][]) {
    if (duration === undefined) continue;
    const seconds = durationMs(duration) / 1000;
    if (!LOOP_BUCKETS.includes(seconds)) {
      throw new ValidationError(
        `monitor.loopObjectives.${interval}: ${duration} is not a bound of the loop histograms; use one of ${LOOP_BUCKETS.filter(
          (b) => b >= 60,
        )
          .map(humanSeconds)
          .join(', ')}`,
      );
    }
    objectives[interval] = { ...LOOP_OBJECTIVES[interval], seconds };
  }
  return objectives;
}

/** How long an alert stays firing after a hop that missed its objective ended. */
export const LOOP_SLO_WINDOW = '1h';

/** `BerthaLoopFeedbackToAlertSlow` ... */
export function loopSloAlertName(interval: LoopInterval): string {
  const camel = interval.replace(/(^|_)([a-z])/g, (_match, _sep, letter: string) => letter.toUpperCase());
  return `BerthaLoop${camel}Slow`;
}

/** Prometheus's text form of a bucket bound, as prom-client writes it in `le`. */
function le(seconds: number): string {
  return String(seconds);
}

/**
 * One alert per timed hop: it fires when a hop that ended within `LOOP_SLO_WINDOW` took longer
 * than its objective, and resolves a window later. Loop hops are rare (a few a day), and each
 * `model_version` series starts at its first observation, where `increase()` sees no change;
 * so the rule subtracts the count above the objective a window ago (a missing past is 0) from
 * the count now: the alert's value is the number of slow hops in the window. The count above the objective is the `+Inf` bucket less the
 * objective's bucket, summed over every process. The expression keeps no labels: an alert with
 * `model_version` would reach the gateway as `model.degraded` and start a retraining.
 */
export function loopSloRules(objectives: LoopObjectives = LOOP_OBJECTIVES): AlertingRule[] {
  return (Object.keys(LOOP_INTERVALS) as LoopInterval[]).map((interval) => {
    const objective = objectives[interval];
    if (!LOOP_BUCKETS.includes(objective.seconds)) {
      throw new Error(`the ${interval} objective (${objective.seconds} s) is not a bucket bound`);
    }
    const metric = loopMetricName(interval);
    const above = (offset: string) =>
      `(sum(${metric}_count${offset}) - sum(${metric}_bucket{le="${le(objective.seconds)}"}${offset}))`;
    return {
      alert: loopSloAlertName(interval),
      expr: `${above('')} - (${above(` offset ${LOOP_SLO_WINDOW}`)} or vector(0)) > 0`,
      for: '0s',
      labels: { severity: 'warning', component: 'bertha', slo: interval },
      annotations: {
        summary: `Bertha loop: ${objective.title} took longer than ${humanSeconds(objective.seconds)}`,
        description: `{{ $value }} ${objective.title} interval(s) in the last ${LOOP_SLO_WINDOW} exceeded the objective of ${humanSeconds(objective.seconds)} (${metric}).`,
      },
    };
  });
}

export function humanSeconds(seconds: number): string {
  if (seconds % 86400 === 0) return `${seconds / 86400} d`;
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}
