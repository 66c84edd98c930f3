import { expect, test } from 'vitest';
import { clozeItems } from '../../src/eval/index.ts';

const texts = [
  {
    id: 'c1',
    text: 'The gateway receives alerts from Alertmanager. Every upload starts the ingestion pipeline quickly.',
  },
  { id: 'c2', text: 'Feedback from users becomes Prometheus metrics. The registry keeps every model version forever.' },
  { id: 'c3', text: 'Short one. A canary serves a share of conversations to the challenger model.' },
];

test('cloze items blank the last word of held-out sentences, with distinct choices, the same every time', () => {
  const items = clozeItems(texts, 10);
  expect(items.length).toBeGreaterThanOrEqual(4);
  expect(clozeItems(texts, 10)).toEqual(items);
  for (const item of items) {
    const right = item.choices[item.answer]?.trim() ?? '';
    const source = texts.find((text) => item.id.startsWith(`cloze:${text.id}:`));
    expect(source?.text).toContain(`${item.context} ${right}`);
    expect(new Set(item.choices).size).toBe(4);
    expect(item.choices.every((choice) => choice.startsWith(' '))).toBe(true);
  }
  expect(new Set(items.map((item) => item.answer)).size).toBeGreaterThan(1);
  expect(clozeItems(texts, 2)).toHaveLength(2);
});
