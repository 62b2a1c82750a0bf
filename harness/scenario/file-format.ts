// The scenario file format for tools outside switchover: the JSON Schema of a scenario file
// (`switchover schema`, so an editor checks a file as it is typed) and the defaults a file may
// leave out (`switchover show`). Both are derived from SCENARIO_SCHEMA and from what
// defineScenario fills in, never written out by hand, so a field added there appears here.
//
// A JSON Schema cannot say everything the validator checks: the rules across fields
// (netpass needs return-path, migrateAfterMs below durationMs, ...) are switchover's alone, so
// a file the schema accepts can still be refused by `switchover run`, never the other way round.
import { defineScenario, SCENARIO_SCHEMA, type ScenarioInput } from './scenario.js';
import { describeExpected, isPlainObject, type Schema, type UnionSchema } from './schema.js';

export const JSON_SCHEMA_DIALECT = 'https://json-schema.org/draft/2020-12/schema';

/**
 * What a file that states nothing gets, field by field; name and description have no default.
 * defineScenario merges its input over the defaults, so an empty input gives the defaults alone.
 */
export const FILE_DEFAULTS: unknown = defineScenario({} as ScenarioInput);

/** A path into the scenario, as the keys and indexes that reach a field. */
export type FieldPath = ReadonlyArray<string | number>;

/**
 * The fields defineScenario fills into an item `{ [tag]: variant }` of the list at `path` (a
 * ping flow gets intervalMs): found by asking it, on a file whose list holds that one item.
 */
export function variantDefaults(path: FieldPath, tag: string, variant: string): Record<string, unknown> {
  const input: Record<string, unknown> = {};
  let node = input;
  path.forEach((key, i) => {
    const next = i === path.length - 1 ? [{ [tag]: variant }] : {};
    node[key] = next;
    node = next as Record<string, unknown>;
  });
  let filled: unknown = defineScenario(input as unknown as ScenarioInput);
  for (const key of path) filled = isPlainObject(filled) ? filled[key] : undefined;
  const item: unknown = Array.isArray(filled) ? filled[0] : undefined;
  return isPlainObject(item) ? Object.fromEntries(Object.entries(item).filter(([k]) => k !== tag)) : {};
}

type JsonSchema = Record<string, unknown>;

/** The JSON Schema (draft 2020-12) of a scenario file: `.json`, or a module's default export. */
export function scenarioJsonSchema(): JsonSchema {
  const doc = toJsonSchema(SCENARIO_SCHEMA, FILE_DEFAULTS, []);
  const properties = doc.properties as JsonSchema;
  return {
    $schema: JSON_SCHEMA_DIALECT,
    title: 'switchover scenario',
    description: 'A scenario file for `switchover run FILE.json`. Fields left out take the defaults shown. '
      + 'Rules across fields (netpass needs return-path, migrateAfterMs below durationMs, ...) are checked by switchover only.',
    ...doc,
    // An editor finds the schema through "$schema"; the file loader ignores it.
    properties: { $schema: { type: 'string', description: 'this schema, for editors (`switchover schema > scenario.schema.json`)' }, ...properties },
  };
}

function toJsonSchema(schema: Schema, defaults: unknown, path: FieldPath): JsonSchema {
  switch (schema.type) {
    case 'number':
      return { type: schema.integer ? 'integer' : 'number', minimum: schema.min, maximum: schema.max, description: describeExpected(schema) };
    case 'boolean': return { type: 'boolean' };
    case 'string': return { type: 'string', pattern: schema.pattern.source, description: schema.describe };
    case 'enum': return { enum: [...schema.values] };
    case 'array':
      return {
        type: 'array',
        items: schema.items.type === 'union'
          ? unionSchema(schema.items, path, (tag, variant) => variantDefaults(path, tag, variant))
          : toJsonSchema(schema.items, undefined, path),
        ...(schema.minItems !== undefined ? { minItems: schema.minItems } : {}),
        ...(schema.maxItems !== undefined ? { maxItems: schema.maxItems } : {}),
        ...(schema.unique ? { uniqueItems: true } : {}),
      };
    case 'object': {
      const properties: JsonSchema = {};
      const required: string[] = [];
      for (const [key, field] of Object.entries(schema.fields)) {
        const d = isPlainObject(defaults) ? defaults[key] : undefined;
        properties[key] = { ...toJsonSchema(field.schema, d, [...path, key]), ...(d !== undefined ? { default: d } : {}) };
        if (!field.optional && d === undefined) required.push(key);
      }
      return { type: 'object', properties, ...(required.length ? { required } : {}), additionalProperties: false };
    }
    case 'union': return unionSchema(schema, path, () => undefined);
  }
}

/** One `if kind is X then X's fields` per variant: an editor then reports the fields of the kind written. */
function unionSchema(schema: UnionSchema, path: FieldPath, defaultsOf: (tag: string, variant: string) => unknown): JsonSchema {
  const variants = Object.entries(schema.variants);
  return {
    type: 'object',
    required: [schema.tag],
    properties: { [schema.tag]: { enum: variants.map(([name]) => name) } },
    allOf: variants.map(([name, variant]) => ({
      if: { properties: { [schema.tag]: { const: name } } },
      then: toJsonSchema(variant, defaultsOf(schema.tag, name), path),
    })),
  };
}
