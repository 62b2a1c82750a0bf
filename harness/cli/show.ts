// `switchover list [--verbose]` and `switchover show SCENARIO`: what a scenario is once its
// defaults and `--set` are applied, and every `--set` key with its type, default and unit.
// The keys come from the alias table and the scenario schema (scenario.ts), the defaults from
// what defineScenario fills in (file-format.ts), so this cannot drift from what `run` accepts.
import { type CommandSpec, HELP_OPTION, UsageError, parseCommand } from './args.js';
import { findScenarios, listCommand as catalogueLines, loadCatalogue } from '../scenario/catalogue.js';
import { FILE_DEFAULTS, variantDefaults, type FieldPath } from '../scenario/file-format.js';
import { ALIASES, MULTIPLIERS, PARAM_PREFIXES, SCENARIO_SCHEMA, applyOverrides, defineScenario } from '../scenario/scenario.js';
import { clip, isPlainObject, join, quote, type Schema, type UnionSchema } from '../scenario/schema.js';
import { renderTable } from '../report/table.js';
import type { Scenario } from '../scenario/types.js';

const LIST_OPTIONS = {
  verbose: {
    type: 'boolean', short: 'v',
    help: 'under each scenario its settings beyond the defaults (as KEY=VALUE for --set), then every --set key with its type, default and unit',
  },
  help: HELP_OPTION,
} as const;
export const LIST: CommandSpec<typeof LIST_OPTIONS> = {
  name: 'list', args: '', summary: 'The scenario catalogue, one line each: name, layout, what it demonstrates.', options: LIST_OPTIONS,
};

const SHOW_OPTIONS = {
  set: { type: 'string', multiple: true, default: [] as string[], arg: 'KEY=VALUE', help: 'apply a setting first, as `switchover run --set` does' },
  json: { type: 'boolean', help: 'print only the resolved scenario, as JSON (a scenario file `switchover run FILE.json` takes)' },
  help: HELP_OPTION,
} as const;
export const SHOW: CommandSpec<typeof SHOW_OPTIONS> = {
  name: 'show', args: 'SCENARIO|FILE',
  summary: 'One scenario after its defaults and --set: the resolved scenario as JSON, then every --set key with its value here, default, unit and type.',
  options: SHOW_OPTIONS,
};

/** One `--set` key, as the tables print it. */
export interface SetKey {
  key: string;
  schema: Schema;
  /** What an alias or a list item's field stands for. */
  note?: string;
  default: unknown;
  /** Its value in the scenario shown (`show`); absent in `list --verbose`. */
  value?: unknown;
  /** `key=value` sets the whole field: these keys, from the defaults, rebuild a scenario. */
  whole: boolean;
}

/** A scenario with one list item of every kind, each with its defaults: where an alias's default is read. */
function aliasDefaults(): Scenario {
  const flows = itemsOf(SCENARIO_SCHEMA, ['traffic', 'flows']);
  return defineScenario({
    name: 'defaults', description: 'defaults',
    traffic: { flows: Object.keys(flows?.variants ?? {}).map((kind) => ({ kind }) as never) },
  });
}

/** The union schema of the items of the list at `path`, if they are one. */
function itemsOf(schema: Schema, path: readonly string[]): UnionSchema | undefined {
  let s: Schema | undefined = schema;
  for (const key of path) s = s?.type === 'object' ? s.fields[key]?.schema : undefined;
  return s?.type === 'array' && s.items.type === 'union' ? s.items : undefined;
}

/** Every `--set` key: the aliases, then every field of the scenario (param.NAME for migration parameters). */
export function setKeys(scenario?: Scenario): SetKey[] {
  const probe = aliasDefaults();
  const keys: SetKey[] = Object.entries(ALIASES).map(([key, a]) => ({
    key, schema: a.schema, note: `sets ${a.sets}`, default: a.get(probe), whole: false,
    ...(scenario ? { value: a.get(scenario) } : {}),
  }));
  const walk = (schema: Schema, value: unknown, def: unknown, path: FieldPath, key: string): void => {
    if (schema.type === 'object') {
      for (const [name, field] of Object.entries(schema.fields)) {
        const child = key === 'migration.parameters' ? `${PARAM_PREFIXES[0]}${name}` : join(key, name);
        walk(field.schema, isPlainObject(value) ? value[name] : undefined, isPlainObject(def) ? def[name] : undefined, [...path, name], child);
      }
      return;
    }
    keys.push({ key, schema, default: def, whole: true, ...(scenario ? { value } : {}) });
    if (schema.type === 'array' && schema.items.type === 'union') keys.push(...itemKeys(schema.items, value, path, key, scenario !== undefined));
  };
  walk(SCENARIO_SCHEMA, scenario, FILE_DEFAULTS, [], '');
  return keys;
}

/** The fields of a list's items: of each item in a scenario, or of each kind of item (`[N]`). */
function itemKeys(union: UnionSchema, list: unknown, path: FieldPath, key: string, shown: boolean): SetKey[] {
  const out: SetKey[] = [];
  const fields = (kind: string, index: string, item?: Record<string, unknown>): void => {
    const variant = union.variants[kind];
    if (!variant) return;
    const defaults = variantDefaults(path, union.tag, kind);
    for (const [name, field] of Object.entries(variant.fields)) {
      if (name === union.tag) continue;
      out.push({
        key: `${key}[${index}].${name}`, schema: field.schema, note: `of a ${kind} item`, default: defaults[name], whole: false,
        ...(shown ? { value: item?.[name] } : {}),
      });
    }
  };
  if (shown) {
    (Array.isArray(list) ? list : []).forEach((item, i) => {
      if (isPlainObject(item)) fields(String(item[union.tag]), String(i), item);
    });
  } else {
    for (const kind of Object.keys(union.variants)) fields(kind, 'N');
  }
  return out;
}

function typeText(schema: Schema): string {
  switch (schema.type) {
    case 'number': return `${schema.integer ? 'integer' : 'number'} ${schema.min}..${schema.max}`;
    case 'boolean': return 'on|off';
    case 'string': return schema.describe;
    case 'enum': return schema.values.join('|');
    case 'array':
      if (schema.items.type === 'enum') return `list of ${schema.items.values.join(',')}`;
      if (schema.items.type === 'union') return `JSON list of {"${schema.items.tag}": ${Object.keys(schema.items.variants).join('|')}, ...}`;
      return 'list';
    case 'object': case 'union': return 'JSON object';
  }
}

/** A value as `--set` takes it back: lists of names comma-separated, objects as JSON, on/off. */
export function valueText(v: unknown): string {
  if (v === undefined) return '-';
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  if (Array.isArray(v) && v.length && v.every((x) => typeof x === 'string')) return v.join(',');
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function keyTable(keys: readonly SetKey[], shown: boolean): string {
  const headers = ['KEY', ...(shown ? ['VALUE'] : []), 'DEFAULT', 'UNIT', 'TYPE'];
  // The JSON above has every value whole; the table keeps its columns narrow.
  const cell = (v: unknown): string => clip(valueText(v), 40);
  const rows = keys.map((k) => [
    k.key, ...(shown ? [cell(k.value)] : []), cell(k.default),
    k.schema.type === 'number' ? k.schema.unit ?? '' : '', `${typeText(k.schema)}${k.note ? `; ${k.note}` : ''}`,
  ]);
  const suffixes = Object.entries(MULTIPLIERS).map(([unit, m]) => `${unit}: ${Object.keys(m).filter(Boolean).join(', ')}`);
  return `${renderTable(headers, rows, headers.length)}\n`
    + '"-": not set (an unset migration parameter keeps the backend\'s default). Lists are comma-separated or JSON.\n'
    + `Numbers take a suffix by unit (5s = 5000 ms): ${suffixes.join('; ')}.\n`;
}

/** The KEY=VALUE settings that turn the defaults into `s` (name and description aside). */
export function settingsBeyondDefaults(s: Scenario): string[] {
  return setKeys(s)
    .filter((k) => k.whole && k.key !== 'name' && k.key !== 'description' && k.value !== undefined
      && JSON.stringify(k.value) !== JSON.stringify(k.default))
    .map((k) => `${k.key}=${valueText(k.value)}`);
}

export async function listScenariosCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(LIST, argv);
  if (!parsed) return 0;
  if (parsed.positionals.length) throw new UsageError(`\`switchover list\` takes no arguments, got ${quote(parsed.positionals[0]!)}`, LIST);
  const all = await loadCatalogue();
  if (!parsed.values.verbose) {
    process.stdout.write(catalogueLines(all));
    return 0;
  }
  const lines = catalogueLines(all).split('\n');
  const out = all.map((s, i) => [lines[i], ...settingsBeyondDefaults(s).map((line) => `    ${line}`)].join('\n'));
  process.stdout.write(`${out.join('\n')}\n\nEvery scenario is the defaults below with the settings under its name (\`switchover show SCENARIO\` prints it whole).\n\n`);
  process.stdout.write(keyTable(setKeys(), false));
  return 0;
}

export async function showCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(SHOW, argv);
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  if (positionals.length !== 1) throw new UsageError(`\`switchover show\` takes one scenario, got ${positionals.length}`, SHOW);
  const found = await findScenarios(positionals);
  if (found.length !== 1) throw new UsageError(`${quote(positionals[0]!)} names ${found.length} scenarios; show takes one (\`switchover list\` names them)`, SHOW);
  const s = values.set.length ? applyOverrides(found[0]!, values.set) : found[0]!;
  const { name, description, ...fields } = s;
  const json = `${JSON.stringify({ name, description, ...fields }, null, 2)}\n`;
  if (values.json) {
    process.stdout.write(json);
    return 0;
  }
  process.stdout.write(`${s.name}: ${s.description}\n\nresolved (defaults and --set applied; saved as FILE.json it runs with \`switchover run FILE.json\`):\n${json}\n`);
  process.stdout.write(`--set keys (\`switchover run ${s.name} --set KEY=VALUE\`):\n${keyTable(setKeys(s), true)}`);
  return 0;
}
