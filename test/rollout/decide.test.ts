import { describe, expect, test } from 'vitest';
import {
  type ArmEvidence,
  conversationPoint,
  decideStep,
  type RolloutPolicy,
  servedByChallenger,
} from '../../src/rollout/index.ts';

const policy: RolloutPolicy = {
  minVotes: 20,
  minAnswers: 20,
  confidence: 0.95,
  downRateTolerance: 0.05,
  errorRateTolerance: 0.05,
};

const arm = (version: string, up: number, down: number, answers = up + down, failed = 0): ArmEvidence => ({
  version,
  answers,
  failed,
  up,
  down,
});

describe('a canary step', () => {
  test('too few votes is inconclusive: the rollout waits, whatever the votes say', () => {
    const decision = decideStep(arm('v1', 10, 0), arm('v2', 0, 10), policy);
    expect(decision.verdict).toBe('wait');
    expect(decision.reasons[0]).toMatch(/^inconclusive: 10 votes on v1 and 10 on v2; each arm needs 20/);
  });

  test('a challenger voted down far more often is rolled back', () => {
    const decision = decideStep(arm('v1', 90, 10), arm('v2', 40, 60), policy);
    expect(decision.verdict).toBe('rollback');
    expect(decision.probabilities.downWorse).toBeGreaterThan(0.95);
    expect(decision.reasons[0]).toMatch(/v2 gets more thumbs-down than v1/);
  });

  test('a challenger that fails more answers is rolled back on errors alone', () => {
    const decision = decideStep(arm('v1', 0, 0, 100, 1), arm('v2', 0, 0, 100, 30), policy);
    expect(decision.verdict).toBe('rollback');
    expect(decision.reasons[0]).toMatch(/fails more answers/);
  });

  test('a challenger confidently no worse on thumbs and errors advances', () => {
    const decision = decideStep(arm('v1', 150, 50), arm('v2', 170, 30), policy);
    expect(decision.verdict).toBe('advance');
    expect(decision.probabilities.downNoWorse).toBeGreaterThan(0.95);
  });

  test('a small difference on a few dozen votes waits for more', () => {
    const decision = decideStep(arm('v1', 20, 5), arm('v2', 19, 6), policy);
    expect(decision.verdict).toBe('wait');
    expect(decision.reasons.join(' ')).toMatch(/thumbs-down no worse with probability/);
  });
});

describe('conversation assignment', () => {
  test('is sticky per conversation and splits conversations by the share', () => {
    const ids = Array.from({ length: 4000 }, (_, i) => `conv_${i}`);
    for (const id of ids.slice(0, 20)) expect(servedByChallenger(id, 0.3)).toBe(servedByChallenger(id, 0.3));
    const share = ids.filter((id) => servedByChallenger(id, 0.1)).length / ids.length;
    expect(share).toBeGreaterThan(0.08);
    expect(share).toBeLessThan(0.12);
    // Raising the share keeps every conversation already on the challenger there.
    for (const id of ids.filter((candidate) => servedByChallenger(candidate, 0.1))) {
      expect(servedByChallenger(id, 0.5)).toBe(true);
    }
    expect(conversationPoint('conv_1')).toBe(conversationPoint('conv_1'));
  });
});
