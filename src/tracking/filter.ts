import { invalidParameter } from './errors.ts';

/**
 * MLflow's search filter language (mlflow/utils/search_utils.py): comparisons joined by AND,
 * each `<entity>.<key> <op> <value>`, keys bare, `backticked` or "double-quoted", string
 * values in single or double quotes, IN lists in parentheses. OR is not part of it.
 */
export type FilterEntity = 'metric' | 'parameter' | 'tag' | 'attribute' | 'dataset';
export type FilterOperator =
  | '='
  | '!='
  | '>'
  | '>='
  | '<'
  | '<='
  | 'LIKE'
  | 'ILIKE'
  | 'IN'
  | 'NOT IN'
  | 'IS NULL'
  | 'IS NOT NULL';

export interface FilterComparison {
  entity: FilterEntity;
  key: string;
  op: FilterOperator;
  value: string | number | string[] | null;
}

const ENTITY_NAMES: Record<string, FilterEntity> = {
  metric: 'metric',
  metrics: 'metric',
  param: 'parameter',
  params: 'parameter',
  parameter: 'parameter',
  parameters: 'parameter',
  tag: 'tag',
  tags: 'tag',
  attribute: 'attribute',
  attributes: 'attribute',
  attr: 'attribute',
  run: 'attribute',
  dataset: 'dataset',
  datasets: 'dataset',
};

type Token =
  | { kind: 'ident'; text: string; quotedKey?: string }
  | { kind: 'string'; text: string }
  | { kind: 'number'; value: number }
  | { kind: 'op'; text: string }
  | { kind: 'word'; text: string }
  | { kind: 'punct'; text: '(' | ')' | ',' };

const KEYWORDS = new Set(['AND', 'LIKE', 'ILIKE', 'IN', 'NOT', 'IS', 'NULL', 'OR']);

function readQuoted(input: string, start: number, quote: string): { text: string; end: number } {
  let text = '';
  let i = start + 1;
  while (i < input.length) {
    const ch = input[i] as string;
    if (ch === quote) {
      // SQL-style escape: a doubled quote stands for one.
      if (input[i + 1] === quote) {
        text += quote;
        i += 2;
        continue;
      }
      return { text, end: i + 1 };
    }
    if (ch === '\\' && i + 1 < input.length) {
      text += input[i + 1];
      i += 2;
      continue;
    }
    text += ch;
    i++;
  }
  throw invalidParameter(`Invalid filter: unterminated ${quote} at position ${start}`);
}

function tokenize(input: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < input.length) {
    const ch = input[i] as string;
    if (/\s/.test(ch)) {
      i++;
      continue;
    }
    if (ch === '(' || ch === ')' || ch === ',') {
      tokens.push({ kind: 'punct', text: ch });
      i++;
      continue;
    }
    const op = /^(!=|<>|>=|<=|=|>|<)/.exec(input.slice(i));
    if (op) {
      tokens.push({ kind: 'op', text: op[0] === '<>' ? '!=' : op[0] });
      i += op[0].length;
      continue;
    }
    if (ch === "'") {
      const quoted = readQuoted(input, i, "'");
      tokens.push({ kind: 'string', text: quoted.text });
      i = quoted.end;
      continue;
    }
    if (ch === '"' || ch === '`') {
      const quoted = readQuoted(input, i, ch);
      // A quoted name on its own is a key (`"my key"`) or, in value position, a string.
      tokens.push(
        ch === '`' ? { kind: 'ident', text: '', quotedKey: quoted.text } : { kind: 'string', text: quoted.text },
      );
      i = quoted.end;
      continue;
    }
    const number = /^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?/.exec(input.slice(i));
    if (number && !/[A-Za-z_]/.test(input[i + number[0].length] ?? '')) {
      tokens.push({ kind: 'number', value: Number(number[0]) });
      i += number[0].length;
      continue;
    }
    const word = /^[A-Za-z_][\w.:/-]*/.exec(input.slice(i));
    if (word) {
      i += word[0].length;
      const upper = word[0].toUpperCase();
      if (KEYWORDS.has(upper)) {
        tokens.push({ kind: 'word', text: upper });
        continue;
      }
      const next = input[i];
      if (word[0].endsWith('.') && (next === '`' || next === '"')) {
        const quoted = readQuoted(input, i, next);
        i = quoted.end;
        tokens.push({ kind: 'ident', text: word[0].slice(0, -1), quotedKey: quoted.text });
        continue;
      }
      tokens.push({ kind: 'ident', text: word[0] });
      continue;
    }
    throw invalidParameter(`Invalid filter: unexpected character '${ch}' at position ${i}`);
  }
  return tokens;
}

function splitIdentifier(token: Extract<Token, { kind: 'ident' }>): { entity: FilterEntity; key: string } {
  if (token.quotedKey !== undefined) {
    if (token.text === '') return { entity: 'attribute', key: token.quotedKey };
    const entity = ENTITY_NAMES[token.text.toLowerCase()];
    if (!entity) throw invalidParameter(`Invalid entity type '${token.text}' in filter`);
    return { entity, key: token.quotedKey };
  }
  const dot = token.text.indexOf('.');
  if (dot > 0) {
    const entity = ENTITY_NAMES[token.text.slice(0, dot).toLowerCase()];
    if (entity) {
      const key = token.text.slice(dot + 1);
      if (!key) throw invalidParameter(`Invalid filter: '${token.text}' names no key`);
      return { entity, key };
    }
  }
  return { entity: 'attribute', key: token.text };
}

/** Parses a filter string into comparisons; an empty filter is no comparison at all. */
export function parseFilter(filter: string | undefined): FilterComparison[] {
  if (!filter || filter.trim() === '') return [];
  const tokens = tokenize(filter);
  const comparisons: FilterComparison[] = [];
  let i = 0;
  const peek = () => tokens[i];
  const fail = (why: string): never => {
    throw invalidParameter(`Invalid filter '${filter}': ${why}`);
  };
  while (i < tokens.length) {
    const left = tokens[i++];
    if (left?.kind !== 'ident') fail(`expected an identifier such as metrics.<key>, found ${describe(left)}`);
    const { entity, key } = splitIdentifier(left as Extract<Token, { kind: 'ident' }>);
    const opToken = tokens[i++];
    let op: FilterOperator;
    if (opToken?.kind === 'op') op = opToken.text as FilterOperator;
    else if (opToken?.kind === 'word' && (opToken.text === 'LIKE' || opToken.text === 'ILIKE' || opToken.text === 'IN'))
      op = opToken.text;
    else if (
      opToken?.kind === 'word' &&
      opToken.text === 'NOT' &&
      peek()?.kind === 'word' &&
      (peek() as { text: string }).text === 'IN'
    ) {
      i++;
      op = 'NOT IN';
    } else if (opToken?.kind === 'word' && opToken.text === 'IS') {
      const not = peek()?.kind === 'word' && (peek() as { text: string }).text === 'NOT';
      if (not) i++;
      const nullWord = tokens[i++];
      if (nullWord?.kind !== 'word' || nullWord.text !== 'NULL') fail('expected NULL after IS');
      op = not ? 'IS NOT NULL' : 'IS NULL';
    } else {
      return fail(`expected a comparison operator after '${key}', found ${describe(opToken)}`);
    }
    let value: FilterComparison['value'] = null;
    if (op === 'IN' || op === 'NOT IN') {
      if (tokens[i]?.kind !== 'punct' || (tokens[i] as { text: string }).text !== '(') fail(`expected '(' after ${op}`);
      i++;
      const items: string[] = [];
      for (;;) {
        const item = tokens[i++];
        if (item?.kind !== 'string') fail('IN lists hold quoted strings');
        items.push((item as { text: string }).text);
        const sep = tokens[i++];
        if (sep?.kind === 'punct' && sep.text === ')') break;
        if (sep?.kind !== 'punct' || sep.text !== ',') fail(`expected ',' or ')' in IN list`);
      }
      value = items;
    } else if (op !== 'IS NULL' && op !== 'IS NOT NULL') {
      const right = tokens[i++];
      if (right?.kind === 'string') value = right.text;
      else if (right?.kind === 'number') value = right.value;
      else fail(`expected a value after '${key} ${op}', found ${describe(right)}`);
    }
    comparisons.push({ entity, key, op, value });
    const joiner = tokens[i];
    if (joiner === undefined) break;
    if (joiner.kind === 'word' && joiner.text === 'AND') {
      i++;
      if (i >= tokens.length) fail('AND at the end');
      continue;
    }
    if (joiner.kind === 'word' && joiner.text === 'OR') fail('OR is not supported; only AND joins comparisons');
    fail(`expected AND, found ${describe(joiner)}`);
  }
  return comparisons;
}

function describe(token: Token | undefined): string {
  if (!token) return 'the end of the filter';
  switch (token.kind) {
    case 'number':
      return String(token.value);
    case 'ident':
      return token.quotedKey ?? token.text;
    default:
      return `'${token.text}'`;
  }
}

export interface OrderClause {
  entity: FilterEntity;
  key: string;
  descending: boolean;
}

/** `metrics.acc DESC`, `attributes.start_time`, `name ASC`: MLflow's order_by items. */
export function parseOrderBy(items: readonly string[] | undefined): OrderClause[] {
  return (items ?? []).map((item) => {
    const match = /^(.*?)(?:\s+(ASC|DESC))?\s*$/i.exec(item.trim());
    const subject = match?.[1]?.trim() ?? '';
    if (!subject) throw invalidParameter(`Invalid order_by clause '${item}'`);
    const tokens = tokenize(subject);
    const only = tokens[0];
    if (tokens.length !== 1 || only?.kind !== 'ident') throw invalidParameter(`Invalid order_by clause '${item}'`);
    const { entity, key } = splitIdentifier(only);
    return { entity, key, descending: match?.[2]?.toUpperCase() === 'DESC' };
  });
}
