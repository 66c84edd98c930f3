import type { ModelBundle } from '../models/index.ts';
import { clozeItems, type DomainText } from './domain.ts';
import type { Evaluator } from './evaluator.ts';
import { generativeSuites } from './generative.ts';
import { loadGoldSuite } from './gold.ts';
import type { EvalSuite, GenerativeItem, GenerativeSettings, SuiteResult } from './suite.ts';

/** A challenger arm to benchmark: a retrained model or the few-shot prompt. */
export interface ChallengerArm {
  arm: string;
  bundle: ModelBundle;
  /** The arm's tracking run, where its scores are logged. */
  trackingRunId: string;
}

export interface ScoredArm {
  arm: string;
  version: string;
  trackingRunId: string;
  results: SuiteResult[];
}

/** The champion's and every arm's results on the same suites: what the gate compares. */
export interface BenchmarkScores {
  championVersion: string;
  champion: SuiteResult[];
  challengers: ScoredArm[];
  goldVersion: string;
}

/** How the tracker names a suite's metrics: `<prefix>_<metric>`. */
const SUITE_PREFIX: Record<string, string> = {
  'benchmark-gold': 'gold',
  'benchmark-domain': 'domain',
  'heldout-perplexity': 'heldout',
  'hallucination-eval': 'hallucination',
  'factcheck-eval': 'factcheck',
  'subject-matter-eval': 'subject',
};

/** A held-out question with the answer users approved or corrected it to. */
export interface HeldOutQuestion {
  id: string;
  question: string;
  reference: string;
}

export interface BenchmarkSuiteOptions {
  domainItems: number;
  /** Most held-out questions the generative suites answer; 0: no generative suites. */
  generativeItems: number;
  generative: Partial<GenerativeSettings>;
  /** The passages chat would retrieve for a question: fixed per item, so every version sees the same. */
  retrieve(question: string): Promise<Array<{ text: string; documentKey: string }>>;
}

/**
 * The suites a retrained version is benchmarked on: the shipped gold set, cloze items from
 * held-out knowledge text (`benchmark-domain`), perplexity on the same held-out text, and,
 * when the held-out feedback has questions, the generative suites (hallucination-eval,
 * factcheck-eval, subject-matter-eval) on answers to them with the passages retrieved for them.
 */
export async function benchmarkSuites(
  heldOut: DomainText[],
  questions: HeldOutQuestion[],
  options: BenchmarkSuiteOptions,
): Promise<{ suites: EvalSuite[]; goldVersion: string }> {
  const gold = await loadGoldSuite();
  const items: GenerativeItem[] = [];
  for (const question of questions.slice(0, options.generativeItems)) {
    const passages = await options.retrieve(question.question);
    items.push({
      id: question.id,
      question: question.question,
      contexts: passages.map((passage) => passage.text),
      reference: question.reference,
      ...(passages[0] ? { document: passages[0].documentKey } : {}),
    });
  }
  return {
    goldVersion: gold.version,
    suites: [
      gold,
      { name: 'benchmark-domain', kind: 'multiple-choice', items: clozeItems(heldOut, options.domainItems) },
      { name: 'heldout-perplexity', kind: 'perplexity', items: heldOut },
      ...(items.length > 0 ? generativeSuites(items, options.generative) : []),
    ],
  };
}

/** Scores the champion and every arm on the same suites, one model loaded at a time. */
export async function benchmarkArms(
  evaluator: Evaluator,
  champion: ModelBundle,
  arms: ChallengerArm[],
  suites: { suites: EvalSuite[]; goldVersion: string },
  progress: (fraction: number, message: string) => void,
  signal: AbortSignal,
): Promise<BenchmarkScores> {
  const total = arms.length + 1;
  progress(0, `scoring ${champion.version}`);
  const championResults = await evaluator.evaluate(champion, suites.suites, signal);
  const challengers: ScoredArm[] = [];
  for (const [index, arm] of arms.entries()) {
    progress((index + 1) / total, `scoring ${arm.bundle.version} (${arm.arm})`);
    challengers.push({
      arm: arm.arm,
      version: arm.bundle.version,
      trackingRunId: arm.trackingRunId,
      results: await evaluator.evaluate(arm.bundle, suites.suites, signal),
    });
  }
  return { championVersion: champion.version, champion: championResults, challengers, goldVersion: suites.goldVersion };
}

/** Results as tracker metrics, e.g. `gold_acc`, `champion_heldout_token_perplexity`. */
export function suiteMetrics(results: SuiteResult[], prefix = ''): Record<string, number> {
  return Object.fromEntries(
    results.flatMap((result) =>
      Object.entries(result.metrics).map(([key, value]) => [
        `${prefix}${SUITE_PREFIX[result.suite] ?? result.suite}_${key}`,
        value,
      ]),
    ),
  );
}
