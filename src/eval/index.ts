export { answerMessages, DEFAULT_EVAL_PROMPT, type EvalPromptSettings } from './answers.ts';
export {
  type BenchmarkScores,
  type BenchmarkSuiteOptions,
  benchmarkArms,
  benchmarkSuites,
  type ChallengerArm,
  type HeldOutQuestion,
  type ScoredArm,
  suiteMetrics,
} from './benchmark.ts';
export { type ArmVerdict, chooseChallenger, type GateOutcome } from './choose-arm.ts';
export { clozeItems, type DomainText } from './domain.ts';
export { createRuntimeEvaluator, type Evaluator, type RuntimeEvaluatorDeps } from './evaluator.ts';
export {
  checkFaithfulness,
  DEFAULT_SUPPORT_THRESHOLD,
  type FaithfulnessResult,
  type StatementCheck,
  splitStatements,
} from './faithfulness.ts';
export {
  comparePaired,
  decideGate,
  GATE_REFUSAL_REASONS,
  type GateDecision,
  type GateGuard,
  type GateRefusalReason,
  type GateSettings,
  type GateVerdict,
  gateRefusalReason,
  type PairedComparison,
} from './gate.ts';
export {
  armRefusals,
  GATE_DECIDED,
  type GateDecidedPayload,
  type RecordedGate,
  recordGateOutcome,
} from './gate-record.ts';
export {
  DEFAULT_GENERATIVE_SETTINGS,
  type EvalJudge,
  GENERATIVE_SUITE_NAMES,
  generativeSuites,
  scoreGenerative,
} from './generative.ts';
export { loadGoldSuite } from './gold.ts';
export {
  createOpenAiJudge,
  type FaithfulnessJudge,
  JUDGE_PROMPT_VERSION,
  JudgeError,
  type JudgeInput,
  type JudgeVerdict,
  type OpenAiJudgeOptions,
} from './judge.ts';
export { createDbJudgementCache, type JudgementCache, type JudgementKey } from './judge-cache.ts';
export { scoreMultipleChoice } from './multiple-choice.ts';
export { scorePerplexity } from './perplexity.ts';
export type {
  EvalSuite,
  GenerativeCheck,
  GenerativeItem,
  GenerativeSettings,
  GenerativeSuite,
  InconclusiveItem,
  ItemScore,
  MultipleChoiceItem,
  SuiteResult,
  TextItem,
} from './suite.ts';
export { rougeL, tokenF1 } from './text-overlap.ts';
