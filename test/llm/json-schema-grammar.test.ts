import type { GbnfJsonSchema } from 'node-llama-cpp';
import { expect, test } from 'vitest';
import { finiteNumbers, grammarSchemaFor } from '../../src/llm/json-schema-grammar.ts';
import { UnsupportedValueError } from '../../src/llm/runtime.ts';

function refusal(schema: unknown): UnsupportedValueError {
  try {
    grammarSchemaFor(schema);
  } catch (error) {
    expect(error).toBeInstanceOf(UnsupportedValueError);
    return error as UnsupportedValueError;
  }
  throw new Error('the schema was accepted');
}

test('keywords node-llama-cpp would misread are rewritten into the forms it enforces', () => {
  expect(
    grammarSchemaFor({
      $schema: 'http://json-schema.org/draft-07/schema#',
      title: 'person',
      type: 'object',
      properties: {
        nickname: { anyOf: [{ type: 'string', maxLength: 4 }, { type: 'null' }] },
        friend: { $ref: '#/definitions/friend' },
        pair: { type: 'array', items: [{ type: 'integer' }, { type: 'boolean' }] },
        anything: {},
      },
      required: ['nickname'],
      definitions: { friend: { type: ['object', 'null'], properties: { name: { type: 'string' } } } },
    }),
  ).toEqual({
    type: 'object',
    properties: {
      nickname: { oneOf: [{ type: 'string', maxLength: 4 }, { type: 'null' }] },
      friend: { $ref: '#/$defs/friend' },
      pair: { type: 'array', prefixItems: [{ type: 'integer' }, { type: 'boolean' }] },
      anything: {
        oneOf: [
          { type: ['string', 'number', 'boolean', 'null'] },
          { type: 'array' },
          { type: 'object', additionalProperties: true },
        ],
      },
    },
    $defs: {
      friend: { oneOf: [{ type: 'object', properties: { name: { type: 'string' } } }, { type: 'null' }] },
    },
  });
});

test("zod's integer bounds are no constraint; any other bound, pattern or format is refused where it is", () => {
  expect(
    grammarSchemaFor({ type: 'integer', minimum: Number.MIN_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER }),
  ).toEqual({ type: 'integer' });
  const cases: Array<[unknown, string]> = [
    [{ type: 'integer', maximum: 10 }, 'json_schema.schema/maximum'],
    [{ type: 'number', minimum: 0 }, 'json_schema.schema/minimum'],
    [{ type: 'object', properties: { id: { type: 'string', pattern: 'a+' } } }, '/properties/id/pattern'],
    [{ type: 'string', format: 'uuid' }, '/format'],
    [{ type: 'array', items: { type: 'string' }, uniqueItems: true }, '/uniqueItems'],
    [{ not: { type: 'null' } }, '/not'],
    [{ type: 'object', properties: { a: { $ref: '#/$defs/missing' } } }, '/properties/a/$ref'],
    [{ type: 'object', properties: {}, required: ['a'] }, '/required'],
  ];
  for (const [schema, where] of cases) {
    const error = refusal(schema);
    expect(error.status).toBe(400);
    expect(error.details).toEqual({ param: 'response_format' });
    expect(error.message).toContain(where);
  }
});

test('numbers in the grammar node-llama-cpp writes parse back finite, integers without an exponent', async () => {
  const { getLlama } = await import('node-llama-cpp');
  const llama = await getLlama({ build: 'never', gpu: false, maxThreads: 1 });
  const schema = grammarSchemaFor({ type: 'object', properties: { a: { type: 'integer' }, b: { type: 'number' } } });
  const written = (await llama.createGrammarForJsonSchema<GbnfJsonSchema>(schema)).grammar;
  const rule = (gbnf: string, name: string) => gbnf.split('\n').find((line) => line.startsWith(`${name} ::= `));
  // What it writes on its own: any exponent, even on an integer.
  expect(rule(written, 'integer-number-rule')).toContain('[eE]');
  const edited = finiteNumbers(written);
  expect(rule(edited, 'integer-number-rule')).toBe('integer-number-rule ::= "-"? ("0" | [1-9] [0-9]{0,15})');
  expect(rule(edited, 'fractional-number-rule')).toMatch(/\(\[eE\] \[-\+\]\? \[0-9\]\{1,2\}\)\?$/);
  // The edited grammar still compiles.
  await llama.createGrammar({ grammar: edited });
});
