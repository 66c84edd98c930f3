import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRuntimeFor } from '../src/adapters.ts';
import { createBertha } from '../src/app.ts';
import { loadConfig } from '../src/config/index.ts';
import { createLogger } from '../src/core/logger.ts';
import { clozeItems, createRuntimeEvaluator, type GateDecidedPayload, tokenF1 } from '../src/eval/index.ts';
import type { ModelBundle } from '../src/models/index.ts';
import { LOOP_INTERVALS, type LoopInterval, loopMetricName } from '../src/monitor/index.ts';
import { servedByChallenger } from '../src/rollout/index.ts';
import { round } from './stats.ts';

/**
 * The closed loop end to end, in one process (issue #21 item 8): the starter model serves a
 * fictional product manual (bench/data/product-manual); simulated users ask the train-split
 * questions and vote by answer token F1 (down with the reference as correction); the embedded
 * watcher's alert starts llm-retraining; the gate's choice goes to a canary driven by the
 * same users until it is promoted or rolled back. The baseline is the same model before the
 * loop: held-out answer F1 (chat, greedy), cloze accuracy and perplexity on the held-out
 * passages (the runtime evaluator), measured the same way after. Last, a deliberately worse
 * challenger (the served base with retrieval off) is canaried by hand and voted down, which
 * times a rollback.
 */
const STARTER_STEPS = Number(process.env.BENCH_LOOP_STARTER_STEPS ?? 240);
const LORA_STEPS = Number(process.env.BENCH_LOOP_LORA_STEPS ?? 60);
const MAX_TOKENS = 48;
const F1_UP = 0.5;
const CANARY_LIMIT_MS = Number(process.env.BENCH_LOOP_CANARY_LIMIT_S ?? 300) * 1000;
const RUN_LIMIT_MS = 20 * 60_000;

interface Question {
  id: string;
  question: string;
  answer: string;
  document: string;
  passage: string;
  split: 'train' | 'heldout';
}

const corpus = path.join(path.dirname(fileURLToPath(import.meta.url)), 'data', 'product-manual');
const questions = JSON.parse(readFileSync(path.join(corpus, 'questions.json'), 'utf8')) as Question[];
const train = questions.filter((q) => q.split === 'train');
const heldout = questions.filter((q) => q.split === 'heldout');

const t0 = performance.now();
const elapsed = () => (performance.now() - t0) / 1000;
const log = (line: string) => process.stderr.write(`[loop ${elapsed().toFixed(1)}s] ${line}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until<T>(what: string, check: () => Promise<T | undefined>, limitMs: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

const dataDir = mkdtempSync(path.join(tmpdir(), 'bertha-bench-loop-'));
const settings = [
  'log.level=silent',
  'trainer.starter.enabled=true',
  `trainer.starter.steps=${STARTER_STEPS}`,
  `trainer.retraining.steps=${LORA_STEPS}`,
  'pipelines.runner=true',
  'monitor.mode=embedded',
  'monitor.rules.downOverUp.for=1s',
  'monitor.rules.downRatio.enabled=false',
  'monitor.watcherIntervalMs=200',
  'rollout.steps=[0.5]',
  'rollout.minVotes=10',
  'rollout.minAnswers=10',
  'rollout.intervalMs=200',
  ...(process.env.BENCH_LOOP_SET ? process.env.BENCH_LOOP_SET.split(',') : []),
];
const { config } = loadConfig({ dataDir, port: 0, set: settings }, {});
const bertha = await createBertha(config, { prepareStarterModel: true });
const url = await bertha.listen();
const model = config.tracking.model;
log(`bertha on ${url}, data ${dataDir}; settings ${settings.join(' ')}`);

async function api<T>(method: string, route: string, body?: unknown): Promise<T> {
  const response = await fetch(`${url}${route}`, {
    method,
    ...(body === undefined
      ? {}
      : body instanceof FormData
        ? { body }
        : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${route}: ${response.status} ${text}`);
  return JSON.parse(text) as T;
}

interface ChatAnswer {
  id: string;
  model_version: string;
  choices: Array<{ message: { content: string } }>;
}

async function ask(question: Question, conversation: string): Promise<{ id: string; version: string; f1: number }> {
  const answer = await api<ChatAnswer>('POST', '/v1/chat/completions', {
    model: 'bertha',
    temperature: 0,
    max_tokens: MAX_TOKENS,
    conversation_id: conversation,
    messages: [{ role: 'user', content: question.question }],
  });
  const text = answer.choices[0]?.message.content ?? '';
  return { id: answer.id, version: answer.model_version, f1: tokenF1(text, question.answer) };
}

async function vote(responseId: string, rating: 'up' | 'down', correction?: string): Promise<void> {
  await api('POST', '/v1/feedback', {
    response_id: responseId,
    rating,
    ...(correction ? { correction } : {}),
  });
}

/** A user's vote: up when the answer's token F1 reaches F1_UP, else down with the reference as correction. */
async function askAndVote(question: Question, conversation: string): Promise<{ version: string; up: boolean }> {
  const answer = await ask(question, conversation);
  const up = answer.f1 >= F1_UP;
  await vote(answer.id, up ? 'up' : 'down', up ? undefined : question.answer);
  return { version: answer.version, up };
}

/**
 * What the loop measured of itself (issue #24): each hop's histogram on the registry `/metrics`
 * serves, as observations and mean seconds (`slo_<hop>_n`, `slo_<hop>_s`, null when the run never
 * went through it), and the loop counters by label.
 */
async function loopSlos(): Promise<Record<string, number | null | Record<string, number>>> {
  const figures: Record<string, number | null | Record<string, number>> = {};
  // A histogram's values carry the series each belongs to (`_bucket`, `_sum`, `_count`).
  const valuesOf = async (name: string) =>
    ((await bertha.metrics.getSingleMetric(name)?.get())?.values ?? []) as Array<{
      value: number;
      labels: Record<string, string | number | undefined>;
      metricName?: string;
    }>;
  for (const hop of Object.keys(LOOP_INTERVALS) as LoopInterval[]) {
    const name = loopMetricName(hop);
    const values = await valuesOf(name);
    const total = (suffix: string) =>
      values.filter((value) => value.metricName === `${name}${suffix}`).reduce((sum, value) => sum + value.value, 0);
    const count = total('_count');
    figures[`slo_${hop}_n`] = count;
    figures[`slo_${hop}_s`] = count > 0 ? round(total('_sum') / count, 2) : null;
  }
  for (const [counter, label] of [
    ['triggers_suppressed', 'reason'],
    ['gate_refusals', 'reason'],
    ['rollbacks', 'kind'],
  ] as const) {
    const byLabel: Record<string, number> = {};
    for (const value of await valuesOf(`bertha_loop_${counter}_total`)) {
      if (value.value > 0) byLabel[String(value.labels[label])] = value.value;
    }
    figures[`slo_${counter}`] = byLabel;
  }
  return figures;
}

// 1. Ready: the starter model trained and loaded.
const startReady = elapsed();
await until(
  '/readyz',
  async () => ((await fetch(`${url}/readyz`)).status === 200 ? true : undefined),
  15 * 60_000,
  500,
);
const starterReadyS = elapsed() - startReady;
log(`ready in ${starterReadyS.toFixed(1)} s, serving ${bertha.chat.bundle()?.version}`);

// 2. The manual, uploaded and ingested.
const form = new FormData();
const docs = readdirSync(path.join(corpus, 'docs')).sort();
for (const file of docs) {
  form.append('file', new Blob([readFileSync(path.join(corpus, 'docs', file))], { type: 'text/markdown' }), file);
}
await api('POST', '/v1/documents', form);
await until(
  'ingestion',
  async () => {
    const { data } = await api<{ data: Array<{ key: string; status: string; error: string | null }> }>(
      'GET',
      '/v1/documents?limit=100',
    );
    const failed = data.find((d) => d.status === 'failed');
    if (failed) throw new Error(`ingestion of ${failed.key} failed: ${failed.error}`);
    return data.length >= docs.length && data.every((d) => d.status === 'ingested') ? true : undefined;
  },
  5 * 60_000,
  200,
);
log(`${docs.length} documents ingested`);

// 3 and 6. The same measurement of whatever chat serves.
const createRuntime = createRuntimeFor(config, createLogger('silent'));
const evaluator = createRuntimeEvaluator({ createRuntime });
const passages = heldout.map((q) => ({ id: q.id, text: q.passage }));
const cloze = clozeItems(passages, 200);

interface Measurement {
  version: string;
  answerF1: number;
  domainAccuracy: number;
  perplexity: number;
}

async function measure(label: string): Promise<Measurement> {
  const bundle = bertha.chat.bundle();
  if (!bundle) throw new Error('no model served');
  let f1 = 0;
  for (const [index, question] of heldout.entries()) {
    const answer = await ask(question, `${label}-${index}`);
    if (answer.version !== bundle.version) throw new Error(`${label}: answered by ${answer.version}`);
    f1 += answer.f1;
  }
  log(
    `${label} (${bundle.version}): held-out answer F1 ${(f1 / heldout.length).toFixed(3)} (${heldout.length} questions)`,
  );
  return { ...(await scoreHeldOut(label, bundle)), answerF1: f1 / heldout.length };
}

/** Cloze accuracy and perplexity on the held-out passages, through the serving runtime. */
async function scoreHeldOut(label: string, bundle: ModelBundle): Promise<Measurement> {
  const [domain, perplexity] = await evaluator.evaluate(bundle, [
    { name: 'loop-domain', kind: 'multiple-choice', items: cloze },
    { name: 'loop-heldout-perplexity', kind: 'perplexity', items: passages },
  ]);
  const result = {
    version: bundle.version,
    answerF1: Number.NaN,
    domainAccuracy: domain?.metrics.acc ?? Number.NaN,
    perplexity: perplexity?.metrics.token_perplexity ?? Number.NaN,
  };
  log(
    `${label} (${result.version}): cloze accuracy ` +
      `${result.domainAccuracy.toFixed(3)} (${cloze.length} items), held-out perplexity ${result.perplexity.toFixed(2)}`,
  );
  return result;
}

const before = await measure('before');

// Any llm-retraining run after the first (the watcher sees the new champion voted down too)
// is cancelled, so the measurements after the loop run on an otherwise idle machine.
let loopRunId: string | undefined;
let cancelledRuns = 0;
const guard = setInterval(() => {
  void (async () => {
    if (!loopRunId) return;
    for (const run of await bertha.pipelines.store.listRuns({ pipeline: 'llm-retraining' })) {
      if (run.id === loopRunId || !['queued', 'running'].includes(run.status)) continue;
      await bertha.pipelines.runner.cancel(run.id);
      cancelledRuns++;
      log(`cancelled a later llm-retraining run ${run.id} (${run.source})`);
    }
  })().catch((error) => log(`guard: ${(error as Error).message}`));
}, 500);

// 4. Users on the train split until the watcher fires.
let votes = 0;
let ups = 0;
let alertAt: number | undefined;
const alertEvent = async () => (await bertha.bus.list({ type: 'model.degraded' }))[0];
for (let pass = 0; alertAt === undefined || pass === 0; pass++) {
  for (const [index, question] of train.entries()) {
    const { up } = await askAndVote(question, `user-${pass}-${index}`);
    votes++;
    if (up) ups++;
    if (alertAt === undefined && (await alertEvent())) alertAt = elapsed();
  }
  if (alertAt === undefined) {
    try {
      await until('model.degraded', async () => ((await alertEvent()) ? true : undefined), 10_000, 100);
      alertAt = elapsed();
    } catch {
      if (pass >= 3) throw new Error(`no model.degraded after ${votes} votes (${ups} up)`);
    }
  }
}
const alert = await alertEvent();
log(`model.degraded for ${alert?.subject} at ${alertAt?.toFixed(1)} s, after ${votes} votes (${ups} up)`);

// 5. The run the alert started, its gate, and the canary.
const run = await until(
  'the llm-retraining run',
  async () => (await bertha.pipelines.store.listRuns({ pipeline: 'llm-retraining' })).at(-1),
  60_000,
);
loopRunId = run.id;
log(`llm-retraining ${run.id} (${run.source})`);
let lastReport = '';
const finished = await until(
  'llm-retraining to finish',
  async () => {
    const current = await bertha.pipelines.store.getRun(run.id);
    const steps = await bertha.pipelines.store.listSteps(run.id);
    const report = steps.map((s) => `${s.name}:${s.status}`).join(' ');
    if (report !== lastReport) {
      lastReport = report;
      log(report);
    }
    return current && ['succeeded', 'failed', 'cancelled'].includes(current.status) ? current : undefined;
  },
  RUN_LIMIT_MS,
  1000,
);
const runS = elapsed() - (alertAt ?? 0);
log(`llm-retraining ${finished.status} ${runS.toFixed(1)} s after the alert`);
for (const step of await bertha.pipelines.store.listSteps(run.id)) {
  if (step.error) log(`  ${step.name}: ${step.status}: ${step.error}`);
}

const gate = (await bertha.bus.list({ type: 'gate.decided' }))[0]?.payload as GateDecidedPayload | undefined;
const chosenArm = gate?.arms.find((arm) => arm.version === gate.chosenVersion)?.arm ?? 'none';
log(`gate: ${gate?.decision ?? 'no decision'}, chosen ${gate?.chosenVersion ?? 'none'} (${chosenArm})`);
for (const arm of gate?.arms ?? []) log(`  ${arm.arm} ${arm.version}: ${arm.decision}; ${arm.reasons.join('; ')}`);

// The retrained adapter as the evaluator sees it, whatever the gate said (no chat answers: it may never serve).
const adapterVersion = gate?.arms.find((arm) => arm.arm === 'adapter')?.version;
const adapter = adapterVersion
  ? await scoreHeldOut(
      'adapter arm',
      await bertha.registry.getBundle(model, adapterVersion.slice(adapterVersion.lastIndexOf('/') + 1)),
    )
  : undefined;

interface RolloutJson {
  id: string;
  status: string;
  share: number;
  challenger_version: string;
  champion_version: string;
}
interface RolloutDetail extends RolloutJson {
  decisions: Array<{ kind: string; reason: string; evidence: Record<string, unknown> }>;
}
const running = async () =>
  (await api<{ data: RolloutJson[] }>('GET', '/v1/rollouts')).data.find((r) => r.status === 'running');

let canaryOutcome = 'none';
let canaryVotes = 0;
let alertToServingS: number | undefined;
const canary = await running();
if (canary) {
  log(`canary ${canary.id}: ${canary.challenger_version} at ${canary.share} against ${canary.champion_version}`);
  const deadline = Date.now() + CANARY_LIMIT_MS;
  let status = canary.status;
  for (let i = 0; status === 'running' && Date.now() < deadline; i++) {
    const question = train[i % train.length] as Question;
    await askAndVote(question, `canary-${i}`);
    canaryVotes++;
    status = (await api<RolloutJson>('GET', `/v1/rollouts/${canary.id}`)).status;
  }
  if (status === 'running') {
    // Wait a few looks for the votes already in.
    await sleep(5 * config.rollout.intervalMs);
    status = (await api<RolloutJson>('GET', `/v1/rollouts/${canary.id}`)).status;
  }
  canaryOutcome = status;
  const detail = await api<RolloutDetail>('GET', `/v1/rollouts/${canary.id}`);
  const last = detail.decisions.at(-1);
  log(`canary ${status} after ${canaryVotes} votes: ${last?.kind}: ${last?.reason}`);
  log(`  evidence ${JSON.stringify({ champion: last?.evidence.champion, challenger: last?.evidence.challenger })}`);
  if (status === 'running') {
    await api('POST', '/v1/rollouts/rollback', { reason: 'bench: canary undecided at its time limit' });
    log('canary still undecided at the limit: rolled back by hand');
  } else if (status === 'promoted') {
    await until(
      'the promoted version serving',
      async () =>
        bertha.chat.bundle()?.version === canary.challenger_version && !bertha.chat.canary() ? true : undefined,
      60_000,
      50,
    );
    alertToServingS = elapsed() - (alertAt ?? 0);
    log(`${canary.challenger_version} serves 100% ${alertToServingS.toFixed(1)} s after the alert`);
  }
}
await until('no canary', async () => (bertha.chat.canary() ? undefined : true), 30_000, 50);

// 6. After.
const after = await measure('after');

// 7. A deliberately worse challenger: the served base with retrieval off (it cannot see the manual).
const champion = bertha.chat.bundle();
if (!champion) throw new Error('no model served');
const worse = await bertha.registry.registerBundle({
  name: model,
  bundle: {
    base: champion.base,
    adapters: [],
    generation: {},
    retrieval: { enabled: false, topK: 4 },
  },
  description: 'bench: no retrieval, meant to be rolled back',
});
const worseVersion = `${model}/${worse.version}`;
const rollbackStart = elapsed();
const rollout = await api<RolloutJson>('POST', '/v1/rollouts', { challenger_version: worseVersion });
await until('the worse canary loaded', async () => (bertha.chat.canary() ? true : undefined), 60_000, 50);
log(`worse canary ${worseVersion} at ${rollout.share} against ${rollout.champion_version}`);
let rollbackStatus = 'running';
let rollbackAsked = 0;
for (let i = 0; rollbackStatus === 'running' && rollbackAsked < 400; i++) {
  const conversation = `rollback-${i}`;
  const onChallenger = servedByChallenger(conversation, rollout.share);
  const answer = await ask(train[i % train.length] as Question, conversation);
  if ((answer.version === worseVersion) !== onChallenger)
    throw new Error(`${conversation} served by ${answer.version}`);
  await vote(answer.id, onChallenger ? 'down' : 'up');
  rollbackAsked++;
  rollbackStatus = (await api<RolloutJson>('GET', `/v1/rollouts/${rollout.id}`)).status;
}
if (rollbackStatus === 'running') {
  await sleep(5 * config.rollout.intervalMs);
  rollbackStatus = (await api<RolloutJson>('GET', `/v1/rollouts/${rollout.id}`)).status;
}
const rollbackWallS = elapsed() - rollbackStart;
const rollbackDetail = await api<RolloutDetail>('GET', `/v1/rollouts/${rollout.id}`);
const decisive = rollbackDetail.decisions.at(-1);
const armVotes = (arm: unknown) => {
  const { up = 0, down = 0 } = (arm ?? {}) as { up?: number; down?: number };
  return up + down;
};
// The votes the decision was taken on (the look after each vote may come one or two votes late).
const rollbackVotes =
  rollbackStatus === 'rolled_back'
    ? armVotes(decisive?.evidence.champion) + armVotes(decisive?.evidence.challenger)
    : Number.NaN;
log(
  `worse canary ${rollbackStatus} after ${rollbackAsked} answers voted, decided on ${rollbackVotes} votes, ` +
    `${rollbackWallS.toFixed(1)} s wall: ${decisive?.reason}`,
);

clearInterval(guard);
const totalS = elapsed();
const slos = await loopSlos();
log(`loop SLOs from /metrics' histograms: ${JSON.stringify(slos)}`);
await bertha.close();
rmSync(dataDir, { recursive: true, force: true });

const figures = {
  heldout_perplexity_before: round(before.perplexity, 3),
  heldout_perplexity_after: round(after.perplexity, 3),
  heldout_perplexity_ratio: round(after.perplexity / before.perplexity, 3),
  domain_accuracy_before: round(before.domainAccuracy, 3),
  domain_accuracy_after: round(after.domainAccuracy, 3),
  domain_accuracy_delta: round(after.domainAccuracy - before.domainAccuracy, 3),
  domain_items: cloze.length,
  answer_f1_before: round(before.answerF1, 3),
  answer_f1_after: round(after.answerF1, 3),
  answer_f1_delta: round(after.answerF1 - before.answerF1, 3),
  heldout_questions: heldout.length,
  version_before: before.version,
  version_after: after.version,
  adapter_perplexity_ratio: adapter ? round(adapter.perplexity / before.perplexity, 3) : null,
  adapter_domain_accuracy: adapter ? round(adapter.domainAccuracy, 3) : null,
  gate_decision: gate?.decision ?? 'none',
  chosen_arm: chosenArm,
  retraining_status: finished.status,
  retraining_s: round(runS, 1),
  canary_outcome: canaryOutcome,
  canary_votes: canaryVotes,
  alert_to_serving_s: alertToServingS === undefined ? null : round(alertToServingS, 1),
  alert_after_votes: votes,
  rollback_s: round(rollbackVotes / 1, 1),
  rollback_votes: rollbackVotes,
  rollback_wall_s: round(rollbackWallS, 1),
  rollback_outcome: rollbackStatus,
  later_runs_cancelled: cancelledRuns,
  starter_steps: STARTER_STEPS,
  starter_ready_s: round(starterReadyS, 1),
  lora_steps: LORA_STEPS,
  total_s: round(totalS, 1),
  ...slos,
};
process.stdout.write(`${JSON.stringify(figures)}\n`);
