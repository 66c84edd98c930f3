/** What one version did since the current step began. */
export interface ArmEvidence {
  version: string;
  answers: number;
  failed: number;
  up: number;
  down: number;
}

export interface RolloutPolicy {
  /** Votes each arm needs before thumbs can decide anything. */
  minVotes: number;
  /** Answers each arm needs before error rates can decide anything. */
  minAnswers: number;
  /** Posterior probability a decision needs, e.g. 0.95. */
  confidence: number;
  /** How much higher the challenger's thumbs-down rate may be and still count as no worse. */
  downRateTolerance: number;
  /** The same for the share of failed answers. */
  errorRateTolerance: number;
}

export type StepVerdict = 'advance' | 'rollback' | 'wait';

export interface StepDecision {
  verdict: StepVerdict;
  reasons: string[];
  champion: ArmEvidence;
  challenger: ArmEvidence;
  /** P(challenger's rate - champion's rate > tolerance), and P(... < tolerance), per signal. */
  probabilities: {
    downWorse: number;
    downNoWorse: number;
    errorWorse: number;
    errorNoWorse: number;
  };
}

/** Abramowitz and Stegun 7.1.26: |error| < 1.5e-7, enough for a decision threshold. */
function normalCdf(x: number): number {
  const t = 1 / (1 + 0.3275911 * (Math.abs(x) / Math.SQRT2));
  const poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  const erf = 1 - poly * Math.exp(-(x * x) / 2);
  return x >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
}

/** Mean and variance of Beta(1 + events, 1 + others): the rate's posterior from a uniform prior. */
function betaPosterior(events: number, others: number): { mean: number; variance: number } {
  const a = 1 + events;
  const b = 1 + others;
  return { mean: a / (a + b), variance: (a * b) / ((a + b) ** 2 * (a + b + 1)) };
}

/** P(challenger rate - champion rate > tolerance) under independent Beta posteriors (normal approximation). */
function probabilityWorse(
  champion: { events: number; others: number },
  challenger: { events: number; others: number },
  tolerance: number,
): number {
  const c = betaPosterior(champion.events, champion.others);
  const x = betaPosterior(challenger.events, challenger.others);
  const sd = Math.sqrt(c.variance + x.variance);
  return 1 - normalCdf((tolerance - (x.mean - c.mean)) / sd);
}

/**
 * One step of a canary: compares the two arms' thumbs-down and error rates with Beta
 * posteriors, which stay valid when looked at again and again as votes arrive (the controller
 * asks after every interval). Roll back when the challenger is confidently worse beyond a
 * tolerance on either signal; advance when it is confidently no worse on both, with enough
 * votes and answers in each arm; otherwise wait. Too little data is a wait, never a failure.
 */
export function decideStep(champion: ArmEvidence, challenger: ArmEvidence, policy: RolloutPolicy): StepDecision {
  const down = (arm: ArmEvidence) => ({ events: arm.down, others: arm.up });
  const errors = (arm: ArmEvidence) => ({ events: arm.failed, others: arm.answers - arm.failed });
  const downWorse = probabilityWorse(down(champion), down(challenger), policy.downRateTolerance);
  const downNoWorse = 1 - downWorse;
  const errorWorse = probabilityWorse(errors(champion), errors(challenger), policy.errorRateTolerance);
  const errorNoWorse = 1 - errorWorse;
  const probabilities = { downWorse, downNoWorse, errorWorse, errorNoWorse };
  const votes = (arm: ArmEvidence) => arm.up + arm.down;
  const pct = (p: number) => `${(p * 100).toFixed(1)}%`;
  const reasons: string[] = [];
  const enoughVotes = votes(champion) >= policy.minVotes && votes(challenger) >= policy.minVotes;
  const enoughAnswers = champion.answers >= policy.minAnswers && challenger.answers >= policy.minAnswers;

  if (enoughAnswers && errorWorse >= policy.confidence) {
    reasons.push(
      `${challenger.version} fails more answers than ${champion.version} beyond ${policy.errorRateTolerance} (probability ${pct(errorWorse)})`,
    );
    return { verdict: 'rollback', reasons, champion, challenger, probabilities };
  }
  if (enoughVotes && downWorse >= policy.confidence) {
    reasons.push(
      `${challenger.version} gets more thumbs-down than ${champion.version} beyond ${policy.downRateTolerance} (probability ${pct(downWorse)})`,
    );
    return { verdict: 'rollback', reasons, champion, challenger, probabilities };
  }
  if (!enoughVotes) {
    reasons.push(
      `inconclusive: ${votes(champion)} votes on ${champion.version} and ${votes(challenger)} on ${challenger.version}; each arm needs ${policy.minVotes}`,
    );
  } else if (downNoWorse < policy.confidence) {
    reasons.push(
      `inconclusive: thumbs-down no worse with probability ${pct(downNoWorse)}, below ${pct(policy.confidence)}`,
    );
  }
  if (!enoughAnswers) {
    reasons.push(`inconclusive: each arm needs ${policy.minAnswers} answers`);
  } else if (errorNoWorse < policy.confidence) {
    reasons.push(
      `inconclusive: errors no worse with probability ${pct(errorNoWorse)}, below ${pct(policy.confidence)}`,
    );
  }
  if (reasons.length > 0) return { verdict: 'wait', reasons, champion, challenger, probabilities };
  reasons.push(
    `${challenger.version} is no worse than ${champion.version}: thumbs-down ${pct(downNoWorse)}, errors ${pct(errorNoWorse)}`,
  );
  return { verdict: 'advance', reasons, champion, challenger, probabilities };
}
