// The scenario catalogue: every scenarios/NAME.ts default-exports defineScenario({name: NAME}),
// compiled to dist/scenarios/NAME.js. Also loads a scenario given by path (`switchover run
// ./my.ts`, `./my.json`), and prints `switchover list`. Every scenario is validated here, so a
// bad file is refused before a VM starts.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, extname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { InputError, describeGot, didYouMean, isPlainObject, quote } from './schema.js';
import { validateScenario } from './scenario.js';
import type { Scenario } from './types.js';

const here = fileURLToPath(new URL('.', import.meta.url));
/** dist/scenarios, next to dist/harness. */
export const CATALOGUE_DIR = resolve(here, '../../scenarios');
/** The sources, to name files in errors and to skip compiled leftovers of deleted scenarios. */
const SOURCE_DIR = resolve(here, '../../../scenarios');
const SCENARIO_MODULE = resolve(here, 'scenario.js');

let cached: Promise<Scenario[]> | undefined;

/** Every catalogue scenario, validated, sorted by name. Loaded once per process. */
export function loadCatalogue(dir = CATALOGUE_DIR): Promise<Scenario[]> {
  if (dir !== CATALOGUE_DIR) return readCatalogue(dir);
  cached ??= readCatalogue(dir);
  return cached;
}

async function readCatalogue(dir: string): Promise<Scenario[]> {
  let files: string[];
  try {
    files = (await readdir(dir)).filter((f) => f.endsWith('.js')).sort();
  } catch (err) {
    throw new Error(`cannot read the scenario catalogue in ${dir}: run \`npm run build\` first`, { cause: err });
  }
  const hasSources = dir === CATALOGUE_DIR && existsSync(SOURCE_DIR);
  const wanted = files.filter((f) => !hasSources || existsSync(join(SOURCE_DIR, f.replace(/\.js$/, '.ts'))));
  const scenarios = await Promise.all(wanted.map(async (f) => {
    const name = f.replace(/\.js$/, '');
    const label = hasSources ? `scenarios/${name}.ts` : join(dir, f);
    const scenario = await importScenario(join(dir, f), label);
    if (scenario.name !== name) {
      throw new InputError(label, 'name', `expected ${JSON.stringify(name)} (the file name), got ${JSON.stringify(scenario.name)}`);
    }
    return scenario;
  }));
  return scenarios.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** `file` is what runs; errors name `label`, the file the user wrote (a .ts runs from a temp copy). */
async function importScenario(file: string, label: string): Promise<Scenario> {
  let mod: { default?: unknown };
  try {
    mod = await import(pathToFileURL(file).href) as { default?: unknown };
  } catch (err) {
    // A module may throw anything (`throw 42`), not only an Error.
    const why = err instanceof Error ? err.message : `it threw ${describeGot(err)}`;
    const named = why.replaceAll(pathToFileURL(file).href, label).replaceAll(file, label);
    throw new InputError(label, '', `cannot load: ${named}`, { cause: err });
  }
  if (mod.default === undefined) {
    throw new InputError(label, '', 'expected a default export made with defineScenario({...}), got nothing');
  }
  return validateScenario(mod.default, label);
}

/** Whether a `switchover run` argument is a file rather than a catalogue name. */
export function isScenarioPath(arg: string): boolean {
  return /[/\\]/.test(arg) || /\.(ts|js|mjs|json)$/.test(arg);
}

/**
 * A scenario from a file: `.json` (the scenario object), `.js`/`.mjs` (default export), or
 * `.ts` (transpiled with TypeScript; its import of harness/scenario/scenario.js is pointed at ours, so a
 * catalogue file copied anywhere and edited still loads).
 */
export async function loadScenarioFile(path: string): Promise<Scenario> {
  const file = resolve(path);
  const label = relative(process.cwd(), file).startsWith('..') ? file : path;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new InputError(label, '', `cannot read the scenario file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  switch (extname(file)) {
    case '.json': {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch (err) {
        throw new InputError(label, '', `not valid JSON: ${(err as Error).message}`, { cause: err });
      }
      // "$schema" tells an editor where the JSON Schema is (`switchover schema`); it is no setting.
      if (isPlainObject(parsed) && typeof parsed.$schema === 'string') delete parsed.$schema;
      return validateScenario(parsed, label);
    }
    case '.js':
    case '.mjs':
      return importScenario(file, label);
    case '.ts':
      return importTypeScript(text, file, label);
    default:
      throw new InputError(label, '', `expected a .ts, .js, .mjs or .json scenario file, got ${describeGot(extname(file) || 'no extension')}`);
  }
}

async function importTypeScript(source: string, file: string, label: string): Promise<Scenario> {
  let ts: typeof import('typescript');
  try {
    ts = (await import('typescript')).default;
  } catch (err) {
    throw new InputError(label, '', 'loading a .ts scenario needs the typescript package: run `npm install`, or give a .json scenario', { cause: err });
  }
  const out = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    fileName: basename(label),
    reportDiagnostics: true,
  });
  const syntax = out.diagnostics?.[0];
  if (syntax) {
    const where = syntax.file && syntax.start !== undefined ? syntax.file.getLineAndCharacterOfPosition(syntax.start) : undefined;
    throw new InputError(label, '', `does not parse${where ? ` (line ${where.line + 1})` : ''}: ${ts.flattenDiagnosticMessageText(syntax.messageText, ' ')}`);
  }
  const ours = pathToFileURL(SCENARIO_MODULE).href;
  // Relative imports resolve beside the file the user wrote, not beside the temp copy.
  const js = out.outputText
    .replace(/(from\s*|import\s*\(\s*)(['"])[^'"]*harness\/scenario(?:\/scenario)?(?:\.js|\.ts)?\2/g, `$1$2${ours}$2`)
    .replace(/(from\s*|import\s*\(\s*)(['"])(\.\.?\/[^'"]*)\2/g, (_, lead: string, q: string, spec: string) => `${lead}${q}${new URL(spec, pathToFileURL(file)).href}${q}`);
  // A private directory: the module is ours to run and nobody else's to swap.
  const dir = await mkdtemp(join(tmpdir(), 'switchover-scenario-'));
  try {
    const copy = join(dir, 'scenario.mjs');
    await writeFile(copy, js, { mode: 0o600 });
    return await importScenario(copy, label);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The scenarios `switchover run` names: catalogue names, `*` wildcards (`netpass-*`) and file
 * paths, in the order given, each once. No names means the whole catalogue.
 */
export async function findScenarios(names: readonly string[], catalogue?: Scenario[]): Promise<Scenario[]> {
  const all = catalogue ?? await loadCatalogue();
  if (!names.length) return all;
  const picked = new Map<string, Scenario>();
  for (const arg of names) {
    if (isScenarioPath(arg)) {
      const s = await loadScenarioFile(arg);
      picked.set(`file:${arg}`, s);
      continue;
    }
    const matches = arg.includes('*') ? all.filter((s) => globToRegExp(arg).test(s.name)) : all.filter((s) => s.name === arg);
    if (!matches.length) {
      const guess = arg.includes('*') ? undefined : didYouMean(arg, all.map((s) => s.name));
      throw new InputError('', '', `unknown scenario ${quote(arg)}${guess ? `; did you mean "${guess}"?` : ''} (\`switchover list\` shows the catalogue)`);
    }
    for (const s of matches) picked.set(s.name, s);
  }
  return [...picked.values()];
}

function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.split('*').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}

/** `switchover list`: one line per scenario: name, layout, what it demonstrates. */
export function listCommand(scenarios: readonly Scenario[]): string {
  const width = Math.max(0, ...scenarios.map((s) => s.name.length));
  return scenarios.map((s) => `${s.name.padEnd(width)}  ${s.topology.layout.padEnd(6)}  ${s.description}\n`).join('');
}
