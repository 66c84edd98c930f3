import type { BenchmarkScores, ScoredArm } from './benchmark.ts';
import { comparePaired, decideGate, type GateDecision, type GateSettings, type GateVerdict } from './gate.ts';

export interface ArmVerdict {
  arm: string;
  version: string;
  trackingRunId: string;
  verdict: GateVerdict;
}

/** The gate over every arm: each arm's verdict against the champion, and the one to canary, if any. */
export interface GateOutcome {
  /** `promote` when an arm was chosen; else `inconclusive` if any arm was, else `reject`. */
  decision: GateDecision;
  chosen: ArmVerdict | null;
  arms: ArmVerdict[];
  reasons: string[];
}

/** Arms that change weights cost a model to ship and serve; the prompt arm costs tokens only. */
const changesWeights = (arm: string) => arm !== 'prompt';

/**
 * Each arm is gated against the champion on the same items. Of the arms that pass, a
 * retrained model is chosen over the few-shot prompt only when it beats the prompt arm on the
 * primary suite by the margin (paired, same bootstrap): a tie ships the prompt, not the adapter.
 */
export function chooseChallenger(scores: BenchmarkScores, settings: GateSettings): GateOutcome {
  const arms = scores.challengers.map((arm) => ({
    arm: arm.arm,
    version: arm.version,
    trackingRunId: arm.trackingRunId,
    verdict: decideGate(scores.champion, arm.results, settings),
  }));
  const reasons = arms.map((arm) => `${arm.arm} ${arm.version}: ${arm.verdict.decision}`);
  const passed = arms.filter((arm) => arm.verdict.decision === 'promote');
  if (passed.length === 0) {
    const decision = arms.some((arm) => arm.verdict.decision === 'inconclusive') ? 'inconclusive' : 'reject';
    return { decision, chosen: null, arms, reasons: [...reasons, 'no arm passed the gate'] };
  }
  const prompt = passed.find((arm) => !changesWeights(arm.arm));
  const weights = passed.filter((arm) => changesWeights(arm.arm));
  let chosen = prompt ?? (weights[0] as ArmVerdict);
  if (prompt) {
    const results = (arm: ArmVerdict) =>
      (scores.challengers.find((scored) => scored.version === arm.version) as ScoredArm).results.find(
        (result) => result.suite === settings.primary,
      );
    for (const candidate of weights) {
      const a = results(prompt);
      const b = results(candidate);
      if (!a || !b) continue;
      const compared = comparePaired(a, b, settings);
      const line = `${candidate.arm} ${candidate.version} against the prompt arm on ${settings.primary}: mean difference ${compared.meanDifference.toFixed(4)}, interval [${compared.interval[0].toFixed(4)}, ${compared.interval[1].toFixed(4)}]`;
      // A gate with a negative margin accepts "no worse"; between arms, the model must be better.
      if (compared.interval[0] > Math.max(settings.margin, 0)) {
        chosen = candidate;
        reasons.push(`${line}: better than the prompt arm, so the retrained model ships`);
      } else {
        reasons.push(`${line}: no better than the prompt arm, so the retrained model does not ship`);
      }
    }
  }
  reasons.push(`chosen: ${chosen.arm} ${chosen.version}`);
  return { decision: 'promote', chosen, arms, reasons };
}
