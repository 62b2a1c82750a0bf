// `switchover report compare A.json B.json [--pair FROM:TO]... [--html FILE]`: two `--json`
// result files side by side (harness/report/compare.ts). Prints the table; with --html also
// writes the page with each pair's timelines. Exit 0 once compared, 2 on bad input or when no
// scenario pairs.
import { writeFileSync } from 'node:fs';
import { commandHelp, HELP_OPTION, parseCommand, UsageError, usageLine, type CommandSpec } from './args.js';
import { checkOutputFile, OutputError, writeOutput } from './output-paths.js';
import { compareResults, parsePairRule, renderCompareHtml, renderCompareTable } from '../report/compare.js';
import { readJsonReport } from '../report/json.js';
import { InputError } from '../scenario/schema.js';

export const REPORT_COMPARE = {
  name: 'report compare',
  args: 'A.json B.json',
  summary: 'Line up the same scenarios of two `run --json` files: lost, outage, delay and downtime as A, B and B−A.',
  options: {
    pair: {
      type: 'string', multiple: true, default: [] as string[], arg: 'FROM:TO',
      help: "pair A's scenario FROM<rest> with B's TO<rest>, e.g. baseline-:netpass-; given --pair, only A's scenarios that match a FROM are paired",
    },
    html: { type: 'string', arg: 'FILE', help: 'also write an HTML page with the A and B timelines of each pair, one above the other' },
    help: HELP_OPTION,
  },
  notes: [
    'Scenarios pair by name and backend; repeated ones (run --repeat) count by their medians.',
    'outage, delay (the largest added latency) and downtime are in ms.',
    'examples:',
    '  switchover report compare baseline-build.json candidate-build.json --html compare.html',
    '  switchover report compare out/results.json out/results.json --pair baseline-:netpass-',
  ],
} as const satisfies CommandSpec;

async function compare(argv: string[]): Promise<number> {
  const parsed = parseCommand(REPORT_COMPARE, argv);
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  if (positionals.length !== 2) {
    throw new UsageError(`expected two result files (A.json B.json), got ${positionals.length}`, REPORT_COMPARE);
  }
  const [fileA, fileB] = positionals as [string, string];
  const rules = values.pair.map(parsePairRule);
  if (values.html !== undefined) checkOutputFile('--html', values.html);
  const a = readJsonReport(fileA);
  const b = readJsonReport(fileB);
  const c = compareResults(a.results, b.results, rules);
  const labels = { a: fileA, b: fileB };
  if (!c.pairs.length) {
    const hint = rules.length ? 'no scenario of A matches a --pair FROM prefix with a partner in B' : 'no scenario name and backend is in both files; pair differing names with --pair FROM:TO';
    throw new InputError(`${fileA} and ${fileB}`, '', hint);
  }
  process.stdout.write(renderCompareTable(c, labels));
  if (values.html !== undefined) {
    await writeOutput('--html', values.html, (f) => writeFileSync(f, renderCompareHtml(c, labels)));
    process.stdout.write(`compare view written to ${values.html}\n`);
  }
  return 0;
}

export async function reportCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  try {
    if (sub === 'compare') return await compare(rest);
    if (sub === '--help' || sub === '-h') { process.stdout.write(commandHelp(REPORT_COMPARE)); return 0; }
    throw new UsageError(sub === undefined ? 'expected a report kind: compare' : `unknown report ${JSON.stringify(sub)}: expected compare`);
  } catch (e) {
    if (e instanceof UsageError) process.stderr.write(`switchover report: ${e.message}\nusage: ${usageLine(REPORT_COMPARE)}\n`);
    else if (e instanceof InputError || e instanceof OutputError) process.stderr.write(`switchover report: ${e.message}\n`);
    else throw e;
    return 2;
  }
}
