import { expect, test } from 'vitest';
import { sentenceSpans, splitSections, splitText } from '../../src/knowledge/splitter.ts';

test('sentences end at terminal punctuation but not after abbreviations or initials', () => {
  const text = 'Dr. Smith arrived at 5 p.m. today. He said "hello!" Then J. Doe left? Yes.\n\nNew paragraph';
  const sentences = sentenceSpans(text).map(([s, e]) => text.slice(s, e).trim());
  expect(sentences).toEqual([
    'Dr. Smith arrived at 5 p.m. today.',
    'He said "hello!"',
    'Then J. Doe left?',
    'Yes.',
    'New paragraph',
  ]);
});

test('chunks keep sentences whole, stay within the size, and overlap by whole sentences', () => {
  const sentences = Array.from({ length: 40 }, (_, i) => `Sentence number ${i} is here.`);
  const text = sentences.join(' ');
  const chunks = splitText(text, { chunkSize: 120, chunkOverlap: 40 }).map(({ start, end }) => text.slice(start, end));
  for (const chunk of chunks) {
    expect(chunk.length).toBeLessThanOrEqual(120);
    expect(chunk).toMatch(/^Sentence number \d+ is here\./);
    expect(chunk).toMatch(/here\.$/);
  }
  for (let i = 1; i < chunks.length; i++) {
    const lastOfPrevious = (chunks[i - 1] as string).split(/(?<=\.) /).pop() as string;
    expect((chunks[i] as string).startsWith(lastOfPrevious)).toBe(true);
  }
  const covered = new Set(chunks.flatMap((chunk) => chunk.match(/number \d+/g) ?? []));
  expect(covered.size).toBe(40);
});

test('a sentence longer than the chunk size is cut at whitespace', () => {
  const text = `${'word '.repeat(100)}end.`;
  const chunks = splitText(text, { chunkSize: 50, chunkOverlap: 0 });
  for (const { start, end } of chunks) expect(end - start).toBeLessThanOrEqual(50);
  expect(
    chunks
      .map(({ start, end }) => text.slice(start, end))
      .join(' ')
      .replace(/\s+/g, ' ')
      .trim(),
  ).toBe(text.trim());
});

test('each chunk keeps its section metadata and character offsets', () => {
  const chunks = splitSections(
    [
      { text: 'Page one says hi.', metadata: { page: 1 } },
      { text: 'Page two says bye.', metadata: { page: 2 } },
    ],
    { chunkSize: 100, chunkOverlap: 10 },
  );
  expect(chunks).toEqual([
    { text: 'Page one says hi.', metadata: { page: 1, start: 0, end: 17 } },
    { text: 'Page two says bye.', metadata: { page: 2, start: 0, end: 18 } },
  ]);
});
