import { ValidationError } from '../core/errors.ts';
import { seededRandom } from '../core/random.ts';
import type { SuiteResult } from './suite.ts';

export interface GateGuard {
  /** Suite name (`SuiteResult.suite`). */
  suite: string;
  /** How much worse (mean per-item score) the challenger may be before the guard blocks. */
  tolerance: number;
}

export interface GateSettings {
  /** The suite the challenger must win on; never a perplexity suite. */
  primary: string;
  /** The mean per-item improvement the interval's lower bound must exceed. */
  margin: number;
  guards: GateGuard[];
  /** Fewer paired items than this is too little evidence: inconclusive. */
  minItems: number;
  /** Two-sided confidence of the bootstrap interval, e.g. 0.95. */
  confidence: number;
  resamples: number;
  /** Seeds the resampling, so a verdict is reproducible from its evidence. */
  seed: number;
}

export interface PairedComparison {
  suite: string;
  /** Items scored for both versions. */
  pairs: number;
  /** Items only one of the two has (a changed suite): left out, and reported. */
  unpaired: number;
  /** Mean of challenger - champion per item. */
  meanDifference: number;
  interval: [number, number];
}

export type GateDecision = 'promote' | 'reject' | 'inconclusive';

export interface GateVerdict {
  decision: GateDecision;
  primary: PairedComparison | null;
  guards: Array<PairedComparison & { tolerance: number; status: 'ok' | 'worse' | 'uncertain' | 'missing' }>;
  /** One line per reason, in the order they were found. */
  reasons: string[];
  settings: GateSettings;
}

function quantile(sorted: number[], q: number): number {
  const position = (sorted.length - 1) * q;
  const low = Math.floor(position);
  const high = Math.ceil(position);
  const a = sorted[low] as number;
  const b = sorted[high] as number;
  return a + (b - a) * (position - low);
}

/**
 * Pairs two versions' scores on the same suite by item id and bootstraps the mean difference
 * (challenger - champion): the percentile interval of `resamples` means of resampled pairs.
 */
export function comparePaired(
  champion: SuiteResult,
  challenger: SuiteResult,
  settings: Pick<GateSettings, 'confidence' | 'resamples' | 'seed'>,
): PairedComparison {
  const before = new Map(champion.items.map((item) => [item.id, item.score]));
  const differences: number[] = [];
  for (const item of challenger.items) {
    const old = before.get(item.id);
    if (old !== undefined) differences.push(item.score - old);
  }
  const unpaired = champion.items.length + challenger.items.length - 2 * differences.length;
  const n = differences.length;
  if (n === 0) return { suite: challenger.suite, pairs: 0, unpaired, meanDifference: 0, interval: [0, 0] };
  const mean = differences.reduce((sum, d) => sum + d, 0) / n;
  const next = seededRandom(settings.seed);
  const means: number[] = [];
  for (let r = 0; r < settings.resamples; r++) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += differences[Math.floor(next() * n)] as number;
    means.push(sum / n);
  }
  means.sort((a, b) => a - b);
  const tail = (1 - settings.confidence) / 2;
  return {
    suite: challenger.suite,
    pairs: n,
    unpaired,
    meanDifference: mean,
    interval: [quantile(means, tail), quantile(means, 1 - tail)],
  };
}

/**
 * The promotion gate: champion and challenger scored on the same items. Promote only when the
 * primary suite's interval clears the margin and every guard is confidently within its
 * tolerance; reject when the primary interval lies below the margin or a guard is worse
 * beyond its tolerance; otherwise (too few items, an interval across the margin, a guard that
 * may be worse) the verdict is inconclusive, which never promotes.
 */
export function decideGate(champion: SuiteResult[], challenger: SuiteResult[], settings: GateSettings): GateVerdict {
  const kindOf = (suite: string) =>
    challenger.find((result) => result.suite === suite)?.kind ?? champion.find((r) => r.suite === suite)?.kind;
  if (kindOf(settings.primary) === 'perplexity') {
    throw new ValidationError(
      `gate: the primary suite '${settings.primary}' is a perplexity suite; perplexity alone never promotes (fine-tunes often raise it while answers improve)`,
    );
  }
  const reasons: string[] = [];
  const pair = (suite: string) => {
    const a = champion.find((result) => result.suite === suite);
    const b = challenger.find((result) => result.suite === suite);
    return a && b ? comparePaired(a, b, settings) : null;
  };
  let decision: GateDecision = 'promote';
  const demote = (to: GateDecision) => {
    if (decision === 'reject' || to === 'promote') return;
    decision = to;
  };

  const primary = pair(settings.primary);
  const fmt = (x: number) => x.toFixed(4);
  if (!primary) {
    demote('inconclusive');
    reasons.push(`primary suite ${settings.primary} was not scored for both versions`);
  } else if (primary.pairs < settings.minItems) {
    demote('inconclusive');
    reasons.push(`primary suite ${settings.primary}: ${primary.pairs} paired items, fewer than ${settings.minItems}`);
  } else {
    const [low, high] = primary.interval;
    const summary = `${settings.primary}: mean difference ${fmt(primary.meanDifference)}, ${settings.confidence * 100}% interval [${fmt(low)}, ${fmt(high)}] over ${primary.pairs} items, margin ${fmt(settings.margin)}`;
    if (low > settings.margin) reasons.push(`${summary}: the challenger is better`);
    else if (high < settings.margin) {
      demote('reject');
      reasons.push(`${summary}: the challenger is not better by the margin`);
    } else {
      demote('inconclusive');
      reasons.push(`${summary}: the interval includes the margin`);
    }
  }

  const guards: GateVerdict['guards'] = settings.guards.map((guard) => {
    const compared = pair(guard.suite);
    if (!compared || compared.pairs === 0) {
      demote('inconclusive');
      reasons.push(`guard ${guard.suite} was not scored for both versions`);
      return {
        suite: guard.suite,
        pairs: 0,
        unpaired: 0,
        meanDifference: 0,
        interval: [0, 0],
        tolerance: guard.tolerance,
        status: 'missing',
      };
    }
    const [low] = compared.interval;
    const line = `guard ${guard.suite}: mean difference ${fmt(compared.meanDifference)}, lower bound ${fmt(low)}, tolerance ${fmt(guard.tolerance)}`;
    if (compared.meanDifference < -guard.tolerance) {
      demote('reject');
      reasons.push(`${line}: worse beyond the tolerance`);
      return { ...compared, tolerance: guard.tolerance, status: 'worse' };
    }
    if (low < -guard.tolerance) {
      demote('inconclusive');
      reasons.push(`${line}: may be worse beyond the tolerance`);
      return { ...compared, tolerance: guard.tolerance, status: 'uncertain' };
    }
    return { ...compared, tolerance: guard.tolerance, status: 'ok' };
  });

  return { decision, primary, guards, reasons, settings };
}

/**
 * Why the gate did not ship an arm, one word each, for the loop's refusal counter: `not_better`
 * (the primary interval lies below the margin), `guard_worse` (a guard is worse beyond its
 * tolerance), `not_scored` (the primary suite or a guard has no paired items), `too_few_items`
 * (fewer pairs than `minItems`), `uncertain` (an interval across the margin or a tolerance),
 * and `not_chosen` (it passed, but another arm was chosen: a retrained model that only ties
 * the prompt arm).
 */
export const GATE_REFUSAL_REASONS = [
  'not_better',
  'guard_worse',
  'not_scored',
  'too_few_items',
  'uncertain',
  'not_chosen',
] as const;

export type GateRefusalReason = (typeof GATE_REFUSAL_REASONS)[number];

/** The reason that decided a verdict that does not promote; rejections first, as `decideGate` ranks them. */
export function gateRefusalReason(verdict: GateVerdict): GateRefusalReason | undefined {
  if (verdict.decision === 'promote') return undefined;
  const { primary, guards, settings } = verdict;
  const primaryJudged = primary !== null && primary.pairs >= settings.minItems;
  if (primaryJudged && primary.interval[1] < settings.margin) return 'not_better';
  if (guards.some((guard) => guard.status === 'worse')) return 'guard_worse';
  if (primary === null || primary.pairs === 0 || guards.some((guard) => guard.status === 'missing')) {
    return 'not_scored';
  }
  if (!primaryJudged) return 'too_few_items';
  return 'uncertain';
}
