// The `switchover` command line (DESIGN.md contract). `switchover vm` is dispatched to the
// engine by bin/switchover.js before this module loads.
//
// Exit codes: 0 all pass (unsupported allowed), 1 a failed expectation, 2 an error (bad input,
// missing tool, setup failure) with a message that says what to do.
import { resolve } from 'node:path';
import { ANALYZE, analyzeCommand } from './analyze.js';
import { type CommandSpec, HELP_OPTION, UsageError, parseCommand, usageLine } from './args.js';
import { compareToBaseline, formatComparison, loadBaseline, parseTolerance, saveBaseline } from '../verdict/baseline.js';
import { findScenarios } from '../scenario/catalogue.js';
import { CLEANUP, cleanupCommand } from './cleanup.js';
import { ToolMissingError } from '../net/exec.js';
import { checkOutputDir, checkOutputFile, OutputError, writeOutput } from './output-paths.js';
import { Progress } from './progress.js';
import { formatRepeatStats, repeatStatsByScenario } from '../verdict/repeat-stats.js';
import { exitCodeFor, readJsonReport, writeJsonReport } from '../report/json.js';
import { writeHtmlReport } from '../report/html.js';
import { writeJunitReport } from '../report/junit.js';
import { renderResultsTable } from '../report/table.js';
import { runScenario } from '../run/runner.js';
import { backendFor } from './backends.js';
import { REPLAY, replayCommand } from './replay.js';
import { REPORT_COMPARE, reportCommand } from './report.js';
import { TRACE_ON, traceFolder, type TraceOn, type TraceOptions } from '../run/trace.js';
import { SCHEMA, schemaCommand } from './schema-command.js';
import { LIST, SHOW, listScenariosCommand, showCommand } from './show.js';
import { applyOverrides, InputError } from '../scenario/scenario.js';
import { didYouMean, quote } from '../scenario/schema.js';
import { parseShard, shardScenarios } from '../scenario/shard.js';
import type { Scenario, ScenarioResult } from '../scenario/types.js';

const EXIT_CODES = [
  'exit codes: 0 every scenario passed (unsupported allowed), 1 an expectation failed or a baseline regression,',
  '            2 an error (bad input, a missing tool, a setup failure) with a message that says what to do',
];

/** The options `run` and `baseline save` share: every line of `run --help`. */
const RUN_OPTIONS = {
  backend: {
    type: 'string', default: 'engine', choices: ['engine', 'qemu'],
    help: 'run the VMs on the migration engine, or on real qemu-system-x86_64 (KVM when usable, TCG otherwise)',
  },
  qemu: { type: 'string', arg: 'PATH', help: 'the QEMU binary for --backend qemu (default: qemu-system-x86_64 on PATH)' },
  set: {
    type: 'string', multiple: true, default: [] as string[], arg: 'KEY=VALUE',
    help: 'change a scenario setting without editing files (`switchover show SCENARIO` lists every key)',
  },
  json: { type: 'string', arg: 'FILE', help: 'write the results as JSON: { format, generatedAt, summary, results }' },
  junit: { type: 'string', arg: 'FILE', help: 'write JUnit XML, one testcase per scenario run' },
  report: { type: 'string', arg: 'FILE', help: 'write a self-contained HTML report with a timeline per scenario' },
  'keep-pcaps': { type: 'string', arg: 'DIR', help: 'keep every capture, as DIR/SCENARIO/POINT.pcap' },
  trace: { type: 'string', arg: 'DIR', help: 'write a trace folder per scenario run into DIR, to re-analyze or replay it (see --trace-on)' },
  'trace-on': {
    type: 'string', default: 'failure', choices: TRACE_ON,
    help: 'with --trace: keep the trace of runs that did not pass only, or of every run',
  },
  shard: { type: 'string', arg: 'K/N', help: 'run only part K of N of the selection, the same split on every machine (docs/ci/)' },
  repeat: { type: 'string', default: '1', arg: 'N', help: 'run each scenario N times (1..1000) and print flakiness statistics' },
  baseline: { type: 'string', arg: 'FILE', help: 'compare with a saved baseline; a regression beyond the tolerance exits 1' },
  tolerance: {
    type: 'string', arg: 'SPEC',
    help: 'regression tolerances for --baseline: loss=N,outage=N%|Nms,downtime=N%|Nms,throughput=N%',
  },
  help: HELP_OPTION,
} as const;

export const RUN: CommandSpec<typeof RUN_OPTIONS> = {
  name: 'run', args: '[SCENARIO|FILE...]',
  summary: 'Run scenarios (catalogue names, `*` wildcards, .ts/.js/.json files; all of the catalogue when none is named), judge each against its expectations, exit non-zero on a failure.',
  options: RUN_OPTIONS,
  notes: EXIT_CODES,
};

const BASELINE_OPTIONS = {
  from: { type: 'string', arg: 'RESULTS.json', help: 'save the results of an earlier `run --json` instead of running' },
  ...RUN_OPTIONS,
} as const;
const BASELINE: CommandSpec<typeof BASELINE_OPTIONS> = {
  name: 'baseline save', args: 'OUT.json [SCENARIO|FILE...]',
  summary: 'Save a baseline for `run --baseline`: run the scenarios (with any run option) and save their figures, or save those of --from.',
  options: BASELINE_OPTIONS,
  notes: EXIT_CODES,
};

type RunValues = NonNullable<ReturnType<typeof parseCommand<typeof RUN_OPTIONS>>>['values'];

async function runCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(RUN, argv);
  return parsed ? runAndReport(parsed.values, parsed.positionals) : 0;
}

async function baselineCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(BASELINE, argv);
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  const [verb, outFile, ...names] = positionals;
  if (verb !== 'save' || !outFile) throw new UsageError('expected `switchover baseline save OUT.json ...`', BASELINE);
  checkOutputFile('baseline save', outFile);
  if (values.from === undefined) return runAndReport(values, names, outFile);
  const { results } = readJsonReport(values.from);
  await writeOutput('baseline save', outFile, (f) => saveBaseline(results, f));
  process.stdout.write(`baseline of ${results.length} scenario(s) saved to ${outFile}\n`);
  return 0;
}

/** Runs the scenarios `names` select, writes the outputs asked for, and saves a baseline to `baselineOut`. */
async function runAndReport(values: RunValues, names: string[], baselineOut?: string): Promise<number> {
  // Every output path is checked before anything is built: a path that cannot be written
  // must not cost a run, nor turn up only once the results exist.
  for (const option of ['json', 'junit', 'report'] as const) {
    const file = values[option];
    if (file !== undefined) checkOutputFile(`--${option}`, file);
  }
  for (const option of ['keep-pcaps', 'trace'] as const) {
    const dir = values[option];
    if (dir !== undefined) checkOutputDir(`--${option}`, dir);
  }
  const repeat = Number(values.repeat);
  if (!Number.isInteger(repeat) || repeat < 1 || repeat > 1000) throw new UsageError(`--repeat ${values.repeat}: expected an integer 1..1000`, RUN);
  const tolerance = values.tolerance ? parseTolerance(values.tolerance) : undefined;
  const baseline = values.baseline ? await loadBaseline(values.baseline) : undefined;
  const backend = await backendFor(values.backend, values.qemu, RUN);

  // Everything is validated before the first VM starts: a bad file or --set never runs.
  let scenarios = await findScenarios(names);
  if (values.set.length) scenarios = scenarios.map((s) => applyOverrides(s, values.set));
  if (values.shard) scenarios = shardScenarios(scenarios, parseShard(values.shard));
  // The trace's rerun command runs from inside its folder: a relative --qemu path would not.
  const backendArgs = values.backend === 'engine' ? [] : ['--backend', values.backend, ...(values.qemu ? ['--qemu', resolve(values.qemu)] : [])];
  const traceErrors: string[] = [];
  const traceDir = values.trace;
  const traceOf = (s: Scenario, r: number): { trace?: TraceOptions } => (traceDir === undefined ? {} : {
    trace: {
      dir: traceFolder(traceDir, s.name, backend.name, r + 1, repeat), on: values['trace-on'] as TraceOn, backendArgs,
      onError: (message) => traceErrors.push(message),
    },
  });

  const progress = new Progress();
  const results: ScenarioResult[] = [];
  const total = scenarios.length * repeat;
  let i = 0;
  try {
    for (const s of scenarios) {
      for (let r = 0; r < repeat; r++) {
        progress.scenarioStart(s.name, ++i, total);
        const res = await runScenario(s, { backend, ...(values['keep-pcaps'] ? { keepPcapsDir: values['keep-pcaps'] } : {}), ...traceOf(s, r), progress });
        progress.scenarioEnd(res.verdict);
        results.push(res);
      }
    }
  } finally {
    // A run that throws leaves the terminal on a clean line, with no clock ticking.
    progress.close();
  }
  process.stdout.write(renderResultsTable(results));
  if (repeat > 1) for (const st of repeatStatsByScenario(results)) process.stdout.write(`${formatRepeatStats(st)}\n`);
  // Per-packet marks go to the HTML report; the JSON keeps the numbers, the lost seqs and the
  // report's aggregated marks (for `report compare`).
  // A write that fails costs that file only: the others are written, and its text is kept.
  const unwritten: string[] = [...traceErrors];
  const output = async (option: string, file: string | undefined, write: (f: string) => unknown): Promise<void> => {
    if (file === undefined) return;
    await writeOutput(option, file, write).catch((e: unknown) => {
      if (!(e instanceof OutputError)) throw e;
      unwritten.push(e.message);
    });
  };
  await output('--json', values.json, (f) => writeJsonReport(f, results, { packets: false }));
  await output('--junit', values.junit, (f) => writeJunitReport(f, results));
  await output('--report', values.report, (f) => writeHtmlReport(f, results));
  let code = exitCodeFor(results);
  if (baseline) {
    const cmp = compareToBaseline(results, baseline, tolerance);
    process.stdout.write(`${formatComparison(cmp)}\n`);
    if (cmp.regressions.length && code === 0) code = 1;
  }
  if (baselineOut) {
    const before = unwritten.length;
    await output('baseline save', baselineOut, (f) => saveBaseline(results, f));
    if (unwritten.length === before) process.stdout.write(`baseline saved to ${baselineOut}\n`);
  }
  for (const line of unwritten) process.stderr.write(`switchover: ${line}\n`);
  return unwritten.length ? 2 : code;
}

type Command = Pick<CommandSpec, 'name' | 'args' | 'summary'> & { run: (argv: string[]) => number | Promise<number> };
/** The word after `switchover` that picks a command (`baseline` for `baseline save`). */
const commandWord = (c: Pick<CommandSpec, 'name'>): string => c.name.split(' ')[0]!;

/** Every subcommand, in the order `switchover --help` lists them: a new one is one line here. */
const COMMANDS: readonly Command[] = [
  { ...RUN, run: runCommand },
  { ...LIST, run: listScenariosCommand },
  { ...SHOW, run: showCommand },
  { ...SCHEMA, run: schemaCommand },
  { ...REPLAY, run: replayCommand },
  { ...ANALYZE, run: analyzeCommand },
  { ...REPORT_COMPARE, run: reportCommand },
  { ...BASELINE, run: baselineCommand },
  { ...CLEANUP, run: cleanupCommand },
];
/** bin/switchover.js starts the engine for `vm` before this module loads; it is listed for --help. */
const VM_LINE = { usage: 'switchover vm [QEMU-style options]', summary: 'The engine VM, a QEMU-shaped command line (README: "The engine VM").' };

function mainHelp(): string {
  const rows = [...COMMANDS.map((c) => ({ usage: usageLine(c), summary: c.summary })), VM_LINE];
  return ['usage: switchover COMMAND ...', '', 'commands:', ...rows.flatMap((r) => [`  ${r.usage}`, `      ${r.summary}`]), '',
    '`switchover COMMAND --help` describes every option of a command.', ...EXIT_CODES].join('\n') + '\n';
}

async function dispatch(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined) { process.stderr.write(mainHelp()); return 2; }
  if (cmd === 'help' || cmd === '--help' || cmd === '-h') { process.stdout.write(mainHelp()); return 0; }
  const command = COMMANDS.find((c) => commandWord(c) === cmd);
  if (!command) {
    const guess = didYouMean(cmd, COMMANDS.map(commandWord));
    throw new UsageError(`unknown command ${quote(cmd)}${guess ? `; did you mean "${guess}"?` : ''} (\`switchover --help\` lists the commands)`);
  }
  return command.run(rest);
}

/**
 * `switchover run ... | head`: once the reader of stdout or stderr has gone, what is written
 * there is dropped, not fatal. Node ignores SIGPIPE, so the write fails with EPIPE; unhandled,
 * that is an uncaught exception in the middle of a run (and its report on the same closed
 * stderr fails again). The run goes on, tears down, writes its files and exits with its
 * verdict's code.
 */
export function toleratePipeClose(): void {
  for (const s of [process.stdout, process.stderr]) {
    if (s.listenerCount('error') === 0) s.on('error', (e: NodeJS.ErrnoException) => { if (e.code !== 'EPIPE') throw e; });
  }
}

export async function main(argv: string[]): Promise<void> {
  toleratePipeClose();
  let code: number;
  try {
    code = await dispatch(argv);
  } catch (e) {
    const err = e as Error;
    if (err instanceof UsageError) {
      const help = err.command ? `usage: ${usageLine(err.command)}  (\`switchover ${commandWord(err.command)} --help\` describes every option)\n` : '';
      process.stderr.write(`switchover: ${err.message}\n${help}`);
    } else if (err instanceof InputError || err instanceof ToolMissingError || err instanceof OutputError) {
      process.stderr.write(`switchover: ${err.message}\n`);
    } else {
      process.stderr.write(`switchover: ${err.stack ?? err.message}\n`);
    }
    code = 2;
  }
  process.exitCode = code;
}
