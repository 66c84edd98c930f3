import type { Answerer, GeneratedAnswer } from './answers.ts';
import { checkFaithfulness, DEFAULT_SUPPORT_THRESHOLD } from './faithfulness.ts';
import { type FaithfulnessJudge, JudgeError, type JudgeVerdict } from './judge.ts';
import { type JudgementCache, judgeWithCache } from './judge-cache.ts';
import type {
  GenerativeCheck,
  GenerativeItem,
  GenerativeSettings,
  GenerativeSuite,
  InconclusiveItem,
  ItemScore,
} from './suite.ts';
import { rougeL, tokenF1 } from './text-overlap.ts';

export const DEFAULT_GENERATIVE_SETTINGS: GenerativeSettings = {
  maxAnswerTokens: 128,
  supportThreshold: DEFAULT_SUPPORT_THRESHOLD,
  correctF1: 0.5,
};

/** The suite names the gate's `primary` and `guards` refer to. */
export const GENERATIVE_SUITE_NAMES: Record<GenerativeCheck, string> = {
  hallucination: 'hallucination-eval',
  factcheck: 'factcheck-eval',
  'subject-matter': 'subject-matter-eval',
};

/**
 * The three generative suites over the same items. An evaluator generates each answer once
 * and scores it three ways.
 */
export function generativeSuites(
  items: GenerativeItem[],
  settings: Partial<GenerativeSettings> = {},
  checks: GenerativeCheck[] = ['hallucination', 'factcheck', 'subject-matter'],
): GenerativeSuite[] {
  return checks.map((check) => ({ name: GENERATIVE_SUITE_NAMES[check], kind: 'generative', check, items, settings }));
}

/** The faithfulness judge as the evaluator uses it: replaces the lexical proxy in hallucination-eval. */
export interface EvalJudge {
  judge: FaithfulnessJudge;
  /** Keeps verdicts, so an unchanged answer is not judged twice. */
  cache?: JudgementCache | undefined;
  /** Judge requests at once. */
  parallel?: number | undefined;
}

export interface GenerativeScoringDeps {
  answerer: Answerer;
  /** Answers generated at once: the runtime's parallelism. */
  parallel: number;
  judge?: EvalJudge | undefined;
}

type Details = ItemScore['details'];

interface Scored {
  items: ItemScore[];
  metrics: Record<string, number>;
  inconclusive: InconclusiveItem[];
}

/** Runs `work` over `values` with at most `limit` at once; results keep the input order. */
async function mapLimit<T, R>(values: readonly T[], limit: number, work: (value: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(values.length);
  let next = 0;
  const worker = async () => {
    while (next < values.length) {
      const index = next++;
      results[index] = await work(values[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, values.length)) }, worker));
  return results;
}

const mean = (values: number[]) => (values.length ? values.reduce((sum, v) => sum + v, 0) / values.length : 0);

function eligible(check: GenerativeCheck, item: GenerativeItem): boolean {
  if (check === 'hallucination') return true;
  if (check === 'factcheck') return item.reference !== undefined;
  return item.reference !== undefined || (item.choices !== undefined && item.correctChoice !== undefined);
}

function answerDetails(item: GenerativeItem, answer: Extract<GeneratedAnswer, { ok: true }>): Details {
  return {
    answer: answer.text,
    finish_reason: answer.finishReason,
    completion_tokens: answer.completionTokens,
    contexts_used: answer.contexts.length,
    contexts_dropped: item.contexts.length - answer.contexts.length,
    ...(item.document !== undefined ? { document: item.document } : {}),
  };
}

/**
 * Generates the suite's answers and scores them by the suite's check. Items the check needs
 * more for (a reference) are skipped and counted; items that could not be scored (the prompt
 * does not fit, the judge failed) are inconclusive: out of `items`, so the gate never pairs them.
 */
export async function scoreGenerative(
  suite: GenerativeSuite,
  deps: GenerativeScoringDeps,
  signal?: AbortSignal,
): Promise<Scored> {
  const settings = { ...DEFAULT_GENERATIVE_SETTINGS, ...suite.settings };
  const items = suite.items.filter((item) => eligible(suite.check, item));
  const answers = await mapLimit(items, deps.parallel, async (item) => {
    const answer = await deps.answerer.answer(item, settings.maxAnswerTokens, signal);
    signal?.throwIfAborted();
    return answer;
  });
  const inconclusive: InconclusiveItem[] = [];
  const answered: Answered = [];
  for (const [index, item] of items.entries()) {
    const answer = answers[index] as GeneratedAnswer;
    if (answer.ok) answered.push({ item, answer });
    else {
      inconclusive.push({
        id: item.id,
        reason: answer.reason,
        details: { prompt_tokens: answer.promptTokens, context_size: answer.contextSize },
      });
    }
  }
  const scored =
    suite.check === 'hallucination'
      ? await scoreHallucination(answered, settings, deps.judge, signal)
      : suite.check === 'factcheck'
        ? scoreFactcheck(answered, settings)
        : scoreSubjectMatter(answered, settings);
  const all = [...inconclusive, ...scored.inconclusive];
  return {
    items: scored.items,
    inconclusive: all,
    metrics: {
      ...scored.metrics,
      items: scored.items.length,
      inconclusive_items: all.length,
      skipped_items: suite.items.length - items.length,
    },
  };
}

type Answered = Array<{ item: GenerativeItem; answer: Extract<GeneratedAnswer, { ok: true }> }>;

/** hallucination-eval: an item's score is the share of its answer's statements the passages it read support. */
async function scoreHallucination(
  answered: Answered,
  settings: GenerativeSettings,
  judge: EvalJudge | undefined,
  signal?: AbortSignal,
): Promise<Scored> {
  type Outcome = { item: ItemScore; cached: boolean } | { inconclusive: InconclusiveItem };
  const outcomes = await mapLimit(answered, judge?.parallel ?? 4, async ({ item, answer }): Promise<Outcome> => {
    const base = answerDetails(item, answer);
    if (!answer.text.trim()) {
      const details = { ...base, empty_answer: true, statements: 0, supported: 0 };
      return { item: { id: item.id, score: 0, details }, cached: false };
    }
    if (!judge) {
      const checked = checkFaithfulness(answer.text, answer.contexts, settings.supportThreshold);
      const unsupported = checked.statements.filter((s) => !s.supported).map((s) => s.statement);
      return {
        item: {
          id: item.id,
          score: checked.score,
          details: {
            ...base,
            method: 'lexical',
            statements: checked.total,
            supported: checked.supported,
            no_statements: checked.total === 0,
            unsupported_statements: unsupported.join(' | '),
          },
        },
        cached: false,
      };
    }
    let judged: { verdict: JudgeVerdict; cached: boolean };
    try {
      judged = await judgeWithCache(
        judge.judge,
        judge.cache,
        { itemId: item.id, question: item.question, answer: answer.text, contexts: answer.contexts },
        signal,
      );
    } catch (error) {
      if (!(error instanceof JudgeError)) throw error;
      return { inconclusive: { id: item.id, reason: 'judge_error', details: { ...base, judge_error: error.message } } };
    }
    const { verdict, cached } = judged;
    return {
      item: {
        id: item.id,
        score: verdict.score,
        details: {
          ...base,
          method: 'judge',
          judge_model: judge.judge.model,
          judge_prompt_version: judge.judge.promptVersion,
          judge_cached: cached,
          statements: verdict.total,
          supported: verdict.supported,
          no_statements: verdict.total === 0,
          unsupported_statements: verdict.statements
            .filter((s) => !s.supported)
            .map((s) => s.statement)
            .join(' | '),
        },
      },
      cached,
    };
  });
  const items: ItemScore[] = [];
  const inconclusive: InconclusiveItem[] = [];
  let cachedJudgements = 0;
  for (const outcome of outcomes) {
    if ('inconclusive' in outcome) {
      inconclusive.push(outcome.inconclusive);
      continue;
    }
    items.push(outcome.item);
    if (outcome.cached) cachedJudgements++;
  }
  const statements = items.reduce((sum, item) => sum + Number(item.details.statements), 0);
  const supported = items.reduce((sum, item) => sum + Number(item.details.supported), 0);
  return {
    items,
    inconclusive,
    metrics: {
      faithfulness: mean(items.map((item) => item.score)),
      unsupported_rate: statements ? (statements - supported) / statements : 0,
      empty_answers: items.filter((item) => item.details.empty_answer === true).length,
      judge_errors: inconclusive.length,
      judged_items: judge ? items.filter((item) => item.details.method === 'judge').length : 0,
      cached_judgements: cachedJudgements,
    },
  };
}

/**
 * factcheck-eval: an item's score is the answer's token F1 against the reference; ROUGE-L
 * beside it, and `consistent` when every statement of the answer is supported by the
 * reference passage (the lexical rule of faithfulness.ts).
 */
function scoreFactcheck(answered: Answered, settings: GenerativeSettings): Scored {
  const items: ItemScore[] = answered.map(({ item, answer }) => {
    const f1 = tokenF1(answer.text, item.reference ?? '');
    const rouge = rougeL(answer.text, item.reference ?? '');
    const details: Details = { ...answerDetails(item, answer), answer_f1: f1, rouge_l: rouge };
    if (item.referencePassage !== undefined) {
      const checked = checkFaithfulness(answer.text, [item.referencePassage], settings.supportThreshold);
      details.consistent = checked.total > 0 && checked.supported === checked.total;
      details.passage_support = checked.score;
    }
    return { id: item.id, score: f1, details };
  });
  const withPassage = items.filter((item) => item.details.consistent !== undefined);
  return {
    items,
    inconclusive: [],
    metrics: {
      answer_f1: mean(items.map((item) => item.score)),
      rouge_l: mean(items.map((item) => Number(item.details.rouge_l))),
      factual_consistency: mean(withPassage.map((item) => (item.details.consistent ? 1 : 0))),
      consistency_items: withPassage.length,
    },
  };
}

/** Per-document metrics are kept for up to this many documents; past it only `accuracy`. */
const MAX_DOCUMENT_METRICS = 50;

/** The choice the answer overlaps most (token F1); none when no choice shares a word or two tie. */
function closestChoice(answer: string, choices: readonly string[]): number {
  const overlaps = choices.map((choice) => tokenF1(answer, choice));
  const best = Math.max(0, ...overlaps);
  if (best === 0 || overlaps.filter((overlap) => overlap === best).length > 1) return -1;
  return overlaps.indexOf(best);
}

/**
 * subject-matter-eval: an item is correct (1) when the answer's closest choice is the right
 * one (items with choices) or its token F1 against the reference reaches `correctF1`.
 */
function scoreSubjectMatter(answered: Answered, settings: GenerativeSettings): Scored {
  const items: ItemScore[] = answered.map(({ item, answer }) => {
    const details: Details = answerDetails(item, answer);
    let correct: boolean;
    if (item.choices !== undefined && item.correctChoice !== undefined) {
      const chosen = closestChoice(answer.text, item.choices);
      details.chosen = chosen;
      correct = chosen === item.correctChoice;
    } else {
      const f1 = tokenF1(answer.text, item.reference ?? '');
      details.answer_f1 = f1;
      correct = f1 >= settings.correctF1;
    }
    return { id: item.id, score: correct ? 1 : 0, details };
  });
  const byDocument = new Map<string, number[]>();
  for (const item of items) {
    const document = item.details.document;
    if (typeof document !== 'string') continue;
    const key = document.replace(/[^A-Za-z0-9_.-]+/g, '_');
    byDocument.set(key, [...(byDocument.get(key) ?? []), item.score]);
  }
  const perDocument =
    byDocument.size <= MAX_DOCUMENT_METRICS
      ? Object.fromEntries([...byDocument].map(([key, scores]) => [`accuracy_doc_${key}`, mean(scores)]))
      : {};
  return {
    items,
    inconclusive: [],
    metrics: { accuracy: mean(items.map((item) => item.score)), documents: byDocument.size, ...perDocument },
  };
}
