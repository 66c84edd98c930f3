import { randomBytes } from 'node:crypto';
import type { ToolCall } from './runtime.ts';

/**
 * How a chat template writes one function call, as node-llama-cpp reads it off the template by
 * rendering probe conversations (Qwen 2.5: `<tool_call>\n{"name": "` name `", "arguments": `
 * arguments `}\n</tool_call>`).
 */
export interface CallSyntax {
  prefix: string;
  paramsPrefix: string;
  suffix: string;
  /** What separates calls in one answer; undefined: the template writes one call per answer. */
  betweenCalls: string | undefined;
}

/** A tool with the GBNF node-llama-cpp wrote for its arguments' JSON Schema (root rule `root`). */
export interface ToolGrammar {
  name: string;
  gbnf: string;
}

/**
 * The text that starts a call, which `auto` watches for: the prefix up to its first whitespace
 * (`<tool_call>`), so that the grammar takes over before the model can stray from the syntax.
 */
export function callTrigger(syntax: CallSyntax): string {
  return syntax.prefix.trimStart().split(/\s/)[0] || syntax.prefix;
}

/** A GBNF string literal. */
function literal(text: string): string {
  let escaped = '';
  for (const char of text) {
    if (char === '"' || char === '\\') escaped += `\\${char}`;
    else if (char === '\n') escaped += '\\n';
    else if (char === '\r') escaped += '\\r';
    else if (char === '\t') escaped += '\\t';
    else if (char < ' ') escaped += `\\x${char.charCodeAt(0).toString(16).padStart(2, '0')}`;
    else escaped += char;
  }
  return `"${escaped}"`;
}

/** node-llama-cpp ends a JSON grammar with newlines it stops on; a call goes on to its suffix instead. */
const JSON_GRAMMAR_TAIL = ' "\\n\\n\\n\\n" [\\n]*';

/**
 * `gbnf` with every rule name prefixed, so that several tools' grammars live in one: names are
 * rewritten outside string literals and character classes only.
 */
function renameRules(gbnf: string, prefix: string): string {
  const names = new Set<string>();
  for (const line of gbnf.split('\n')) {
    const name = /^([a-zA-Z0-9-]+) ::= /.exec(line)?.[1];
    if (name) names.add(name);
  }
  let out = '';
  let i = 0;
  while (i < gbnf.length) {
    const char = gbnf[i] as string;
    if (char === '"' || char === '[') {
      const close = char === '"' ? '"' : ']';
      let end = i + 1;
      while (end < gbnf.length && gbnf[end] !== close) end += gbnf[end] === '\\' ? 2 : 1;
      out += gbnf.slice(i, end + 1);
      i = end + 1;
      continue;
    }
    const word = /^[a-zA-Z0-9-]+/.exec(gbnf.slice(i))?.[0];
    if (word) {
      out += names.has(word) ? `${prefix}${word}` : word;
      i += word.length;
      continue;
    }
    out += char;
    i += 1;
  }
  return out;
}

/**
 * One grammar for the calls an answer may make: the template's call syntax around each tool's
 * name and its arguments' JSON-schema grammar, then, with `parallel`, more calls after the
 * template's separator. Its root is `root`.
 */
export function toolCallGrammar(tools: ToolGrammar[], syntax: CallSyntax, parallel: boolean): string {
  const rules: string[] = [];
  const alternatives = tools.map((tool, i) => {
    const prefix = `tool${i}-`;
    const renamed = renameRules(tool.gbnf, prefix)
      .split('\n')
      .map((line) =>
        line.startsWith(`${prefix}root ::= `) && line.endsWith(JSON_GRAMMAR_TAIL)
          ? line.slice(0, -JSON_GRAMMAR_TAIL.length)
          : line,
      );
    rules.push(...renamed.filter((line) => line.trim()));
    return `${literal(tool.name + syntax.paramsPrefix)} ${prefix}root`;
  });
  const call = `call ::= ${literal(syntax.prefix)} ( ${alternatives.join(' | ')} ) ${syntax.suffix ? literal(syntax.suffix) : ''}`;
  const root =
    parallel && syntax.betweenCalls !== undefined
      ? `root ::= call ( ${literal(syntax.betweenCalls)} call )*`
      : 'root ::= call';
  return [root, call.trimEnd(), ...rules].join('\n');
}

/** Where the JSON value at `from` ends (an object or array, as argument grammars write them), or -1. */
function jsonEnd(text: string, from: number): number {
  let depth = 0;
  let inString = false;
  for (let i = from; i < text.length; i++) {
    const char = text[i];
    if (inString) {
      if (char === '\\') i += 1;
      else if (char === '"') inString = false;
      continue;
    }
    if (char === '"') inString = true;
    else if (char === '{' || char === '[') depth += 1;
    else if (char === '}' || char === ']') {
      depth -= 1;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}

/** An OpenAI-style call id. */
export function newCallId(): string {
  return `call_${randomBytes(12).toString('hex')}`;
}

/**
 * Splits an answer into its text and the calls after it, written in `syntax`. Undefined when
 * no complete call is there (the answer was cut short inside its first call, or made none).
 */
export function parseToolCalls(
  text: string,
  syntax: CallSyntax,
  names: readonly string[],
): { content: string; calls: ToolCall[] } | undefined {
  const start = text.indexOf(callTrigger(syntax));
  if (start < 0) return undefined;
  const calls: ToolCall[] = [];
  // Longest first: a tool named `get` must not claim `get_weather`'s calls.
  const byLength = [...names].sort((a, b) => b.length - a.length);
  let at = text.indexOf(syntax.prefix, start) === start ? start : -1;
  while (at >= 0 && text.startsWith(syntax.prefix, at)) {
    const nameAt = at + syntax.prefix.length;
    const name = byLength.find((candidate) => text.startsWith(candidate + syntax.paramsPrefix, nameAt));
    if (name === undefined) break;
    const argsAt = nameAt + name.length + syntax.paramsPrefix.length;
    const end = jsonEnd(text, argsAt);
    if (end < 0 || !text.startsWith(syntax.suffix, end)) break;
    let args: unknown;
    try {
      args = JSON.parse(text.slice(argsAt, end));
    } catch {
      break;
    }
    calls.push({ id: newCallId(), name, arguments: JSON.stringify(args) });
    at = end + syntax.suffix.length;
    if (syntax.betweenCalls === undefined || !text.startsWith(syntax.betweenCalls + syntax.prefix, at)) break;
    at += syntax.betweenCalls.length;
  }
  if (calls.length === 0) return undefined;
  return { content: text.slice(0, start).trimEnd(), calls };
}
