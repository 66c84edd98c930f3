/**
 * An evaluation suite: items scored the same way for every model, so two versions scored on
 * one suite can be compared item by item (the gate's paired test).
 */
export interface MultipleChoiceItem {
  id: string;
  /** Text before the answer, e.g. `Question: ...\nAnswer:`. */
  context: string;
  /** Candidate continuations, each starting with the space that separates it from the context. */
  choices: string[];
  /** Index of the right choice. */
  answer: number;
}

export interface TextItem {
  id: string;
  text: string;
}

/**
 * A question answered by generation, as chat answers it, from passages fixed per item so that
 * champion and challenger read the same ones.
 */
export interface GenerativeItem {
  id: string;
  question: string;
  /** Retrieved passages, in rank order, as they enter the prompt. */
  contexts: string[];
  /** A reference answer: factcheck-eval and subject-matter-eval compare with it. */
  reference?: string;
  /** The passage that holds the reference answer: factcheck-eval checks the answer against it. */
  referencePassage?: string;
  /** Key of the source document: subject-matter-eval reports accuracy per document. */
  document?: string;
  /** When set with `correctChoice`, subject-matter-eval maps the answer to the closest choice. */
  choices?: string[];
  correctChoice?: number;
}

/**
 * What a generative suite scores of each answer (docs/loop.md):
 * - `hallucination`: faithfulness to the item's contexts (RAGAS-style), by the judge when
 *   one is configured, else by the lexical proxy (faithfulness.ts);
 * - `factcheck`: token F1 and ROUGE-L against the reference, consistency with the reference passage;
 * - `subject-matter`: correct or not (F1 against the reference, or the closest choice), per document.
 */
export type GenerativeCheck = 'hallucination' | 'factcheck' | 'subject-matter';

export interface GenerativeSettings {
  /** Most tokens an answer may have; generation is greedy (temperature 0). */
  maxAnswerTokens: number;
  /** Share of a statement's content tokens a context window must hold for the lexical proxy to support it. */
  supportThreshold: number;
  /** subject-matter-eval: an answer is correct when its token F1 against the reference reaches this. */
  correctF1: number;
}

export interface GenerativeSuite {
  name: string;
  kind: 'generative';
  check: GenerativeCheck;
  items: GenerativeItem[];
  /** Unset fields take DEFAULT_GENERATIVE_SETTINGS. */
  settings?: Partial<GenerativeSettings>;
}

export type EvalSuite =
  | { name: string; kind: 'multiple-choice'; items: MultipleChoiceItem[] }
  | { name: string; kind: 'perplexity'; items: TextItem[] }
  | GenerativeSuite;

/**
 * One item's outcome; `score` is what a paired comparison subtracts (1/0 accuracy, a
 * log-likelihood, a faithfulness ratio, a token F1).
 */
export interface ItemScore {
  id: string;
  score: number;
  details: Record<string, number | string | boolean>;
}

export interface SuiteResult {
  suite: string;
  kind: EvalSuite['kind'];
  modelVersion: string;
  items: ItemScore[];
  /** Aggregates, named as the tracker logs them (`acc`, `acc_norm`, `token_perplexity` ...). */
  metrics: Record<string, number>;
  /**
   * Items that could not be scored (the judge failed, the prompt did not fit): not in `items`,
   * so the gate never pairs them; counted in `metrics.inconclusive_items`.
   */
  inconclusive?: InconclusiveItem[];
}

export interface InconclusiveItem {
  id: string;
  /** `judge_error`, `prompt_too_long`. */
  reason: string;
  details: Record<string, number | string | boolean>;
}
