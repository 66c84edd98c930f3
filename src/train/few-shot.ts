import { createHash } from 'node:crypto';
import type { DatasetExample } from './dataset.ts';

export interface FewShotExample {
  /** The dataset example it came from, so a prompt challenger traces back to feedback. */
  id: string;
  question: string;
  answer: string;
  source: 'thumbs_up' | 'correction';
}

/** Longer examples cost every request their tokens; past this, an example is left out. */
const MAX_EXAMPLE_CHARS = 600;

const order = (id: string) => createHash('sha256').update(id).digest().readUInt32BE(0);

/**
 * The in-context arm's examples, taken from a dataset's training feedback: corrections first
 * (they say what the model should have said), then answers voted up; within each, a fixed
 * order by hash, so the same dataset gives the same prompt.
 */
export function fewShotExamples(examples: DatasetExample[], count: number): FewShotExample[] {
  const feedback = examples.flatMap((example) =>
    example.kind === 'feedback' &&
    example.question?.trim() &&
    example.completion.trim() !== '' &&
    example.question.length + example.completion.length <= MAX_EXAMPLE_CHARS
      ? [
          {
            id: example.id,
            question: example.question.trim(),
            answer: example.completion.trim(),
            source: example.source,
          },
        ]
      : [],
  );
  const rank = (example: FewShotExample) => (example.source === 'correction' ? 0 : 1);
  return feedback.sort((a, b) => rank(a) - rank(b) || order(a.id) - order(b.id)).slice(0, count);
}

/**
 * A system prompt that shows the model answers users approved of. The base prompt keeps its
 * `{context}` placeholder, so retrieved passages still go where it says.
 */
export function fewShotSystemPrompt(base: string, examples: FewShotExample[]): string {
  const shown = examples.map((example) => `Question: ${example.question}\nAnswer: ${example.answer}`).join('\n\n');
  const lead = base.trim() === '' ? '' : `${base.trim()}\n\n`;
  return `${lead}Answer in the style of these approved answers:\n\n${shown}`;
}
