import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import type { MultipleChoiceItem } from './suite.ts';

const GOLD_FILE = new URL('./gold/questions.json', import.meta.url);

const goldSchema = z.object({
  name: z.string(),
  version: z.string(),
  items: z.array(
    z.object({
      id: z.string(),
      context: z.string(),
      choices: z.array(z.string()).min(2),
      answer: z.number().int().min(0),
    }),
  ),
});

/**
 * `benchmark-gold`: generic questions written for Bertha and shipped with it (gold/questions.json),
 * scored by log-likelihood multiple choice. Its version is logged with the scores; items are
 * paired by id, so a changed question set shows up as unpaired items in the gate.
 */
export async function loadGoldSuite(): Promise<{
  name: string;
  kind: 'multiple-choice';
  items: MultipleChoiceItem[];
  version: string;
}> {
  const parsed = goldSchema.parse(JSON.parse(await readFile(GOLD_FILE, 'utf8')));
  return {
    name: parsed.name,
    kind: 'multiple-choice',
    items: parsed.items,
    version: parsed.version,
  };
}
