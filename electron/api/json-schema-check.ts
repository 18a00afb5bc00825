// A checker of JSON values against the JSON Schemas zod generates from the contract (json-schemas.ts), for
// the renderer, which does not ship zod (it would multiply the bundle by five). It knows exactly the
// keywords those schemas use; `assertCheckable` refuses any other, at build time, so a schema feature this
// file cannot check fails the build instead of passing unchecked.
//
// It decodes as zod does: unknown members of an object are dropped (a newer core may add fields) unless
// the schema is strict (additionalProperties: false), string lengths count UTF-16 units, numbers must be
// finite, and the first branch of a union that fits wins. Refinements (zod's .refine) have no JSON Schema
// form and are not checked here; the core checked them when the data reached it.
//
// No zod here and no Node: the renderer bundles this file as it is.

type JsonPrimitive = string | number | boolean | null;
type JsonType = 'object' | 'array' | 'string' | 'number' | 'integer' | 'boolean' | 'null';

/** The subset of JSON Schema (draft 2020-12) that zod's toJSONSchema emits for the contract. */
export interface JsonSchema {
  $schema?: string;
  $id?: string;
  /** Another schema of the same set, by name: a body used inside others is written once. */
  $ref?: string;
  /** One type, or several (zod writes a nullable number as ["number", "null"]). */
  type?: JsonType | JsonType[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: false;
  items?: JsonSchema;
  minItems?: number;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  const?: JsonPrimitive;
  enum?: JsonPrimitive[];
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
}

const KEYWORDS: ReadonlySet<string> = new Set<keyof JsonSchema>([
  '$schema',
  '$id',
  '$ref',
  'type',
  'properties',
  'required',
  'additionalProperties',
  'items',
  'minItems',
  'maxItems',
  'minLength',
  'maxLength',
  'pattern',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'const',
  'enum',
  'anyOf',
  'oneOf',
]);

/** A set of schemas by name; `$ref` names another member of the set. */
export type JsonSchemas = Readonly<Record<string, JsonSchema>>;

/** Throws naming the first keyword (or value of one) this checker does not implement, or a `$ref` to a
 * schema outside the set. */
export function assertCheckable(schemas: Readonly<Record<string, unknown>>): asserts schemas is JsonSchemas {
  for (const [name, schema] of Object.entries(schemas)) assertSchema(schema, name, schemas);
}

function assertSchema(schema: unknown, where: string, set: Readonly<Record<string, unknown>>): void {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema))
    throw new TypeError(`JSON Schema at ${where}: expected an object`);
  const s = schema as Record<string, unknown>;
  for (const key of Object.keys(s)) {
    if (!KEYWORDS.has(key))
      throw new TypeError(
        `JSON Schema at ${where}: the keyword "${key}" is not implemented by json-schema-check.ts`,
      );
  }
  if (s.$ref !== undefined && !Object.hasOwn(set, s.$ref as string))
    throw new TypeError(`JSON Schema at ${where}: $ref ${JSON.stringify(s.$ref)} names no schema of the set`);
  for (const type of s.type === undefined ? [] : Array.isArray(s.type) ? (s.type as unknown[]) : [s.type])
    if (!Object.hasOwn(TYPE_WORDS, type as string))
      throw new TypeError(`JSON Schema at ${where}: the type ${JSON.stringify(type)} is not implemented`);
  if (s.additionalProperties !== undefined && s.additionalProperties !== false)
    throw new TypeError(`JSON Schema at ${where}: additionalProperties other than false is not implemented`);
  for (const [key, member] of Object.entries((s.properties ?? {}) as Record<string, unknown>))
    assertSchema(member, `${where}.${key}`, set);
  if (s.items !== undefined) assertSchema(s.items, `${where}[]`, set);
  for (const branches of [s.anyOf, s.oneOf])
    if (branches !== undefined)
      (branches as unknown[]).forEach((b, i) => assertSchema(b, `${where}|${i}`, set));
}

/** The decoded value (unknown object members dropped), or why it does not fit, e.g.
 * `devices[0].stats.fps: expected a number >= 0, got "x"`. */
export type Checked<T> = { ok: true; value: T } | { ok: false; reason: string };

/** Checks `value` against the schema `name` of the set; T is the type that schema was generated from (the
 * caller's word). */
export function checkJson<T>(schemas: JsonSchemas, name: string, value: unknown): Checked<T> {
  const result = check(schemas[name]!, value, '', schemas);
  return result.ok ? { ok: true, value: result.value as T } : result;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value === 'object') return 'an object';
  return typeof value;
}

function fail(path: string, expected: string, value: unknown): Checked<never> {
  return { ok: false, reason: `${path || '(root)'}: expected ${expected}, got ${describe(value)}` };
}

const patterns = new Map<string, RegExp>();
function compiled(pattern: string): RegExp {
  let re = patterns.get(pattern);
  if (re === undefined) patterns.set(pattern, (re = new RegExp(pattern)));
  return re;
}

function typeMatches(type: JsonSchema['type'], value: unknown): boolean {
  if (Array.isArray(type)) return type.some((one) => typeMatches(one, value));
  switch (type) {
    case undefined:
      return true;
    case 'null':
      return value === null;
    case 'boolean':
      return typeof value === 'boolean';
    case 'string':
      return typeof value === 'string';
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'integer':
      return Number.isInteger(value);
    case 'array':
      return Array.isArray(value);
    case 'object':
      return typeof value === 'object' && value !== null && !Array.isArray(value);
  }
}

const TYPE_WORDS: Record<JsonType, string> = {
  null: 'null',
  boolean: 'a boolean',
  string: 'a string',
  number: 'a number',
  integer: 'an integer',
  array: 'an array',
  object: 'an object',
};

function typeWords(type: JsonSchema['type']): string {
  if (type === undefined) return 'a value';
  return (Array.isArray(type) ? type : [type]).map((one) => TYPE_WORDS[one]).join(' or ');
}

function check(schema: JsonSchema, value: unknown, path: string, set: JsonSchemas): Checked<unknown> {
  if (schema.$ref !== undefined) return check(set[schema.$ref]!, value, path, set);
  const union = schema.anyOf ?? schema.oneOf;
  if (union !== undefined) return checkUnion(union, value, path, set);
  if (!typeMatches(schema.type, value)) return fail(path, typeWords(schema.type), value);
  if (schema.const !== undefined && value !== schema.const)
    return fail(path, JSON.stringify(schema.const), value);
  if (schema.enum !== undefined && !schema.enum.includes(value as JsonPrimitive))
    return fail(path, `one of ${schema.enum.join(', ')}`, value);
  if (typeof value === 'string') return checkString(schema, value, path);
  if (typeof value === 'number') return checkNumber(schema, value, path);
  if (Array.isArray(value)) return checkArray(schema, value, path, set);
  if (typeof value === 'object' && value !== null) return checkObject(schema, value, path, set);
  return { ok: true, value };
}

function checkString(schema: JsonSchema, value: string, path: string): Checked<unknown> {
  const { minLength, maxLength, pattern } = schema;
  if (maxLength !== undefined && value.length > maxLength)
    return fail(path, `a string of at most ${maxLength} characters`, value);
  if (minLength !== undefined && value.length < minLength)
    return fail(path, `a string of at least ${minLength} characters`, value);
  if (pattern !== undefined && !compiled(pattern).test(value))
    return fail(path, `a string matching ${pattern}`, value);
  return { ok: true, value };
}

function checkNumber(schema: JsonSchema, value: number, path: string): Checked<unknown> {
  const { minimum, maximum, exclusiveMinimum, exclusiveMaximum } = schema;
  if (minimum !== undefined && value < minimum) return fail(path, `a number >= ${minimum}`, value);
  if (maximum !== undefined && value > maximum) return fail(path, `a number <= ${maximum}`, value);
  if (exclusiveMinimum !== undefined && value <= exclusiveMinimum)
    return fail(path, `a number > ${exclusiveMinimum}`, value);
  if (exclusiveMaximum !== undefined && value >= exclusiveMaximum)
    return fail(path, `a number < ${exclusiveMaximum}`, value);
  return { ok: true, value };
}

function checkArray(schema: JsonSchema, value: unknown[], path: string, set: JsonSchemas): Checked<unknown> {
  const { minItems, maxItems, items } = schema;
  if (maxItems !== undefined && value.length > maxItems)
    return fail(path, `an array of at most ${maxItems} items`, value);
  if (minItems !== undefined && value.length < minItems)
    return fail(path, `an array of at least ${minItems} items`, value);
  if (items === undefined) return { ok: true, value: [...value] };
  const out: unknown[] = [];
  for (let i = 0; i < value.length; i++) {
    const member = check(items, value[i], `${path}[${i}]`, set);
    if (!member.ok) return member;
    out.push(member.value);
  }
  return { ok: true, value: out };
}

function checkObject(schema: JsonSchema, value: object, path: string, set: JsonSchemas): Checked<unknown> {
  const source = value as Record<string, unknown>;
  const properties = schema.properties ?? {};
  const required = new Set(schema.required ?? []);
  const out: Record<string, unknown> = {};
  for (const [key, member] of Object.entries(properties)) {
    const memberPath = path ? `${path}.${key}` : key;
    const present = Object.hasOwn(source, key) && source[key] !== undefined;
    if (!present) {
      if (required.has(key)) return fail(memberPath, 'a value', undefined);
      continue;
    }
    const checked = check(member, source[key], memberPath, set);
    if (!checked.ok) return checked;
    out[key] = checked.value;
  }
  if (schema.additionalProperties === false) {
    const extra = Object.keys(source).find((key) => !Object.hasOwn(properties, key));
    if (extra !== undefined)
      return { ok: false, reason: `${path || '(root)'}: unexpected member "${extra}"` };
  }
  return { ok: true, value: out };
}

/** The first branch that fits wins. When none does, the reason is the one of the branch the value was
 * meant for: the only branch of its type, or the one whose `const` member (a tag such as `type`) it
 * carries. */
function checkUnion(
  branches: JsonSchema[],
  value: unknown,
  path: string,
  set: JsonSchemas,
): Checked<unknown> {
  const failures: { branch: JsonSchema; reason: string }[] = [];
  for (const branch of branches) {
    const result = check(branch, value, path, set);
    if (result.ok) return result;
    failures.push({ branch, reason: result.reason });
  }
  const ofType = failures.filter(({ branch }) => typeMatches(branch.type, value));
  if (ofType.length === 1) return { ok: false, reason: ofType[0]!.reason };
  const tagged = ofType.find(({ branch }) =>
    Object.entries(branch.properties ?? {}).some(
      ([key, member]) =>
        member.const !== undefined && (value as Record<string, unknown>)[key] === member.const,
    ),
  );
  if (tagged !== undefined) return { ok: false, reason: tagged.reason };
  // A tag every branch carries, with a value none of them has: say which values it may take.
  const tag = Object.keys(branches[0]?.properties ?? {}).find((key) =>
    branches.every((b) => b.properties?.[key]?.const !== undefined),
  );
  if (tag !== undefined && ofType.length === branches.length)
    return fail(
      path ? `${path}.${tag}` : tag,
      `one of ${branches.map((b) => String(b.properties![tag]!.const)).join(', ')}`,
      (value as Record<string, unknown>)[tag],
    );
  const kinds = branches.map((b) => (b.const !== undefined ? JSON.stringify(b.const) : typeWords(b.type)));
  return fail(path, `one of: ${[...new Set(kinds)].join(', ')}`, value);
}
