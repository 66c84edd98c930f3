import { createHash } from 'node:crypto';
import type { MultipleChoiceItem } from './suite.ts';

export interface DomainText {
  id: string;
  text: string;
}

const WORD = /^[A-Za-z][A-Za-z-]{3,}$/;

function hash(value: string): number {
  return createHash('sha256').update(value).digest().readUInt32BE(0);
}

function sentencesOf(text: string): string[] {
  return text
    .replace(/\s+/g, ' ')
    .split(/(?<=[.!?])\s+/)
    .map((sentence) => sentence.trim())
    .filter((sentence) => sentence.split(' ').length >= 6);
}

/**
 * `benchmark-domain` items from held-out knowledge text: cloze multiple choice. A sentence's
 * last content word is blanked; the choices are that word and three words of the same kind
 * taken from other held-out passages. Deterministic: the same texts give the same items, and
 * the right answer's position comes from a hash, not from a random draw.
 */
export function clozeItems(texts: DomainText[], maxItems: number): MultipleChoiceItem[] {
  const candidates: Array<{ id: string; context: string; word: string; source: string }> = [];
  for (const text of texts) {
    for (const [index, sentence] of sentencesOf(text.text).entries()) {
      const words = sentence.replace(/[.!?]$/, '').split(' ');
      const last = words.at(-1) ?? '';
      if (!WORD.test(last)) continue;
      candidates.push({
        id: `${text.id}:${index}`,
        context: `${words.slice(0, -1).join(' ')}`,
        word: last,
        source: text.id,
      });
    }
  }
  const pool = [...new Set(candidates.map((candidate) => candidate.word.toLowerCase()))];
  const items: MultipleChoiceItem[] = [];
  for (const candidate of candidates.sort((a, b) => hash(a.id) - hash(b.id))) {
    if (items.length >= maxItems) break;
    const others = pool
      .filter((word) => word !== candidate.word.toLowerCase())
      .sort((a, b) => hash(`${candidate.id}:${a}`) - hash(`${candidate.id}:${b}`))
      .slice(0, 3);
    if (others.length < 3) continue;
    const answer = hash(candidate.id) % 4;
    const choices = [...others];
    choices.splice(answer, 0, candidate.word);
    items.push({
      id: `cloze:${candidate.id}`,
      context: candidate.context,
      choices: choices.map((c) => ` ${c}`),
      answer,
    });
  }
  return items;
}
