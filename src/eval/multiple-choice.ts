import type { LlmRuntime } from '../llm/index.ts';
import type { ItemScore, MultipleChoiceItem } from './suite.ts';

/**
 * Log-likelihood multiple choice, as lm-evaluation-harness scores it: the choice the model
 * finds most likely after the context is its answer. `acc` compares total log-likelihoods;
 * `acc_norm` divides each by the choice's length in bytes, so long answers are not punished
 * for having more tokens. Deterministic for any model, and meaningful even for a tiny one.
 *
 * An item's score (what the gate pairs) is `prob`: the probability the model gives the right
 * choice, normalised over the choices (TruthfulQA's MC2 with one true answer). A 0/1 hit
 * throws away how sure the model was, so the paired differences are mostly noise on the few
 * dozen items a small knowledge base yields; the probability moves with every change in the
 * model's belief and resolves the same effect on far fewer items.
 */
export async function scoreMultipleChoice(
  runtime: LlmRuntime,
  items: MultipleChoiceItem[],
  signal?: AbortSignal,
): Promise<{ items: ItemScore[]; metrics: Record<string, number> }> {
  const scored: ItemScore[] = [];
  let correct = 0;
  let correctNorm = 0;
  for (const item of items) {
    const results = await runtime.logLikelihood(
      item.choices.map((continuation) => ({ context: item.context, continuation })),
      signal,
    );
    const logprobs = results.map((result) => result.logprob);
    const normalised = logprobs.map((logprob, i) => logprob / Math.max(1, Buffer.byteLength(item.choices[i] ?? '')));
    const pick = argmax(logprobs);
    const pickNorm = argmax(normalised);
    if (pickNorm === item.answer) correctNorm++;
    if (pick === item.answer) correct++;
    scored.push({
      id: item.id,
      score: choiceProbability(logprobs, item.answer),
      details: {
        chosen: pick,
        chosen_norm: pickNorm,
        answer: item.answer,
        answer_logprob: logprobs[item.answer] ?? Number.NaN,
        correct: pick === item.answer,
        correct_norm: pickNorm === item.answer,
      },
    });
  }
  const n = Math.max(1, scored.length);
  return {
    items: scored,
    metrics: {
      acc: correct / n,
      acc_norm: correctNorm / n,
      prob: scored.reduce((sum, item) => sum + item.score, 0) / n,
      items: scored.length,
    },
  };
}

/** softmax(logprobs)[answer], computed from the largest so no exp() underflows to 0/0. */
function choiceProbability(logprobs: number[], answer: number): number {
  const top = Math.max(...logprobs);
  const total = logprobs.reduce((sum, logprob) => sum + Math.exp(logprob - top), 0);
  return Math.exp((logprobs[answer] ?? Number.NEGATIVE_INFINITY) - top) / total;
}

function argmax(values: number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if ((values[i] as number) > (values[best] as number)) best = i;
  return best;
}
