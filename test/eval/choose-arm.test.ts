import { describe, expect, test } from 'vitest';
import { type BenchmarkScores, chooseChallenger, type GateSettings, type SuiteResult } from '../../src/eval/index.ts';

function suite(version: string, scores: number[]): SuiteResult {
  return {
    suite: 'gold',
    kind: 'multiple-choice',
    modelVersion: version,
    items: scores.map((score, i) => ({ id: `q${i}`, score, details: {} })),
    metrics: {},
  };
}

/** n items; the first `right` answered correctly. */
const answers = (n: number, right: number) => Array.from({ length: n }, (_, i) => (i < right ? 1 : 0));

const settings: GateSettings = {
  primary: 'gold',
  margin: 0.02,
  guards: [],
  minItems: 20,
  confidence: 0.95,
  resamples: 2000,
  seed: 7,
};

function scores(champion: number, adapter: number, prompt: number): BenchmarkScores {
  return {
    championVersion: 'm/1',
    champion: [suite('m/1', answers(40, champion))],
    challengers: [
      { arm: 'adapter', version: 'm/2', trackingRunId: 'r2', results: [suite('m/2', answers(40, adapter))] },
      { arm: 'prompt', version: 'm/3', trackingRunId: 'r3', results: [suite('m/3', answers(40, prompt))] },
    ],
    goldVersion: 'g1',
  };
}

describe('choosing the arm to canary', () => {
  test('when the adapter only ties the few-shot prompt, the prompt ships and the adapter does not', () => {
    const outcome = chooseChallenger(scores(10, 30, 30), settings);
    expect(outcome.decision).toBe('promote');
    expect(outcome.arms.map((arm) => arm.verdict.decision)).toEqual(['promote', 'promote']);
    expect(outcome.chosen).toMatchObject({ arm: 'prompt', version: 'm/3' });
    expect(outcome.reasons).toContainEqual(expect.stringMatching(/no better than the prompt arm/));
  });

  test('an adapter better than the prompt arm by the margin ships', () => {
    const outcome = chooseChallenger(scores(10, 38, 20), settings);
    expect(outcome.chosen).toMatchObject({ arm: 'adapter', version: 'm/2' });
    expect(outcome.reasons).toContainEqual(
      expect.stringMatching(/better than the prompt arm, so the retrained model ships/),
    );
  });

  test('only the arm that passes the gate can be chosen', () => {
    expect(chooseChallenger(scores(10, 30, 10), settings).chosen).toMatchObject({ arm: 'adapter' });
    expect(chooseChallenger(scores(10, 10, 30), settings).chosen).toMatchObject({ arm: 'prompt' });
  });

  test('no arm passing is no choice: inconclusive when an arm was, else reject', () => {
    const rejected = chooseChallenger(scores(30, 10, 10), settings);
    expect(rejected).toMatchObject({ decision: 'reject', chosen: null });
    const few = chooseChallenger(scores(10, 30, 30), { ...settings, minItems: 100 });
    expect(few).toMatchObject({ decision: 'inconclusive', chosen: null });
    expect(few.reasons.at(-1)).toBe('no arm passed the gate');
  });
});
