import { describe, expect, test } from 'vitest';
import { comparePaired, decideGate, type GateSettings, type SuiteResult } from '../../src/eval/index.ts';

function suite(
  name: string,
  version: string,
  scores: number[],
  kind: SuiteResult['kind'] = 'multiple-choice',
): SuiteResult {
  return {
    suite: name,
    kind,
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
  guards: [{ suite: 'domain', tolerance: 0.05 }],
  minItems: 20,
  confidence: 0.95,
  resamples: 2000,
  seed: 7,
};

describe('the promotion gate', () => {
  test('a challenger better on the same items beyond the margin, with guards holding, is promoted; the verdict is reproducible', () => {
    const champion = [suite('gold', 'v1', answers(40, 10)), suite('domain', 'v1', answers(30, 15))];
    const challenger = [suite('gold', 'v2', answers(40, 30)), suite('domain', 'v2', answers(30, 15))];
    const verdict = decideGate(champion, challenger, settings);
    expect(verdict.decision).toBe('promote');
    expect(verdict.primary).toMatchObject({ pairs: 40, unpaired: 0, meanDifference: 0.5 });
    expect(verdict.primary?.interval[0]).toBeGreaterThan(0.3);
    expect(verdict.guards[0]?.status).toBe('ok');
    expect(decideGate(champion, challenger, settings)).toEqual(verdict);
  });

  test('no better than the champion is a rejection; an interval across the margin is inconclusive', () => {
    const same = decideGate([suite('gold', 'v1', answers(40, 20))], [suite('gold', 'v2', answers(40, 20))], {
      ...settings,
      guards: [],
    });
    expect(same.decision).toBe('reject');
    expect(same.reasons[0]).toMatch(/not better by the margin/);
    // One item flipped each way plus two more right: a small, noisy gain.
    const noisy = answers(40, 20);
    noisy[0] = 0;
    noisy[20] = 1;
    noisy[21] = 1;
    noisy[22] = 1;
    const unsure = decideGate([suite('gold', 'v1', answers(40, 20))], [suite('gold', 'v2', noisy)], {
      ...settings,
      guards: [],
    });
    expect(unsure.decision).toBe('inconclusive');
    expect(unsure.primary?.interval[0]).toBeLessThan(settings.margin);
    expect(unsure.primary?.interval[1]).toBeGreaterThan(settings.margin);
  });

  test('too few paired items is inconclusive, never a pass', () => {
    const verdict = decideGate([suite('gold', 'v1', answers(10, 0))], [suite('gold', 'v2', answers(10, 10))], {
      ...settings,
      guards: [],
    });
    expect(verdict.decision).toBe('inconclusive');
    expect(verdict.reasons[0]).toMatch(/10 paired items, fewer than 20/);
  });

  test('a guard worse beyond its tolerance rejects; one that may be worse holds the promotion back', () => {
    const champion = [suite('gold', 'v1', answers(40, 10)), suite('domain', 'v1', answers(30, 30))];
    const worse = decideGate(
      champion,
      [suite('gold', 'v2', answers(40, 30)), suite('domain', 'v2', answers(30, 20))],
      settings,
    );
    expect(worse.decision).toBe('reject');
    expect(worse.guards[0]?.status).toBe('worse');
    const maybe = decideGate(
      champion,
      [suite('gold', 'v2', answers(40, 30)), suite('domain', 'v2', answers(30, 29))],
      settings,
    );
    expect(maybe.guards[0]?.status).toBe('uncertain');
    expect(maybe.decision).toBe('inconclusive');
    const missing = decideGate(champion.slice(0, 1), [suite('gold', 'v2', answers(40, 30))], settings);
    expect(missing.decision).toBe('inconclusive');
    expect(missing.guards[0]?.status).toBe('missing');
  });

  test('perplexity is never the primary metric', () => {
    expect(() =>
      decideGate([suite('ppl', 'v1', [1, 2], 'perplexity')], [suite('ppl', 'v2', [3, 4], 'perplexity')], {
        ...settings,
        primary: 'ppl',
      }),
    ).toThrow(/perplexity alone never promotes/);
  });

  test('items only one version has are left out of the pairs and counted', () => {
    const champion = suite('gold', 'v1', answers(30, 10));
    const challenger = { ...suite('gold', 'v2', answers(25, 10)) };
    const compared = comparePaired(champion, challenger, settings);
    expect(compared.pairs).toBe(25);
    expect(compared.unpaired).toBe(5);
  });
});
