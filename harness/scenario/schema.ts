// A small declarative validator for user input (scenario files, `--set`, `--shard`):
// every rejection names where the input came from, the field path, what was expected
// and what was found, e.g.
//   scenarios/foo.ts: traffic.flows[0].intervalMs: expected an integer from 1 to 1000 (ms), got "fast"
// User text is quoted clipped (MAX_QUOTED), so a hostile input never comes back whole.
// Schemas are data, so `--set` can look up a field's type to coerce a command-line string.

/** Bad user input. The CLI maps it to exit code 2; nothing has been started when it is thrown. */
export class InputError extends Error {
  constructor(
    /** Where the input came from: a file, `--set key=value`, `--shard K/N`; '' for the command line as a whole. */
    readonly where: string,
    /** The field path inside it, e.g. `traffic.flows[0].intervalMs`; '' for the input as a whole. */
    readonly path: string,
    readonly detail: string,
    options?: ErrorOptions,
  ) {
    super([clip(where, MAX_QUOTED * 3), clip(path, MAX_QUOTED * 3), detail].filter(Boolean).join(': '), options);
    this.name = 'InputError';
  }
}

/** Most characters of user text an error quotes. */
export const MAX_QUOTED = 60;

const ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** `text` for one line of a message: control characters escaped, at most `max` characters of it. */
export function clip(text: string, max = MAX_QUOTED): string {
  const shown = text.length <= max ? text : text.slice(0, max);
  const safe = shown.replace(/[\x00-\x1f\x7f]/g, (c) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return text.length <= max ? safe : `${safe}… (${text.length} characters)`;
}

/** User text as an error quotes it: JSON-quoted, at most MAX_QUOTED characters of it. */
export function quote(text: string): string {
  return text.length <= MAX_QUOTED ? JSON.stringify(text) : `${JSON.stringify(text.slice(0, MAX_QUOTED))}… (${text.length} characters)`;
}

/** Every number has both bounds, in the unit the tool it reaches accepts (issue 18: no 1e-300 ms). */
export interface NumberSchema {
  type: 'number';
  integer?: boolean;
  /** Inclusive bounds. */
  min: number;
  max: number;
  /** What the number is, appended to the expectation: "(ms)". */
  unit?: string;
}
export interface BooleanSchema { type: 'boolean' }
export interface StringSchema { type: 'string'; pattern: RegExp; describe: string }
export interface EnumSchema { type: 'enum'; values: readonly string[] }
export interface ArraySchema {
  type: 'array'; items: Schema; minItems?: number; maxItems?: number;
  /** Items are enum values that may appear once each. */
  unique?: boolean;
}
export interface Field { schema: Schema; optional?: boolean }
export interface ObjectSchema {
  type: 'object';
  fields: Record<string, Field>;
  /** Unknown fields that users plausibly write, with what to do instead. */
  hints?: Record<string, string>;
  /** Checks across fields, run after every field is valid. Throws InputError. */
  check?: (value: Record<string, unknown>, where: string, path: string) => void;
}
/** Objects told apart by a tag field (`kind`), each variant with its own fields. */
export interface UnionSchema { type: 'union'; tag: string; variants: Record<string, ObjectSchema> }
export type Schema = NumberSchema | BooleanSchema | StringSchema | EnumSchema | ArraySchema | ObjectSchema | UnionSchema;

/** `record[key]` for the record's own keys only: input like `constructor` must not reach Object.prototype. */
export function own<T>(record: Record<string, T>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

export function join(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return path ? `${path}.${key}` : key;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** What a schema accepts, as the "expected ..." part of a message. */
export function describeExpected(schema: Schema): string {
  switch (schema.type) {
    case 'number': {
      const noun = schema.integer ? 'an integer' : 'a number';
      const unit = schema.unit ? ` (${schema.unit})` : '';
      return `${noun} from ${schema.min} to ${schema.max}${unit}`;
    }
    case 'boolean': return 'true or false';
    case 'string': return schema.describe;
    case 'enum': return `one of ${schema.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'array': {
      if (schema.items.type === 'enum') return `a list of ${schema.items.values.map((v) => JSON.stringify(v)).join(', ')}`;
      return schema.minItems ? `a list of at least ${schema.minItems}` : 'a list';
    }
    case 'object': return 'an object';
    case 'union': return `an object with ${schema.tag} ${describeExpected({ type: 'enum', values: Object.keys(schema.variants) })}`;
  }
}

/** The "got ..." part of a message: strings quoted, so `"fast"` and `fast` differ. */
export function describeGot(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (typeof v === 'string') return quote(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) {
    const text = JSON.stringify(v);
    return text.length <= 60 ? text : `a list of ${v.length}`;
  }
  if (typeof v === 'object') return 'an object';
  return typeof v;
}

function fail(where: string, path: string, schema: Schema | string, got: unknown): never {
  const expected = typeof schema === 'string' ? schema : describeExpected(schema);
  throw new InputError(where, path, `expected ${expected}, got ${describeGot(got)}`);
}

/** Throws an InputError for the first thing in `value` that `schema` does not accept. */
export function check(schema: Schema, value: unknown, where: string, path: string): void {
  switch (schema.type) {
    case 'number': {
      const ok = typeof value === 'number' && Number.isFinite(value)
        && (!schema.integer || Number.isInteger(value))
        && value >= schema.min && value <= schema.max;
      if (!ok) fail(where, path, schema, value);
      return;
    }
    case 'boolean':
      if (typeof value !== 'boolean') fail(where, path, schema, value);
      return;
    case 'string':
      if (typeof value !== 'string' || !schema.pattern.test(value)) fail(where, path, schema, value);
      return;
    case 'enum': {
      if (typeof value === 'string' && schema.values.includes(value)) return;
      const guess = typeof value === 'string' ? didYouMean(value, schema.values) : undefined;
      if (!guess) fail(where, path, schema, value);
      throw new InputError(where, path, `expected ${describeExpected(schema)}, got ${describeGot(value)} (did you mean "${guess}"?)`);
    }
    case 'array': {
      if (!Array.isArray(value)) fail(where, path, schema, value);
      if (schema.minItems !== undefined && value.length < schema.minItems) fail(where, path, schema, value);
      if (schema.maxItems !== undefined && value.length > schema.maxItems) {
        fail(where, path, `a list of at most ${schema.maxItems}`, value);
      }
      value.forEach((item, i) => {
        check(schema.items, item, where, join(path, i));
        if (schema.unique && value.indexOf(item) < i) {
          throw new InputError(where, join(path, i), `expected each value once, got ${describeGot(item)} again`);
        }
      });
      return;
    }
    case 'object': {
      if (!isPlainObject(value)) fail(where, path, schema, value);
      for (const key of Object.keys(value)) {
        if (!Object.hasOwn(schema.fields, key)) throw unknownField(schema, key, where, path);
      }
      for (const [key, field] of Object.entries(schema.fields)) {
        const v = value[key];
        if (v === undefined && field.optional) continue;
        check(field.schema, v, where, join(path, key));
      }
      schema.check?.(value, where, path);
      return;
    }
    case 'union': {
      if (!isPlainObject(value)) fail(where, path, schema, value);
      const variant = own(schema.variants, String(value[schema.tag]));
      if (!variant) check({ type: 'enum', values: Object.keys(schema.variants) }, value[schema.tag], where, join(path, schema.tag));
      else check(variant, value, where, path);
      return;
    }
  }
}

export function unknownField(schema: ObjectSchema, key: string, where: string, path: string): InputError {
  const hint = schema.hints && own(schema.hints, key);
  if (hint) return new InputError(where, join(path, key), `unknown field; ${hint}`);
  const known = Object.keys(schema.fields);
  const guess = didYouMean(key, known);
  return new InputError(where, join(path, key),
    guess ? `unknown field; did you mean "${guess}"?` : `unknown field; known fields: ${known.join(', ')}`);
}

/**
 * The closest candidate when it is close enough to be a typo (case-insensitive; a swap of
 * neighbours counts as one edit). The distance is at least the difference in length, so a
 * candidate whose length differs by more than the allowed edits is not compared at all: a
 * 1 MB word costs a length check per candidate, not a 1 MB x N table.
 */
export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  const w = word.toLowerCase();
  const allowed = Math.max(1, Math.min(3, Math.floor(w.length / 3)));
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const lower = c.toLowerCase();
    if (Math.abs(lower.length - w.length) > allowed) continue;
    const d = editDistance(w, lower);
    if (d < bestDistance) { best = c; bestDistance = d; }
  }
  return bestDistance <= allowed ? best : undefined;
}

/** Optimal string alignment distance: Levenshtein plus transposition of adjacent characters. */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** Plain objects merge key by key; anything else in `input` (arrays too) replaces the default. */
export function mergeDefaults(defaults: unknown, input: unknown): unknown {
  if (!isPlainObject(defaults) || !isPlainObject(input)) return input === undefined ? structuredClone(defaults) : input;
  const out: Record<string, unknown> = structuredClone(defaults);
  for (const [key, v] of Object.entries(input)) {
    if (v === undefined) continue;
    // defineProperty, not assignment: a `__proto__` key from JSON must stay a (rejected) field.
    const value = Object.hasOwn(out, key) ? mergeDefaults(out[key], v) : v;
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return out;
}
