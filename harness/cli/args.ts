// Command-line helpers shared by the subcommands.

/**
 * `--opt -1` as `--opt=-1` for options that take a value: node's parseArgs refuses a value
 * that starts with "-" as ambiguous, which hides the real message (`--repeat -1: expected an
 * integer 1..1000`). Only values that look like numbers are joined, so `--json -x` still
 * reads as a missing value.
 */
export function joinDashValues(argv: readonly string[], valued: readonly string[]): string[] {
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
export function valuedOptions(options: Record<string, { type: string }>): string[] {
  return Object.entries(options).filter(([, o]) => o.type === 'string').map(([name]) => `--${name}`);
}
