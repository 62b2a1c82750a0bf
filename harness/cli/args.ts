// The subcommands' option tables. One table per command is both what node's parseArgs reads
// and what `--help` prints, so an option cannot be accepted without being described, and a
// name that is in no table (a typo, an option a CI template made up) is refused.
import { parseArgs } from 'node:util';
import { clip, didYouMean } from '../scenario/schema.js';

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  default?: string | boolean | string[];
  /** The value's name in help (FILE, K/N); with `choices`, the choices are shown instead. */
  arg?: string;
  /** The only values accepted; parseCommand refuses others. */
  choices?: readonly string[];
  /** One line for --help. */
  help: string;
}
export type OptionTable = Record<string, OptionSpec>;

export interface CommandSpec<O extends OptionTable = OptionTable> {
  /** As typed after `switchover`: `run`, `baseline save`. */
  name: string;
  /** The positionals as the usage line shows them: `[SCENARIO|FILE...]`. */
  args: string;
  /** One line for `switchover --help`. */
  summary: string;
  options: O;
  /** Lines printed after the options (exit codes, examples). */
  notes?: readonly string[];
}

/** Bad command-line usage: the CLI prints it with the command's usage line and exits 2. */
export class UsageError extends Error {
  constructor(message: string, readonly command?: CommandSpec) {
    super(message);
    this.name = 'UsageError';
  }
}

/** `-h, --help`: every table ends with it. */
export const HELP_OPTION = { type: 'boolean', short: 'h', help: 'print this help' } as const satisfies OptionSpec;

/** `switchover NAME ARGS [options]` (every command has one: --help). */
export function usageLine(spec: Pick<CommandSpec, 'name' | 'args'>): string {
  return `switchover ${spec.name}${spec.args ? ` ${spec.args}` : ''} [options]`;
}

function optionLabel(name: string, o: OptionSpec): string {
  const value = o.type === 'string' ? ` ${o.choices?.join('|') ?? o.arg ?? 'VALUE'}` : '';
  return `${o.short ? `-${o.short}, ` : '    '}--${name}${value}`;
}

/** `switchover NAME --help`: the usage line, the summary, then one line per option. */
export function commandHelp(spec: CommandSpec): string {
  const rows = Object.entries(spec.options).map(([name, o]) => {
    const def = typeof o.default === 'string' ? ` (default ${o.default})` : '';
    return [optionLabel(name, o), `${o.help}${o.multiple ? '; repeatable' : ''}${def}`] as const;
  });
  const width = Math.max(0, ...rows.map(([label]) => label.length));
  return [
    `usage: ${usageLine(spec)}`, '', spec.summary, '',
    ...(rows.length ? ['options:', ...rows.map(([label, text]) => `  ${label.padEnd(width)}  ${text}`)] : []),
    ...(spec.notes?.length ? ['', ...spec.notes] : []),
  ].join('\n') + '\n';
}

/**
 * Parses `argv` (after the subcommand) against the command's table. `--help` prints the help
 * and gives undefined, but only once every option is known and every choice valid: `run
 * --junitt x --help` is still refused, which lets a test check a CI template's command lines.
 */
export function parseCommand<O extends OptionTable>(spec: CommandSpec<O>, argv: readonly string[]) {
  let parsed;
  try {
    parsed = parseArgs({ args: joinDashValues(argv, valuedOptions(spec.options)), options: spec.options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError(parseErrorMessage(spec, e as Error & { code?: string }), spec);
  }
  for (const [name, o] of Object.entries(spec.options)) {
    const given = (parsed.values as Record<string, unknown>)[name];
    const values = given === undefined ? [] : Array.isArray(given) ? given : [given];
    for (const v of values) {
      if (o.choices && typeof v === 'string' && !o.choices.includes(v)) {
        const guess = didYouMean(v, o.choices);
        throw new UsageError(`--${name} ${JSON.stringify(clip(v))}: expected ${o.choices.join(' or ')}${guess ? ` (did you mean "${guess}"?)` : ''}`, spec);
      }
    }
  }
  if ((parsed.values as { help?: boolean }).help) {
    process.stdout.write(commandHelp(spec));
    return undefined;
  }
  return parsed;
}

/** parseArgs's message, for a person: the unknown option with the closest known one. */
function parseErrorMessage(spec: CommandSpec, e: Error & { code?: string }): string {
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const option = /Unknown option '([^']*)'/.exec(e.message)?.[1] ?? '';
    const names = Object.keys(spec.options).map((n) => `--${n}`);
    const guess = option.startsWith('--') ? didYouMean(option, names) : undefined;
    return `\`switchover ${spec.name}\` has no option ${clip(option)}${guess ? `; did you mean ${guess}?` : ''}`;
  }
  return e.message.split('\n')[0]!;
}

/**
 * `--opt -1` as `--opt=-1` for options that take a value: node's parseArgs refuses a value
 * that starts with "-" as ambiguous, which hides the real message (`--repeat -1: expected an
 * integer 1..1000`). Only values that look like numbers are joined, so `--json -x` still
 * reads as a missing value.
 */
function joinDashValues(argv: readonly string[], valued: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return [...out, ...argv.slice(i)];
    const next = argv[i + 1];
    if (valued.includes(a) && next !== undefined && /^-[\d.]/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else {
      out.push(a);
    }
  }
  return out;
}

/** The `--name` spellings of the options of a parseArgs config that take a value. */
function valuedOptions(options: Record<string, { type: string }>): string[] {
  return Object.entries(options).filter(([, o]) => o.type === 'string').map(([name]) => `--${name}`);
}
