import { Counter, Histogram, type Registry } from 'prom-client';

/**
 * The hops of the loop that are timed, each from a stored timestamp of the row that began it
 * to the stored timestamp of the transition that ended it. `modelVersion` says whether the
 * series carries a `model_version` label (the version the hop is about).
 */
export const LOOP_INTERVALS = {
  feedback_to_alert: {
    help: 'From the newest counted vote when a degradation rule was first seen to hold, to the alert the embedded watcher raised',
    modelVersion: true,
  },
  alert_to_run_started: {
    help: 'From the stored alert event (model.degraded, alert.firing) to the start of the pipeline run its trigger launched',
    modelVersion: true,
  },
  dataset_to_candidate: {
    help: 'From the dataset a retraining run built to the challenger version registered from it (by candidate version)',
    modelVersion: true,
  },
  candidate_to_verdict: {
    help: 'From a challenger version registered to the gate verdict on it: benchmark and gate (by candidate version)',
    modelVersion: true,
  },
  verdict_to_full_traffic: {
    help: 'From the gate verdict that started a canary to its promotion: the version serves every conversation',
    modelVersion: true,
  },
  time_to_rollback: {
    help: 'From a rolled-back version starting to take traffic (canary start; promotion, for a reverted one) to its rollback',
    modelVersion: true,
  },
  upload_to_searchable: {
    help: 'From the stored object.created event to the end of the ingestion run that made its chunks searchable',
    modelVersion: false,
  },
} as const satisfies Record<string, { help: string; modelVersion: boolean }>;

export type LoopInterval = keyof typeof LOOP_INTERVALS;

/** `bertha_loop_<interval>_seconds`. */
export function loopMetricName(interval: LoopInterval): string {
  return `bertha_loop_${interval}_seconds`;
}

/** Seconds to a week: an upload is searchable in seconds, a canary may take days of traffic. */
export const LOOP_BUCKETS = [
  0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 604800,
];

export type SuppressionReason = 'debounce' | 'concurrency';
export const SUPPRESSION_REASONS: readonly SuppressionReason[] = ['debounce', 'concurrency'];

/** `canary`: the controller decided; `manual`: a running canary ended by hand; `revert`: a promotion undone by hand. */
export type RollbackKind = 'canary' | 'manual' | 'revert';
export const ROLLBACK_KINDS: readonly RollbackKind[] = ['canary', 'manual', 'revert'];

/** A timestamp as stored: ISO-8601 text, or milliseconds (MLflow's registry). */
export type StoredTime = string | number;

export interface LoopSpan {
  from: StoredTime;
  to: StoredTime;
  /** Required by the intervals labelled with it; ignored by the others. */
  modelVersion?: string;
}

/**
 * The loop's own figures. Each duration is observed once, by the process that made the ending
 * transition (the conditional write that only one process wins), from timestamps read from the
 * rows, so summing the series over every replica counts each hop once. Counters likewise count
 * what this process decided.
 */
export interface LoopMetrics {
  observe(interval: LoopInterval, span: LoopSpan): void;
  triggerSuppressed(reason: SuppressionReason): void;
  gateRefused(reason: string): void;
  rolledBack(kind: RollbackKind): void;
}

/** For code run where nothing is scraped (CLI commands, tests that do not look). */
export const noLoopMetrics: LoopMetrics = {
  observe: () => undefined,
  triggerSuppressed: () => undefined,
  gateRefused: () => undefined,
  rolledBack: () => undefined,
};

function millis(time: StoredTime): number {
  return typeof time === 'number' ? time : Date.parse(time);
}

/** Seconds between two stored times; a negative span (clocks of two machines disagree) counts as 0. */
export function spanSeconds(span: Pick<LoopSpan, 'from' | 'to'>): number | undefined {
  const ms = millis(span.to) - millis(span.from);
  return Number.isFinite(ms) ? Math.max(0, ms) / 1000 : undefined;
}

/**
 * Registers the loop's histograms and counters on the instance's registry. Counters with a
 * known, small set of label values start at 0 for each, so `increase()` sees their first
 * increment; `gateRefusalReasons` are the gate's (`GATE_REFUSAL_REASONS`, wired in app.ts).
 */
export function createLoopMetrics(
  registry: Registry,
  options: { gateRefusalReasons?: readonly string[] } = {},
): LoopMetrics {
  const registers = [registry];
  const histograms = new Map<LoopInterval, Histogram<string>>();
  for (const [interval, definition] of Object.entries(LOOP_INTERVALS) as Array<
    [LoopInterval, (typeof LOOP_INTERVALS)[LoopInterval]]
  >) {
    histograms.set(
      interval,
      new Histogram({
        name: loopMetricName(interval),
        help: definition.help,
        labelNames: definition.modelVersion ? ['model_version'] : [],
        buckets: LOOP_BUCKETS,
        registers,
      }),
    );
  }
  const suppressed = new Counter({
    name: 'bertha_loop_triggers_suppressed_total',
    help: 'Sensor decisions not to start a pipeline: debounced, or a run for the same concurrency key was pending or running',
    labelNames: ['reason'],
    registers,
  });
  for (const reason of SUPPRESSION_REASONS) suppressed.inc({ reason }, 0);
  const refusals = new Counter({
    name: 'bertha_loop_gate_refusals_total',
    help: 'Challenger arms the gate did not pass or choose, by the reason that decided it',
    labelNames: ['reason'],
    registers,
  });
  for (const reason of options.gateRefusalReasons ?? []) refusals.inc({ reason }, 0);
  const rollbacks = new Counter({
    name: 'bertha_loop_rollbacks_total',
    help: 'Rollbacks: canaries the controller rolled back, canaries ended by hand, promotions reverted',
    labelNames: ['kind'],
    registers,
  });
  for (const kind of ROLLBACK_KINDS) rollbacks.inc({ kind }, 0);

  return {
    observe(interval, span) {
      const seconds = spanSeconds(span);
      const histogram = histograms.get(interval);
      if (seconds === undefined || !histogram) return;
      if (LOOP_INTERVALS[interval].modelVersion) {
        histogram.observe({ model_version: span.modelVersion ?? 'unknown' }, seconds);
      } else histogram.observe(seconds);
    },
    triggerSuppressed: (reason) => suppressed.inc({ reason }),
    gateRefused: (reason) => refusals.inc({ reason }),
    rolledBack: (kind) => rollbacks.inc({ kind }),
  };
}
