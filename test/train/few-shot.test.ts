import { expect, test } from 'vitest';
import { type DatasetExample, fewShotExamples, fewShotSystemPrompt } from '../../src/train/index.ts';

const feedback = (id: string, question: string, completion: string, source: 'thumbs_up' | 'correction') =>
  ({ kind: 'feedback', id, prompt: `<s>[INST] ${question} [/INST]`, question, completion, source }) as DatasetExample;

test('few-shot examples: corrections before approved answers, in a fixed order, never knowledge or oversized turns', () => {
  const examples: DatasetExample[] = [
    feedback('a', 'How long is the warranty?', 'Two years.', 'thumbs_up'),
    feedback('b', 'Which port?', 'Port 8080.', 'correction'),
    { kind: 'knowledge', id: 'k', text: 'A passage.', document_id: 'd' },
    feedback('c', 'Too long?', 'x'.repeat(700), 'correction'),
    feedback('d', 'Where is the reset button?', 'Under the lid.', 'correction'),
    feedback('e', '', 'No question recorded.', 'thumbs_up'),
  ];
  const chosen = fewShotExamples(examples, 3);
  expect(chosen.map((example) => example.source)).toEqual(['correction', 'correction', 'thumbs_up']);
  expect(new Set(chosen.map((example) => example.id))).toEqual(new Set(['a', 'b', 'd']));
  expect(fewShotExamples([...examples].reverse(), 3)).toEqual(chosen);
  expect(fewShotExamples(examples, 1)).toHaveLength(1);

  const prompt = fewShotSystemPrompt('Answer from the passages.\n\n{context}', chosen);
  expect(prompt.startsWith('Answer from the passages.\n\n{context}\n\n')).toBe(true);
  expect(prompt).toContain('Question: Which port?\nAnswer: Port 8080.');
});
