import { expect, test } from 'vitest';
import { type CallSyntax, callTrigger, parseToolCalls, toolCallGrammar } from '../../src/llm/tool-calls.ts';

const qwen: CallSyntax = {
  prefix: '<tool_call>\n{"name": "',
  paramsPrefix: '", "arguments": ',
  suffix: '}\n</tool_call>',
  betweenCalls: '\n',
};

test('a call starts at the prefix up to its first whitespace', () => {
  expect(callTrigger(qwen)).toBe('<tool_call>');
  expect(callTrigger({ ...qwen, prefix: '{"name": "' })).toBe('{"name":');
});

test("each tool's rules are renamed apart, string literals and character classes untouched", () => {
  const gbnf = [
    'root ::= "{" ws "\\"root\\"" ":" [ ]? string "}" "\\n\\n\\n\\n" [\\n]*',
    'string ::= "\\"" [^"\\\\ws] "\\""',
    'ws ::= [ ]?',
  ].join('\n');
  const grammar = toolCallGrammar(
    [
      { name: 'a', gbnf },
      { name: 'b', gbnf },
    ],
    qwen,
    true,
  );
  const lines = grammar.split('\n');
  expect(lines[0]).toBe('root ::= call ( "\\n" call )*');
  expect(lines[1]).toBe(
    'call ::= "<tool_call>\\n{\\"name\\": \\"" ( "a\\", \\"arguments\\": " tool0-root | "b\\", \\"arguments\\": " tool1-root ) "}\\n</tool_call>"',
  );
  // The JSON grammar's closing newlines are gone: the call's suffix follows the arguments.
  expect(lines).toContain('tool0-root ::= "{" tool0-ws "\\"root\\"" ":" [ ]? tool0-string "}"');
  expect(lines).toContain('tool1-string ::= "\\"" [^"\\\\ws] "\\""');
  expect(lines).toContain('tool1-ws ::= [ ]?');
  expect(toolCallGrammar([{ name: 'a', gbnf }], qwen, false).split('\n')[0]).toBe('root ::= call');
});

test('calls are read back with the text before them; a cut-short call is no call', () => {
  const text =
    'Let me look.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris {x}", "n": [1, {"k": "}"}]}}\n</tool_call>\n' +
    '<tool_call>\n{"name": "get", "arguments": {}}\n</tool_call>';
  const parsed = parseToolCalls(text, qwen, ['get', 'get_weather']);
  expect(parsed?.content).toBe('Let me look.');
  expect(parsed?.calls.map((call) => [call.name, JSON.parse(call.arguments)])).toEqual([
    ['get_weather', { city: 'Paris {x}', n: [1, { k: '}' }] }],
    ['get', {}],
  ]);
  expect(new Set(parsed?.calls.map((call) => call.id)).size).toBe(2);
  expect(parsed?.calls[1]?.arguments).toBe('{}');

  expect(parseToolCalls('<tool_call>\n{"name": "get", "arguments": {"a": 1', qwen, ['get'])).toBeUndefined();
  expect(parseToolCalls('no call here', qwen, ['get'])).toBeUndefined();
  // One call per answer where the template has no separator.
  const single = parseToolCalls(text, { ...qwen, betweenCalls: undefined }, ['get', 'get_weather']);
  expect(single?.calls).toHaveLength(1);
});
