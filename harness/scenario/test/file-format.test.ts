// The JSON Schema of scenario files (`switchover schema`) against the validator it is derived
// from, judged by an independent JSON Schema implementation (Ajv, draft 2020-12, strict): it
// accepts every catalogue scenario as JSON and a file that states only name and description,
// and a sweep over every field of the schema (each union variant as a list item) finds the two
// in agreement: every wrong value and unknown field is refused by both, every value at a bound
// or in an enum is accepted by both, except where only the validator's rules across fields
// (scenario.ts crossCheck) refuse it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv2020Module from 'ajv/dist/2020.js';
import { loadCatalogue, loadScenarioFile } from '../catalogue.js';
import { FILE_DEFAULTS, JSON_SCHEMA_DIALECT, scenarioJsonSchema, variantDefaults } from '../file-format.js';
import { SCENARIO_SCHEMA, validateScenario } from '../scenario.js';
import { InputError, type Schema } from '../schema.js';

// ajv is CommonJS: module.exports is the class, and module.exports.default too, which is what its types name.
const Ajv2020 = Ajv2020Module.default;
const ajv = new Ajv2020({ strict: true, allErrors: false });
const schemaDoc = scenarioJsonSchema();
const jsonSchemaAccepts = ajv.compile(schemaDoc);

function validatorAccepts(input: unknown): { ok: true } | { ok: false; message: string } {
  try {
    validateScenario(JSON.parse(JSON.stringify(input)), 'sweep');
    return { ok: true };
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    return { ok: false, message: e.message };
  }
}

test('the schema is draft 2020-12 and compiles in strict mode', () => {
  assert.is(schemaDoc.$schema, JSON_SCHEMA_DIALECT);
  assert.ok(ajv.validateSchema(schemaDoc), JSON.stringify(ajv.errors));
});

test('every catalogue scenario, as JSON, is accepted', async () => {
  const all = await loadCatalogue();
  assert.ok(all.length >= 20, `${all.length} scenarios`);
  for (const s of all) {
    assert.ok(jsonSchemaAccepts(JSON.parse(JSON.stringify(s))), `${s.name}: ${JSON.stringify(jsonSchemaAccepts.errors)}`);
  }
});

test('a file with only name and description is accepted: every other field has a default or is optional', () => {
  const minimal = { name: 'minimal', description: 'defaults only' };
  assert.ok(jsonSchemaAccepts(minimal), JSON.stringify(jsonSchemaAccepts.errors));
  assert.ok(validatorAccepts(minimal).ok);
  assert.equal(schemaDoc.required, ['name', 'description']);
  const props = schemaDoc.properties as Record<string, { default?: unknown }>;
  assert.equal(props.topology?.default, (FILE_DEFAULTS as Record<string, unknown>).topology, 'defaults are shown to the editor');
});

test('"$schema" names the schema for editors: both the JSON Schema and the file loader accept it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'switchover-schema-'));
  try {
    const file = join(dir, 'mine.json');
    const input = { $schema: './scenario.schema.json', name: 'mine', description: 'with $schema' };
    writeFileSync(file, JSON.stringify(input));
    assert.ok(jsonSchemaAccepts(input));
    assert.is((await loadScenarioFile(file)).name, 'mine');
    writeFileSync(file, JSON.stringify({ ...input, $schema: 5 }));
    assert.not.ok(jsonSchemaAccepts({ ...input, $schema: 5 }));
    try {
      await loadScenarioFile(file);
      assert.unreachable('a $schema that is not a string was accepted');
    } catch (e) {
      assert.instance(e, InputError);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('hand-picked bad files are refused by both', () => {
  const base = { name: 'bad', description: 'bad' };
  const bad: Array<[string, unknown]> = [
    ['no name', { description: 'x' }],
    ['a name with capitals', { ...base, name: 'Bad' }],
    ['an unknown top-level field', { ...base, topolgy: {} }],
    ['a layout that does not exist', { ...base, topology: { layout: 'star' } }],
    ['sub-millisecond ping', { ...base, traffic: { flows: [{ kind: 'ping', intervalMs: 0.5 }] } }],
    ['an unknown flow kind', { ...base, traffic: { flows: [{ kind: 'tcp' }] } }],
    ['a udp field on a ping flow', { ...base, traffic: { flows: [{ kind: 'ping', rate: 10 }] } }],
    ['no flows', { ...base, traffic: { flows: [] } }],
    ['a capability twice', { ...base, migration: { capabilities: ['events', 'events'] } }],
    ['a fault without its phase', { ...base, faults: [{ kind: 'cancel' }] }],
    ['local as a parameter', { ...base, migration: { parameters: { local: true } } }],
    ['a string for a number', { ...base, expect: { lost: '0' } }],
    ['the old startNetworkDelayMs', { ...base, guest: { startNetworkDelayMs: 100 } }],
  ];
  for (const [what, input] of bad) {
    assert.not.ok(jsonSchemaAccepts(input), `${what}: the JSON Schema accepted it`);
    assert.not.ok(validatorAccepts(input).ok, `${what}: the validator accepted it`);
  }
});

// ---- the sweep ----------------------------------------------------------------------------

type Path = Array<string | number>;

/** Sets `value` at `path` in `root`, making objects (and a one-item list at a number) on the way. */
function put(root: Record<string, unknown>, path: Path, value: unknown): Record<string, unknown> {
  const copy = structuredClone(root);
  let node: Record<string | number, unknown> = copy;
  path.forEach((key, i) => {
    if (i === path.length - 1) { node[key] = value; return; }
    if (typeof node[key] !== 'object' || node[key] === null) node[key] = typeof path[i + 1] === 'number' ? [] : {};
    node = node[key] as Record<string | number, unknown>;
  });
  return copy;
}

/** A value the schema accepts, for the required fields of a variant under test. */
function sample(schema: Schema): unknown {
  switch (schema.type) {
    case 'number': return schema.min;
    case 'boolean': return false;
    case 'enum': return schema.values[0];
    case 'string': return 'x';
    case 'array': return [];
    case 'object': return {};
    case 'union': return { [schema.tag]: Object.keys(schema.variants)[0] };
  }
}

interface Leaf { base: Record<string, unknown>; path: Path; schema: Schema }

/** Every field of the schema, each in a file that holds it: a list item per union variant. */
function leaves(): Leaf[] {
  const out: Leaf[] = [];
  const base = { name: 'sweep', description: 'sweep' };
  const walk = (schema: Schema, file: Record<string, unknown>, path: Path): void => {
    if (path.length) out.push({ base: file, path, schema });
    if (schema.type === 'object') {
      for (const [key, field] of Object.entries(schema.fields)) walk(field.schema, file, [...path, key]);
    } else if (schema.type === 'array' && schema.items.type === 'union') {
      const union = schema.items;
      for (const [kind, variant] of Object.entries(union.variants)) {
        const defaults = variantDefaults(path.filter((k): k is string => typeof k === 'string'), union.tag, kind);
        const item: Record<string, unknown> = { [union.tag]: kind };
        for (const [key, field] of Object.entries(variant.fields)) {
          if (key !== union.tag && !field.optional && defaults[key] === undefined) item[key] = sample(field.schema);
        }
        const withItem = put(file, [...path, 0], item);
        for (const [key, field] of Object.entries(variant.fields)) {
          if (key !== union.tag) walk(field.schema, withItem, [...path, 0, key]);
        }
        out.push({ base: withItem, path: [...path, 0, 'unknownField'], schema: { type: 'boolean' } });
      }
    }
  };
  walk(SCENARIO_SCHEMA, base, []);
  return out;
}

function badValues(schema: Schema): unknown[] {
  switch (schema.type) {
    case 'number': return [schema.min - 1, schema.max + 1, String(schema.min), null, ...(schema.integer ? [schema.min + 0.5] : [])];
    case 'boolean': return ['yes', 1, null];
    case 'enum': return ['nope', schema.values[0]!.toUpperCase(), 1];
    case 'string': return ['', 5, 'a\nb'];
    case 'array': return ['x', [null], ...(schema.items.type === 'enum' ? [['nope']] : [])];
    case 'object': case 'union': return ['x', [], null];
  }
}

function goodValues(schema: Schema): unknown[] {
  switch (schema.type) {
    case 'number': return [schema.min, schema.max];
    case 'boolean': return [true, false];
    case 'enum': return [...schema.values];
    case 'string': return ['x'];
    case 'array': return schema.items.type === 'enum' ? [[], [...schema.items.values]] : [];
    case 'object': case 'union': return [];
  }
}

/** Messages of the validator's rules across fields: values the JSON Schema cannot judge alone. */
const CROSS_FIELD = /when .* is|when both are set|expected less than traffic\.durationMs|as well when "netpass" is on|has no effect without the netpass capability|expected deadlineMs to be set/;

test('sweep: every wrong value and unknown field is refused by both; bounds and enum values agree', () => {
  const all = leaves();
  let bad = 0, good = 0, crossField = 0;
  for (const { base, path, schema } of all) {
    const where = path.join('.');
    if (path[path.length - 1] === 'unknownField') {
      const input = put(base, path, true);
      assert.not.ok(jsonSchemaAccepts(input), `${where}: the JSON Schema accepted an unknown field`);
      assert.not.ok(validatorAccepts(input).ok, `${where}: the validator accepted an unknown field`);
      bad++;
      continue;
    }
    for (const v of badValues(schema)) {
      const input = put(base, path, v);
      assert.not.ok(jsonSchemaAccepts(input), `${where} = ${JSON.stringify(v)}: the JSON Schema accepted it`);
      assert.not.ok(validatorAccepts(input).ok, `${where} = ${JSON.stringify(v)}: the validator accepted it`);
      bad++;
    }
    for (const v of goodValues(schema)) {
      const input = put(base, path, v);
      const schemaOk = jsonSchemaAccepts(input);
      const verdict = validatorAccepts(input);
      assert.ok(schemaOk || !verdict.ok, `${where} = ${JSON.stringify(v)}: the validator accepts it, the JSON Schema does not: ${JSON.stringify(jsonSchemaAccepts.errors)}`);
      if (!verdict.ok) {
        assert.ok(schemaOk, `${where} = ${JSON.stringify(v)}: refused by both, but it is a bound or an enum value: ${verdict.message}`);
        assert.match(verdict.message, CROSS_FIELD, `${where} = ${JSON.stringify(v)}: only a rule across fields may tell them apart`);
        crossField++;
      }
      good++;
    }
  }
  assert.ok(all.length > 60, `${all.length} fields swept`);
  assert.ok(bad > 200 && good > 100, `${bad} bad and ${good} good values`);
  assert.ok(crossField > 0, 'a cross-field rule was met (the sweep reaches migrateAfterMs at its maximum)');
});

test.run();
