import type { GbnfJsonSchema } from 'node-llama-cpp';
import { UnsupportedValueError } from './runtime.ts';

/**
 * JSON Schema, as OpenAI's `response_format.json_schema.schema` carries it, turned into the
 * subset node-llama-cpp's JSON-schema grammars enforce. That converter reads only the keywords
 * it knows and drops the rest without a word (an `anyOf` becomes `null`, a `pattern` is not
 * checked), so every keyword is checked here: what the grammar cannot enforce is refused,
 * naming where it is, rather than answered with JSON the schema would reject.
 */

type Schema = Record<string, unknown>;

/** Keywords that describe but do not constrain (JSON Schema 2020-12, meta-data and core vocabularies). */
const ANNOTATIONS = new Set([
  'title',
  'description',
  '$schema',
  '$id',
  '$comment',
  'default',
  'examples',
  'deprecated',
  'readOnly',
  'writeOnly',
]);
const BASIC_TYPES = new Set(['string', 'number', 'integer', 'boolean', 'null']);
const TYPE_KEYWORDS: Record<string, readonly string[]> = {
  object: ['properties', 'required', 'additionalProperties', 'minProperties', 'maxProperties'],
  array: ['items', 'prefixItems', 'minItems', 'maxItems'],
  string: ['minLength', 'maxLength', 'format'],
  integer: ['minimum', 'maximum'],
  number: [],
  boolean: [],
  null: [],
};
/** The string formats node-llama-cpp's grammar spells out; any other would go unchecked. */
const FORMATS = new Set(['date-time', 'date', 'time']);

/** Any JSON value: node-llama-cpp reads a schema without a type as `null`, so it is spelled out. */
const ANY_JSON: Schema = {
  oneOf: [
    { type: ['string', 'number', 'boolean', 'null'] },
    { type: 'array' },
    { type: 'object', additionalProperties: true },
  ],
};

export const SUPPORTED_SCHEMA_KEYWORDS =
  'type, properties, required, additionalProperties, minProperties, maxProperties, items, prefixItems, ' +
  'minItems, maxItems, minLength, maxLength, format (date-time, date, time), enum, const, anyOf, oneOf, ' +
  '$ref into the top-level $defs (or definitions), and annotations such as title and description';

/** A JSON-pointer-like path below the schema's root and what is wrong there. */
class SchemaRefusal extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${path}: ${reason}`);
  }
}

function refuse(path: string, message: string): never {
  throw new SchemaRefusal(path, message);
}

const isObject = (value: unknown): value is Schema =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const isLiteral = (value: unknown) => value === null || ['string', 'number', 'boolean'].includes(typeof value);

/** Fails on the first keyword of `schema` (annotations aside) outside `allowed`. */
function only(schema: Schema, path: string, allowed: readonly string[]): void {
  for (const key of Object.keys(schema)) {
    if (ANNOTATIONS.has(key) || allowed.includes(key)) continue;
    refuse(`${path}/${key}`, `'${key}' is not supported here`);
  }
}

function count(value: unknown, path: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) refuse(path, 'expected a whole number');
  return value;
}

function described(schema: Schema, normalized: Schema): Schema {
  return typeof schema.description === 'string' ? { ...normalized, description: schema.description } : normalized;
}

/**
 * Where a schema comes from in the request: the field named in a refusal (`response_format`,
 * `tools`) and the schema's own path under it.
 */
export interface SchemaSource {
  param: string;
  at: string;
}

const RESPONSE_FORMAT: SchemaSource = { param: 'response_format', at: 'json_schema.schema' };

export function grammarSchemaFor(schema: unknown, source: SchemaSource = RESPONSE_FORMAT): GbnfJsonSchema {
  try {
    if (!isObject(schema)) refuse('', 'expected a JSON Schema object');
    const defs = schema.$defs ?? schema.definitions;
    if (schema.$defs !== undefined && schema.definitions !== undefined) refuse('', 'use either $defs or definitions');
    if (defs !== undefined && !isObject(defs)) refuse('/$defs', 'expected an object of schemas');
    const names = new Set(Object.keys(defs ?? {}));
    const walk = (node: unknown, path: string) => normalize(node, path, names);
    const { $defs: _defs, definitions: _definitions, ...root } = schema;
    const normalized = walk(root, '');
    if (!defs) return normalized as GbnfJsonSchema;
    const defsKey = schema.$defs !== undefined ? '$defs' : 'definitions';
    const normalizedDefs = Object.fromEntries(
      Object.entries(defs).map(([name, def]) => [name, walk(def, `/${defsKey}/${name}`)]),
    );
    return { ...normalized, $defs: normalizedDefs } as GbnfJsonSchema;
  } catch (error) {
    if (!(error instanceof SchemaRefusal)) throw error;
    throw new UnsupportedValueError(
      source.param,
      `${source.param}: ${source.at}${error.path}: ${error.reason}; this server constrains output with a grammar that supports ${SUPPORTED_SCHEMA_KEYWORDS}`,
    );
  }
}

/** node-llama-cpp's number rules as it writes them: any exponent, even on an integer. */
const EXPONENT = ' ([eE] [-+]? ("0" | [1-9] [0-9]{0,15}))?';

/**
 * The GBNF node-llama-cpp writes for a schema, with numbers a JSON parser reads back as what
 * the schema asked for: an integer without exponent (`5e-3` is no integer), a number with at
 * most a two-digit exponent (`1e999` parses as Infinity).
 */
export function finiteNumbers(gbnf: string): string {
  return gbnf
    .split('\n')
    .map((rule) => {
      if (rule.startsWith('integer-number-rule ::= ')) return rule.replace(EXPONENT, '');
      if (rule.startsWith('fractional-number-rule ::= ')) return rule.replace(EXPONENT, ' ([eE] [-+]? [0-9]{1,2})?');
      return rule;
    })
    .join('\n');
}

const KNOWN_KEYWORDS = new Set([
  'type',
  '$ref',
  'anyOf',
  'oneOf',
  'const',
  'enum',
  '$defs',
  'definitions',
  ...Object.values(TYPE_KEYWORDS).flat(),
]);

function normalize(node: unknown, path: string, defNames: ReadonlySet<string>): Schema {
  const walk = (child: unknown, at: string) => normalize(child, at, defNames);
  if (node === true) return ANY_JSON;
  if (!isObject(node)) refuse(path, 'expected a schema object');
  if (Object.keys(node).every((key) => ANNOTATIONS.has(key))) return described(node, ANY_JSON);
  for (const key of Object.keys(node)) {
    if (!ANNOTATIONS.has(key) && !KNOWN_KEYWORDS.has(key)) refuse(`${path}/${key}`, `'${key}' is not supported`);
  }

  if (node.$defs !== undefined || node.definitions !== undefined)
    refuse(path, 'only the top-level schema may hold $defs');
  if (node.$ref !== undefined) {
    only(node, path, ['$ref']);
    const match = typeof node.$ref === 'string' ? /^#\/(?:\$defs|definitions)\/([^/]+)$/.exec(node.$ref) : null;
    const name = match?.[1];
    if (name === undefined || !defNames.has(name)) {
      refuse(`${path}/$ref`, `'${String(node.$ref)}' does not name an entry of the top-level $defs`);
    }
    return described(node, { $ref: `#/$defs/${name}` });
  }
  for (const combinator of ['anyOf', 'oneOf'] as const) {
    if (node[combinator] === undefined) continue;
    // The grammar picks one alternative: a value of any of them satisfies `anyOf`, and `oneOf`
    // as far as the alternatives do not overlap.
    only(node, path, [combinator]);
    const alternatives = node[combinator];
    if (!Array.isArray(alternatives) || alternatives.length === 0) refuse(`${path}/${combinator}`, 'expected schemas');
    return described(node, {
      oneOf: alternatives.map((alternative, i) => walk(alternative, `${path}/${combinator}/${i}`)),
    });
  }
  if (node.const !== undefined) {
    only(node, path, ['const', 'type']);
    if (!isLiteral(node.const)) refuse(`${path}/const`, 'only a string, number, boolean or null');
    return described(node, { const: node.const });
  }
  if (node.enum !== undefined) {
    only(node, path, ['enum', 'type']);
    if (!Array.isArray(node.enum) || node.enum.length === 0 || !node.enum.every(isLiteral)) {
      refuse(`${path}/enum`, 'only strings, numbers, booleans and null');
    }
    return described(node, { enum: node.enum });
  }

  const types = typeof node.type === 'string' ? [node.type] : node.type;
  if (!Array.isArray(types) || types.length === 0) refuse(`${path}/type`, 'a type is needed (or enum, const, anyOf)');
  for (const [i, type] of types.entries()) {
    if (typeof type !== 'string' || !(type in TYPE_KEYWORDS)) refuse(`${path}/type/${i}`, `unknown type '${type}'`);
  }
  only(node, path, ['type', ...types.flatMap((type) => TYPE_KEYWORDS[type as string] ?? [])]);
  const constrained = (type: string) => (TYPE_KEYWORDS[type] ?? []).some((key) => node[key] !== undefined);
  if (types.length > 1) {
    // node-llama-cpp reads a list of types as basic values only: one alternative per type.
    if (types.every((type) => BASIC_TYPES.has(type) && !constrained(type))) return described(node, { type: types });
    return described(node, {
      oneOf: types.map((type) => {
        const keys = ['type', ...(TYPE_KEYWORDS[type] ?? [])];
        return walk(Object.fromEntries(Object.entries({ ...node, type }).filter(([key]) => keys.includes(key))), path);
      }),
    });
  }
  const type = types[0] as string;
  if (type === 'object') return described(node, objectSchema(node, path, walk));
  if (type === 'array') return described(node, arraySchema(node, path, walk));
  if (type === 'string') return described(node, stringSchema(node, path));
  if (type === 'integer') {
    // zod writes every integer with the bounds of a JavaScript safe integer: no constraint the
    // grammar needs to enforce. Any other bound is.
    if (node.minimum !== undefined && node.minimum !== Number.MIN_SAFE_INTEGER)
      refuse(`${path}/minimum`, 'numeric bounds are not supported');
    if (node.maximum !== undefined && node.maximum !== Number.MAX_SAFE_INTEGER)
      refuse(`${path}/maximum`, 'numeric bounds are not supported');
  }
  return described(node, { type });
}

function objectSchema(node: Schema, path: string, walk: (child: unknown, at: string) => Schema): Schema {
  const properties = node.properties ?? {};
  if (!isObject(properties)) refuse(`${path}/properties`, 'expected an object of schemas');
  const required = node.required ?? [];
  if (!Array.isArray(required) || !required.every((name) => typeof name === 'string')) {
    refuse(`${path}/required`, 'expected a list of property names');
  }
  // The grammar writes every listed property, required or not, and no other unless
  // additionalProperties allows it: a required name missing from the list could never appear.
  for (const name of required) {
    if (!(name in properties) && (node.additionalProperties === undefined || node.additionalProperties === false)) {
      refuse(`${path}/required`, `'${name}' is required but not among the properties`);
    }
  }
  const additional = node.additionalProperties;
  return {
    type: 'object',
    properties: Object.fromEntries(
      Object.entries(properties).map(([name, property]) => [name, walk(property, `${path}/properties/${name}`)]),
    ),
    ...(additional === undefined || typeof additional === 'boolean'
      ? additional === true
        ? { additionalProperties: true }
        : {}
      : { additionalProperties: walk(additional, `${path}/additionalProperties`) }),
    ...(node.minProperties !== undefined ? { minProperties: count(node.minProperties, `${path}/minProperties`) } : {}),
    ...(node.maxProperties !== undefined ? { maxProperties: count(node.maxProperties, `${path}/maxProperties`) } : {}),
  };
}

function arraySchema(node: Schema, path: string, walk: (child: unknown, at: string) => Schema): Schema {
  // Draft 7 wrote a tuple as an `items` list; 2020-12 as `prefixItems`, `items: false` closing it.
  const tuple = Array.isArray(node.items) ? node.items : node.prefixItems;
  if (tuple !== undefined && !Array.isArray(tuple)) refuse(`${path}/prefixItems`, 'expected a list of schemas');
  const items = Array.isArray(node.items) ? undefined : node.items;
  const closed = items === false;
  let maxItems = node.maxItems !== undefined ? count(node.maxItems, `${path}/maxItems`) : undefined;
  if (closed) {
    if (!tuple) refuse(`${path}/items`, 'items: false needs prefixItems');
    maxItems = Math.min(maxItems ?? tuple.length, tuple.length);
  }
  return {
    type: 'array',
    ...(tuple ? { prefixItems: tuple.map((item, i) => walk(item, `${path}/prefixItems/${i}`)) } : {}),
    ...(items !== undefined && !closed ? { items: walk(items, `${path}/items`) } : {}),
    ...(node.minItems !== undefined ? { minItems: count(node.minItems, `${path}/minItems`) } : {}),
    ...(maxItems !== undefined ? { maxItems } : {}),
  };
}

function stringSchema(node: Schema, path: string): Schema {
  if (node.format !== undefined) {
    if (typeof node.format !== 'string' || !FORMATS.has(node.format)) {
      refuse(`${path}/format`, `format '${String(node.format)}' is not supported (only date-time, date, time)`);
    }
    if (node.minLength !== undefined || node.maxLength !== undefined) {
      refuse(path, 'a format cannot be combined with minLength or maxLength');
    }
    return { type: 'string', format: node.format };
  }
  return {
    type: 'string',
    ...(node.minLength !== undefined ? { minLength: count(node.minLength, `${path}/minLength`) } : {}),
    ...(node.maxLength !== undefined ? { maxLength: count(node.maxLength, `${path}/maxLength`) } : {}),
  };
}
