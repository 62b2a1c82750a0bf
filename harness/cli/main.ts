// The `switchover` command line (DESIGN.md contract). `switchover vm` is dispatched to the
// engine by bin/switchover.js before this module loads.
//
// Exit codes: 0 all pass (unsupported allowed), 1 a failed expectation, 2 an error (bad input,
// missing tool, setup failure) with a message that says what to do.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { analyzeCommand } from './analyze.js';
import { joinDashValues, valuedOptions } from './args.js';
import { compareToBaseline, formatComparison, loadBaseline, parseTolerance, saveBaseline } from '../verdict/baseline.js';
import { findScenarios, listCommand, loadCatalogue } from '../scenario/catalogue.js';
import { cleanupCommand } from './cleanup.js';
import { ToolMissingError } from '../net/exec.js';
import { checkOutputDir, checkOutputFile, OutputError, writeOutput } from './output-paths.js';
import { Progress } from './progress.js';
import { formatRepeatStats, repeatStatsByScenario } from '../verdict/repeat-stats.js';
import { exitCodeFor, writeJsonReport, type JsonReport } from '../report/json.js';
import { writeHtmlReport } from '../report/html.js';
import { writeJunitReport } from '../report/junit.js';
import { renderResultsTable } from '../report/table.js';
import { runScenario } from '../run/runner.js';
import { applyOverrides, InputError } from '../scenario/scenario.js';
import { parseShard, shardScenarios } from '../scenario/shard.js';
import type { ScenarioResult, VmBackend } from '../scenario/types.js';

const USAGE = `usage:
  switchover run [SCENARIO|FILE...] [--backend engine|qemu] [--qemu PATH] [--set KEY=VALUE]...
                 [--json FILE] [--junit FILE] [--report FILE] [--keep-pcaps DIR]
                 [--shard K/N] [--repeat N] [--baseline FILE] [--tolerance SPEC]
  switchover list
  switchover analyze PCAP [--json]
  switchover baseline save OUT.json (--from RESULTS.json | [SCENARIO...] [run options])
  switchover cleanup [--dry-run] [RUN-ID...]  remove what killed runs left behind
  switchover vm [QEMU-style options]       the engine VM (see README)
`;

class UsageError extends Error {}

const RUN_OPTIONS = {
  backend: { type: 'string', default: 'engine' },
  qemu: { type: 'string' },
  set: { type: 'string', multiple: true, default: [] as string[] },
  json: { type: 'string' },
  junit: { type: 'string' },
  report: { type: 'string' },
  'keep-pcaps': { type: 'string' },
  shard: { type: 'string' },
  repeat: { type: 'string', default: '1' },
  baseline: { type: 'string' },
  tolerance: { type: 'string' },
  from: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

async function backendFor(name: string, qemuPath: string | undefined): Promise<VmBackend> {
  if (name === 'engine') {
    if (qemuPath) throw new UsageError('--qemu only applies to --backend qemu');
    return (await import('../vm/engine.js')).engineBackend;
  }
  if (name === 'qemu') return (await import('../vm/qemu.js')).qemuBackend(qemuPath ? { binary: qemuPath } : {});
  throw new UsageError(`--backend ${JSON.stringify(name)}: expected engine or qemu`);
}

async function runCommand(argv: string[], mode: 'run' | 'baseline'): Promise<number> {
  const { values, positionals } = parseArgs({
    args: joinDashValues(argv, valuedOptions(RUN_OPTIONS)), options: RUN_OPTIONS, allowPositionals: true, strict: true,
  });
  if (values.help) { process.stdout.write(USAGE); return 0; }
  let outFile: string | undefined;
  if (mode === 'baseline') {
    if (positionals[0] !== 'save' || !positionals[1]) throw new UsageError('switchover baseline save OUT.json [--from RESULTS.json | SCENARIO...]');
    outFile = positionals[1];
    checkOutputFile('baseline save', outFile);
    positionals.splice(0, 2);
    if (values.from) {
      let report: JsonReport;
      try {
        report = JSON.parse(readFileSync(values.from, 'utf8')) as JsonReport;
      } catch (e) {
        throw new UsageError(`--from ${values.from}: cannot read a results file: ${(e as Error).message}`);
      }
      if (!Array.isArray(report?.results)) throw new UsageError(`${values.from}: not a switchover --json results file (no "results" array)`);
      const { results } = report;
      await writeOutput('baseline save', outFile, (f) => saveBaseline(results, f));
      process.stdout.write(`baseline of ${results.length} scenario(s) saved to ${outFile}\n`);
      return 0;
    }
  }
  // Every output path is checked before anything is built: a path that cannot be written
  // must not cost a run, nor turn up only once the results exist.
  for (const option of ['json', 'junit', 'report'] as const) {
    const file = values[option];
    if (file !== undefined) checkOutputFile(`--${option}`, file);
  }
  if (values['keep-pcaps'] !== undefined) checkOutputDir('--keep-pcaps', values['keep-pcaps']);
  const repeat = Number(values.repeat);
  if (!Number.isInteger(repeat) || repeat < 1 || repeat > 1000) throw new UsageError(`--repeat ${values.repeat}: expected an integer 1..1000`);
  const tolerance = values.tolerance ? parseTolerance(values.tolerance) : undefined;
  const baseline = values.baseline ? await loadBaseline(values.baseline) : undefined;
  const backend = await backendFor(values.backend, values.qemu);

  // Everything is validated before the first VM starts: a bad file or --set never runs.
  let scenarios = await findScenarios(positionals);
  if (values.set.length) scenarios = scenarios.map((s) => applyOverrides(s, values.set));
  if (values.shard) scenarios = shardScenarios(scenarios, parseShard(values.shard));

  const progress = new Progress();
  const results: ScenarioResult[] = [];
  const total = scenarios.length * repeat;
  let i = 0;
  for (const s of scenarios) {
    for (let r = 0; r < repeat; r++) {
      progress.scenarioStart(s.name, ++i, total);
      const res = await runScenario(s, { backend, ...(values['keep-pcaps'] ? { keepPcapsDir: values['keep-pcaps'] } : {}), progress });
      progress.scenarioEnd(res.verdict);
      results.push(res);
    }
  }
  process.stdout.write(renderResultsTable(results));
  if (repeat > 1) for (const st of repeatStatsByScenario(results)) process.stdout.write(`${formatRepeatStats(st)}\n`);
  // Per-packet marks go to the HTML report; the JSON keeps the numbers and the lost seqs.
  // A write that fails costs that file only: the others are written, and its text is kept.
  const unwritten: string[] = [];
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
  if (outFile) {
    const before = unwritten.length;
    await output('baseline save', outFile, (f) => saveBaseline(results, f));
    if (unwritten.length === before) process.stdout.write(`baseline saved to ${outFile}\n`);
  }
  for (const line of unwritten) process.stderr.write(`switchover: ${line}\n`);
  return unwritten.length ? 2 : code;
}

async function dispatch(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'run': return runCommand(rest, 'run');
    case 'baseline': return runCommand(rest, 'baseline');
    case 'list': process.stdout.write(listCommand(await loadCatalogue())); return 0;
    case 'analyze': return analyzeCommand(rest);
    case 'cleanup': return cleanupCommand(rest);
    case undefined: case 'help': case '--help': case '-h': process.stdout.write(USAGE); return cmd ? 0 : 2;
    default: throw new UsageError(`unknown command ${JSON.stringify(cmd)}`);
  }
}

export async function main(argv: string[]): Promise<void> {
  let code: number;
  try {
    code = await dispatch(argv);
  } catch (e) {
    const err = e as Error;
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`switchover: ${err.message}\n${USAGE}`);
    } else if (err instanceof InputError || err instanceof ToolMissingError || err instanceof OutputError) {
      process.stderr.write(`switchover: ${err.message}\n`);
    } else {
      process.stderr.write(`switchover: ${err.stack ?? err.message}\n`);
    }
    code = 2;
  }
  process.exitCode = code;
}
