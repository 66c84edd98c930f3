import type { Config } from '../config/index.ts';

export type DegradationRulesConfig = Config['monitor']['rules'];

export const DOWN_OVER_UP_ALERT = 'BerthaThumbsDownOverUp';
export const DOWN_RATIO_ALERT = 'BerthaThumbsDownRatioHigh';

/** A Prometheus alerting rule, as written in a rule file. */
export interface AlertingRule {
  alert: string;
  expr: string;
  for: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/**
 * The degradation rules, one definition for Prometheus (rendered) and the embedded watcher
 * (which evaluates the same conditions over the same counters). Both group by
 * `model_version`, so each alert names the model version that degraded.
 */
export function degradationRules(rules: DegradationRulesConfig): AlertingRule[] {
  const out: AlertingRule[] = [];
  const labels = { severity: 'warning', component: 'bertha' };
  if (rules.downOverUp.enabled) {
    out.push({
      alert: DOWN_OVER_UP_ALERT,
      // BigBertha's rule: thumbs_down > thumbs_up.
      expr:
        'sum by (model_version) (bertha_feedback_total{rating="down"})' +
        ' > sum by (model_version) (bertha_feedback_total{rating="up"})',
      for: rules.downOverUp.for,
      labels,
      annotations: {
        summary: 'More thumbs-down than thumbs-up for model {{ $labels.model_version }}',
        description: 'Users voted thumbs-down more often than thumbs-up on answers of {{ $labels.model_version }}.',
      },
    });
  }
  if (rules.downRatio.enabled) {
    const { window, threshold, minVotes } = rules.downRatio;
    const all = `sum by (model_version) (increase(bertha_feedback_total[${window}]))`;
    const down = `sum by (model_version) (increase(bertha_feedback_total{rating="down"}[${window}]))`;
    out.push({
      alert: DOWN_RATIO_ALERT,
      expr: `(${down} / ${all}) > ${threshold} and ${all} >= ${minVotes}`,
      for: rules.downRatio.for,
      labels,
      annotations: {
        summary: `Thumbs-down share above ${threshold} over ${window} for model {{ $labels.model_version }}`,
        description: `{{ $value | humanizePercentage }} of at least ${minVotes} votes in ${window} were thumbs-down.`,
      },
    });
  }
  return out;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Milliseconds of a Prometheus duration such as `90s` or `1h` (the forms the config accepts). */
export function durationMs(duration: string): number {
  const match = /^([0-9]+)(ms|s|m|h|d)$/.exec(duration);
  if (!match) throw new Error(`not a duration: ${duration}`);
  return Number(match[1]) * (UNIT_MS[match[2] as string] as number);
}
