// `switchover replay TRACE-DIR [--backend engine|qemu] [--qemu PATH] [--json FILE]`: runs the
// scenario of a trace folder (`run --trace`) again, here, exactly as it ran there (its
// scenario.json: defaults and --set already applied), on the trace's backend unless told
// otherwise, and prints the trace's result and the new one side by side. Exit code: the
// replay's, as `run` gives it.
import { type CommandSpec, HELP_OPTION, parseCommand, UsageError } from './args.js';
import { backendFor } from './backends.js';
import { sideBySide } from './analyze-trace.js';
import { checkOutputFile, writeOutput } from './output-paths.js';
import { Progress } from './progress.js';
import { exitCodeFor, writeJsonReport } from '../report/json.js';
import { runScenario } from '../run/runner.js';
import { readTrace } from '../run/trace-read.js';

const OPTIONS = {
  backend: { type: 'string', choices: ['engine', 'qemu'], help: 'run on this backend instead of the one the trace ran on' },
  qemu: { type: 'string', arg: 'PATH', help: 'the QEMU binary for --backend qemu (default: qemu-system-x86_64 on PATH)' },
  json: { type: 'string', arg: 'FILE', help: 'write the replay\'s result as `run --json` does (to compare: `switchover report compare`)' },
  help: HELP_OPTION,
} as const;

export const REPLAY: CommandSpec<typeof OPTIONS> = {
  name: 'replay', args: 'TRACE-DIR',
  summary: 'Run the scenario of a trace folder (`run --trace`) again here, as it ran there, and print both results side by side.',
  options: OPTIONS,
};

export async function replayCommand(argv: string[]): Promise<number> {
  const parsed = parseCommand(REPLAY, argv);
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  if (positionals.length !== 1) throw new UsageError(`expected one trace folder, got ${positionals.length}`, REPLAY);
  if (values.json !== undefined) checkOutputFile('--json', values.json);
  const trace = await readTrace(positionals[0]!);
  const backend = await backendFor(values.backend ?? trace.result.backend, values.qemu, REPLAY);
  const progress = new Progress();
  let again: Awaited<ReturnType<typeof runScenario>>;
  try {
    progress.scenarioStart(trace.scenario.name, 1, 1);
    again = await runScenario(trace.scenario, { backend, progress });
    progress.scenarioEnd(again.verdict);
  } finally {
    progress.close();
  }
  process.stdout.write(sideBySide(trace.result, again, [`trace (${trace.result.startedAt})`, 'replay (here)']));
  if (values.json !== undefined) await writeOutput('--json', values.json, (f) => writeJsonReport(f, [again], { packets: false }));
  return exitCodeFor([again]);
}
