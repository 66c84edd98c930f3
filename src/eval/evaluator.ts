import type { LlmRuntime } from '../llm/index.ts';
import type { ModelBundle } from '../models/index.ts';
import { createAnswerer, type EvalPromptSettings } from './answers.ts';
import { type EvalJudge, scoreGenerative } from './generative.ts';
import { scoreMultipleChoice } from './multiple-choice.ts';
import { scorePerplexity } from './perplexity.ts';
import type { EvalSuite, SuiteResult } from './suite.ts';

/** Scores a model bundle on suites, loading it once. */
export interface Evaluator {
  evaluate(bundle: ModelBundle, suites: EvalSuite[], signal?: AbortSignal): Promise<SuiteResult[]>;
}

export interface RuntimeEvaluatorDeps {
  /** The factory the chat service serves bundles with, so a score is what users get. */
  createRuntime(bundle: ModelBundle): LlmRuntime;
  /**
   * How chat asks (config `serving.systemPrompt` and `serving.contextTemplate`), for generative
   * suites; a bundle's own system prompt wins, as in chat. Default: the config's defaults.
   */
  prompt?: EvalPromptSettings | undefined;
  /** When set, hallucination-eval asks this judge instead of the lexical proxy. */
  judge?: EvalJudge | undefined;
}

/**
 * The default evaluator: loads the bundle through the serving runtime (same adapter, LoRA
 * adapters and settings as chat), scores log-likelihood suites from the model's own
 * probabilities and generative suites from its greedy answers, and releases the runtime.
 */
export function createRuntimeEvaluator(deps: RuntimeEvaluatorDeps): Evaluator {
  return {
    async evaluate(bundle, suites, signal) {
      const runtime = deps.createRuntime(bundle);
      try {
        await runtime.load(signal);
        // One answer per item for all generative suites of this evaluation.
        const answerer = createAnswerer(runtime, bundle, deps.prompt);
        const results: SuiteResult[] = [];
        for (const suite of suites) {
          const scored =
            suite.kind === 'multiple-choice'
              ? await scoreMultipleChoice(runtime, suite.items, signal)
              : suite.kind === 'perplexity'
                ? await scorePerplexity(runtime, suite.items, signal)
                : await scoreGenerative(suite, { answerer, parallel: runtime.parallelism, judge: deps.judge }, signal);
          results.push({ suite: suite.name, kind: suite.kind, modelVersion: bundle.version, ...scored });
        }
        return results;
      } finally {
        await runtime.close();
      }
    },
  };
}
