import type { DocumentSection } from './loaders.ts';

export interface SplitOptions {
  /** Largest chunk in characters. */
  chunkSize: number;
  /** Characters of whole trailing sentences repeated at the start of the next chunk. */
  chunkOverlap: number;
}

export interface TextChunk {
  text: string;
  /** The section's metadata plus `start`/`end` character offsets within the section. */
  metadata: Record<string, string | number>;
}

type Span = [start: number, end: number];

/** Words before a period that do not end a sentence (lower-cased, without the period). */
const ABBREVIATIONS = new Set([
  'mr',
  'mrs',
  'ms',
  'dr',
  'prof',
  'sr',
  'jr',
  'st',
  'vs',
  'etc',
  'e.g',
  'i.e',
  'inc',
  'ltd',
  'co',
  'fig',
  'no',
  'vol',
  'approx',
  'dept',
  'est',
  'cf',
  'al',
]);

const BOUNDARY = /[.!?\u3002\uff01\uff1f]+["'\u201d\u2019)\]]*(?=\s|$)|\n[ \t]*\n/g;

/** The word right before a period, looking back a bounded distance so the scan stays linear. */
function wordBefore(text: string, index: number): string {
  let start = index;
  while (start > 0 && index - start < 8 && !/\s/.test(text[start - 1] as string)) start--;
  return text.slice(start, index).toLowerCase();
}

/**
 * Sentence spans in one pass: a boundary is terminal punctuation (and closing quotes) before
 * whitespace, unless it follows a known abbreviation, an initial, or comes before a lower-case
 * word; or a blank line.
 */
export function sentenceSpans(text: string): Span[] {
  const spans: Span[] = [];
  let start = 0;
  BOUNDARY.lastIndex = 0;
  for (let match = BOUNDARY.exec(text); match; match = BOUNDARY.exec(text)) {
    const end = match.index + match[0].length;
    if (match[0][0] === '.' && match[0].length === 1) {
      const word = wordBefore(text, match.index);
      if (ABBREVIATIONS.has(word) || /^(\p{L}\.)*\p{L}$/u.test(word)) continue;
      // A period followed by a lower-case word ("5 p.m. today") continues the sentence.
      if (/\p{Ll}/u.test(text[end + 1] ?? '')) continue;
    }
    if (end > start) spans.push([start, end]);
    start = end;
  }
  if (start < text.length) spans.push([start, text.length]);
  // Leading whitespace belongs to no sentence.
  const trimmed: Span[] = [];
  for (const [s, e] of spans) {
    let a = s;
    while (a < e && /\s/.test(text[a] as string)) a++;
    if (a < e) trimmed.push([a, e]);
  }
  return trimmed;
}

/** Cuts a span longer than `size` at the last whitespace inside each window (hard cut when there is none). */
function fitSpan(text: string, span: Span, size: number, out: Span[]): void {
  let [start, end] = span;
  while (end - start > size) {
    const limit = start + size;
    let cut = limit;
    for (let i = limit; i > start + size / 2; i--) {
      if (/\s/.test(text[i] as string)) {
        cut = i;
        break;
      }
    }
    out.push([start, cut]);
    start = cut;
    while (start < end && /\s/.test(text[start] as string)) start++;
  }
  if (end > start) out.push([start, end]);
}

/**
 * Packs whole sentences into chunks of at most `chunkSize` characters, starting each chunk with
 * the previous chunk's last sentences up to `chunkOverlap` characters. Every sentence is visited
 * a bounded number of times, so the work is linear in the input.
 */
export function splitText(text: string, options: SplitOptions): Array<{ start: number; end: number }> {
  const { chunkSize, chunkOverlap } = options;
  const spans: Span[] = [];
  for (const span of sentenceSpans(text)) fitSpan(text, span, chunkSize, spans);
  const chunks: Array<{ start: number; end: number }> = [];
  let first = 0;
  let last = -1;
  for (let i = 0; i < spans.length; i++) {
    const span = spans[i] as Span;
    const chunkStart = (spans[first] as Span)[0];
    if (last >= first && span[1] - chunkStart > chunkSize) {
      const chunkEnd = (spans[last] as Span)[1];
      chunks.push({ start: chunkStart, end: chunkEnd });
      let next = last + 1;
      while (
        next - 1 > first &&
        chunkEnd - (spans[next - 1] as Span)[0] <= chunkOverlap &&
        span[1] - (spans[next - 1] as Span)[0] <= chunkSize
      ) {
        next--;
      }
      first = next;
    }
    last = i;
  }
  if (last >= first) chunks.push({ start: (spans[first] as Span)[0], end: (spans[last] as Span)[1] });
  return chunks;
}

/** Splits every section on its own, so each chunk keeps its page/heading metadata. */
export function splitSections(sections: DocumentSection[], options: SplitOptions): TextChunk[] {
  const chunks: TextChunk[] = [];
  for (const section of sections) {
    for (const { start, end } of splitText(section.text, options)) {
      const text = section.text.slice(start, end).trim();
      if (text) chunks.push({ text, metadata: { ...section.metadata, start, end } });
    }
  }
  return chunks;
}
