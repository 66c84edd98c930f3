/**
 * A lexical stand-in for RAGAS faithfulness (Es et al., 2023: the share of an answer's
 * statements that the retrieved context supports), for when no judge model is configured.
 *
 * The rule, so a score can be checked by hand:
 * 1. The answer is split into statements: lines (list markers dropped), then sentences, then
 *    clauses at `;` and at `, and` / `, but` / `, while` ... when both sides carry at least two
 *    content words. Citation marks such as `[1]` are removed first.
 * 2. A statement's content tokens: words lower-cased (NFKC), with stopwords dropped, a
 *    possessive `'s` and a plural `s`/`es`/`ies` folded; numbers as numbers (`1,000` = `1000`,
 *    `3.50` = `3.5`, `two` ... `twenty` = `2` ... `20`). Negation cues (`not`, `no`, `never`,
 *    `n't` ...) are not content but the statement's polarity.
 * 3. A context is split into sentences; windows are single sentences and adjacent pairs. A
 *    window supports a statement when it holds every number of the statement, has the same
 *    polarity, and contains at least `threshold` of the statement's content tokens (recall).
 * 4. A statement's support is the best window's recall (0 for windows failing the number or
 *    polarity test); statements without content tokens ("Sure.") are not checked.
 *
 * Words do not mean: a paraphrase scores low and a contradiction by antonym scores high. It
 * ranks two models answering the same items from the same passages, which is what the gate
 * compares; configure the judge (judge.ts) for a semantic check.
 */

/** Function words of English that carry no claim; negations are kept apart as polarity. */
const STOPWORDS = new Set(
  (
    'a about above after again against all also am an and any are as at be because been before being below ' +
    'between both but by can could did do does doing down during each either else ever few for from further ' +
    'had has have having he her here hers herself him himself his how i if in into is it its itself just let ' +
    'may me might more most much must my myself of off on once one only or other ought our ours ourselves out ' +
    'over own per same shall she should so some such than that the their theirs them themselves then there ' +
    'these they this those through thus to too under until up upon us very via was we were what when where ' +
    'whether which while who whom whose why will with within without would yes yet you your yours yourself ' +
    'yourselves'
  ).split(' '),
);

const NEGATIONS = new Set(['not', 'no', 'never', 'none', 'nor', 'neither', 'nothing', 'nobody', 'nowhere', 'cannot']);

const NUMBER_WORDS = new Map(
  'two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty'
    .split(' ')
    .map((word, index) => [word, String(index + 2)]),
);

/** A number (thousands separators allowed), or a word (letters, inner apostrophes and digits). */
const TOKEN = /(\d[\d,]*(?:\.\d+)?)|(\p{L}[\p{L}\p{N}'’]*)/gu;

export interface StatementTokens {
  /** Content words, folded. */
  words: Set<string>;
  /** Numbers in canonical form. */
  numbers: Set<string>;
  /** Whether a negation cue occurs. */
  negated: boolean;
}

function canonicalNumber(raw: string): string {
  const plain = raw.replace(/,/g, '');
  return plain.includes('.') ? String(Number(plain)) : plain.replace(/^0+(?=\d)/, '');
}

function foldWord(word: string): string {
  let folded = word.replace(/['’]s$/, '').replace(/['’]/g, '');
  if (folded.length > 4 && folded.endsWith('ies')) folded = `${folded.slice(0, -3)}y`;
  else if (/(ch|sh|x|ss|zz)es$/.test(folded)) folded = folded.slice(0, -2);
  else if (folded.length > 3 && folded.endsWith('s') && !/(ss|us|is)$/.test(folded)) folded = folded.slice(0, -1);
  return folded;
}

/** The content tokens, numbers and polarity of a piece of text (rule step 2). */
export function statementTokens(text: string): StatementTokens {
  const words = new Set<string>();
  const numbers = new Set<string>();
  let negated = false;
  for (const match of text.normalize('NFKC').toLowerCase().matchAll(TOKEN)) {
    const [, number, word] = match;
    if (number) {
      numbers.add(canonicalNumber(number.replace(/,$/, '')));
      continue;
    }
    if (!word) continue;
    if (NEGATIONS.has(word) || /n['’]t$/.test(word)) {
      negated = true;
      continue;
    }
    const asNumber = NUMBER_WORDS.get(word);
    if (asNumber) {
      numbers.add(asNumber);
      continue;
    }
    if (STOPWORDS.has(word)) continue;
    const folded = foldWord(word);
    if (folded && !STOPWORDS.has(folded)) words.add(folded);
  }
  return { words, numbers, negated };
}

function contentSize(tokens: StatementTokens): number {
  return tokens.words.size + tokens.numbers.size;
}

/** Sentences of a passage: split after `.`, `!` or `?` before an upper-case letter or digit, and at line breaks. */
export function sentencesOf(text: string): string[] {
  return text
    .split(/\n+/)
    .flatMap((line) => line.split(/(?<=[.!?]["')\]]?)\s+(?=["'([]?[\p{Lu}\p{N}])/u))
    .map((sentence) => sentence.trim())
    .filter(Boolean);
}

const CLAUSE_BREAK = /;\s*|,\s+(?=(?:and|but|while|whereas|although|though|however|yet)\s)/i;
const LIST_MARKER = /^\s*(?:[-*•]|\d+[.)])\s+/;
const CITATION = /\s*\[\d+(?:\s*[,-]\s*\d+)*\]/g;

/** The answer as statements (rule step 1). Statements keep their words; trailing punctuation is dropped. */
export function splitStatements(answer: string): string[] {
  const statements: string[] = [];
  for (const line of answer.replace(CITATION, '').split(/\n+/)) {
    for (const sentence of sentencesOf(line.replace(LIST_MARKER, ''))) {
      const clauses = sentence.split(CLAUSE_BREAK).map((clause) => clause.trim());
      const separable = clauses.every((clause) => contentSize(statementTokens(clause)) >= 2);
      for (const piece of separable ? clauses : [sentence]) {
        const statement = piece
          .replace(/^(?:and|but|while|whereas|although|though|however|yet)\s+/i, '')
          .replace(/[\s.!?;:,]+$/, '')
          .trim();
        if (statement) statements.push(statement);
      }
    }
  }
  return statements;
}

interface Window {
  tokens: StatementTokens;
}

function windowsOf(contexts: readonly string[]): Window[] {
  const windows: Window[] = [];
  for (const context of contexts) {
    const sentences = sentencesOf(context).map(statementTokens);
    for (let i = 0; i < sentences.length; i++) {
      const one = sentences[i] as StatementTokens;
      windows.push({ tokens: one });
      const next = sentences[i + 1];
      if (next) {
        windows.push({
          tokens: {
            words: new Set([...one.words, ...next.words]),
            numbers: new Set([...one.numbers, ...next.numbers]),
            negated: one.negated || next.negated,
          },
        });
      }
    }
  }
  return windows;
}

function recallIn(statement: StatementTokens, window: StatementTokens): number {
  if (statement.negated !== window.negated) return 0;
  for (const number of statement.numbers) if (!window.numbers.has(number)) return 0;
  let found = statement.numbers.size;
  for (const word of statement.words) if (window.words.has(word)) found++;
  return found / contentSize(statement);
}

export interface StatementCheck {
  statement: string;
  /** Recall of its content tokens in the best window, 0..1. */
  support: number;
  supported: boolean;
}

export interface FaithfulnessResult {
  /** Checked statements only: those with content tokens. */
  statements: StatementCheck[];
  supported: number;
  total: number;
  /** supported / total; 0 when nothing could be checked (an empty or content-free answer). */
  score: number;
}

/** Default share of a statement's content tokens a context window must hold. */
export const DEFAULT_SUPPORT_THRESHOLD = 0.6;

/** Checks every statement of `answer` against `contexts` (rule steps 3-4). */
export function checkFaithfulness(
  answer: string,
  contexts: readonly string[],
  threshold = DEFAULT_SUPPORT_THRESHOLD,
): FaithfulnessResult {
  const windows = windowsOf(contexts);
  const statements: StatementCheck[] = [];
  for (const statement of splitStatements(answer)) {
    const tokens = statementTokens(statement);
    if (contentSize(tokens) === 0) continue;
    const support = windows.reduce((best, window) => Math.max(best, recallIn(tokens, window.tokens)), 0);
    statements.push({ statement, support, supported: support >= threshold });
  }
  const supported = statements.filter((check) => check.supported).length;
  return {
    statements,
    supported,
    total: statements.length,
    score: statements.length === 0 ? 0 : supported / statements.length,
  };
}
