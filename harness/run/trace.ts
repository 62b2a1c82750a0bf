// A trace folder per scenario run (`switchover run --trace DIR [--trace-on failure|always]`),
// as Playwright keeps a trace per test: recorded on every run, kept when the run failed or
// errored (or always), so a bug report is one folder. It holds:
//
//   README.md                the one command to rerun it, and what each file is
//   scenario.json            the scenario as it ran (defaults and --set applied): `switchover run` takes it
//   result.json              the result, as `--json` writes it (with per-packet marks)
//   trace.json               what re-judging needs (judge.ts inputs, captures by interface), and
//                            notes on anything the trace could not record
//   timeline.json            t0, the runner's phases, marks and QMP events (ms since the epoch)
//   IFACE.pcap               each capture point, named by its interface
//   VM.argv.json, VM.log     each VM's command line and log (QEMU: also VM.console.log)
//   VM.qmp.jsonl             each VM's QMP transcript: greeting, commands, replies, events
//   topology-before.json     per netns: `ip -d -j link`, `bridge -j fdb`, `ip -j neigh`,
//   topology-after.json      before the traffic and as the run ended
//   counters.json            the kernel counters (kernel-counters.ts) before, after, delta
//   versions.json            kernel, backend and accelerator, Node, switchover and its git revision
//
// Every time is ms since the epoch on the harness's clock (lib/qmp-client.ts nowMs), the clock
// of the pcaps' timestamps. Once the folder is open, recording never fails the run: what could
// not be recorded is a note in trace.json, and a folder that cannot be written goes to `onError`.
// A run that never built its network (an unsupported scenario, a failed probe) leaves no trace:
// its result says why.
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { release, version as kernelVersion } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildJsonReport } from '../report/json.js';
import { formatArgv, run } from '../net/exec.js';
import type { KernelCounters } from '../net/kernel-counters.js';
import type { NsRole, Topology } from '../net/topology.js';
import type { CaptureAnalysisInput, JudgeInput } from './judge.js';
import type { RunVmHooks } from './run-vms.js';
import type { Timeline } from './timeline.js';
import type { QmpTranscriptEntry } from '../../lib/qmp-client.js';
import type { Scenario, ScenarioResult, VmHandle } from '../scenario/types.js';

export type TraceOn = 'failure' | 'always';
export const TRACE_ON: readonly TraceOn[] = ['failure', 'always'];
export const TRACE_FORMAT = 'switchover-trace/1';

export interface TraceOptions {
  /** This scenario run's folder (traceFolder()). */
  dir: string;
  on: TraceOn;
  /** The backend options to rerun with: `--backend qemu --qemu PATH`. */
  backendArgs: string[];
  /** What went wrong when the folder could not be written. */
  onError?: (message: string) => void;
}

/** What a trace keeps for `switchover analyze DIR` (trace.json). Files are relative to the folder. */
export interface TraceManifest {
  format: typeof TRACE_FORMAT;
  scenario: string;
  backend: string;
  backendArgs: string[];
  runId: string;
  captures: Array<{ point: string; ns: NsRole; iface: string; file: string }>;
  /** Absent when the run ended before its captures were analysed. */
  analysis?: CaptureAnalysisInput;
  judging?: Omit<JudgeInput, 'expectations' | 'flows'>;
  teardownErrors: string[];
  notes: string[];
}

/** DIR/<scenario>[-<backend>][-<repeat>]: the backend when it is not the engine, the repeat when there are several. */
export function traceFolder(dir: string, scenario: string, backend: string, repeat: number, repeats: number): string {
  return join(dir, `${scenario}${backend === 'engine' ? '' : `-${backend}`}${repeats > 1 ? `-${repeat}` : ''}`);
}

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

export class TraceRecorder {
  private readonly notes: string[] = [];
  private readonly transcripts = new Map<string, QmpTranscriptEntry[]>();
  private captureList: TraceManifest['captures'] = [];
  private sources = new Map<string, string>();
  private analysis?: CaptureAnalysisInput;
  private judged?: TraceManifest['judging'];

  private constructor(private readonly opts: TraceOptions, private readonly topo: Topology) {}

  /** Prepare the folder (a former trace there is replaced) and write the scenario as it runs. */
  static async open(opts: TraceOptions, s: Scenario, topo: Topology): Promise<TraceRecorder> {
    const { dir } = opts;
    if (existsSync(dir) && readdirSync(dir).length) {
      if (!existsSync(join(dir, 'trace.json'))) throw new Error(`--trace: ${dir} exists and is not a trace folder; give --trace an empty or new directory`);
      rmSync(dir, { recursive: true, force: true });
    }
    mkdirSync(dir, { recursive: true });
    writeJson(join(dir, 'scenario.json'), s);
    return new TraceRecorder(opts, topo);
  }

  /** The run's VM hooks: each VM's QMP transcript from the greeting on. */
  launchHooks(): RunVmHooks {
    return {
      qmpTranscript: (name) => {
        const list: QmpTranscriptEntry[] = [];
        this.transcripts.set(name, list);
        return (e) => { list.push(e); };
      },
    };
  }

  captures(list: Array<{ point: string; ns: NsRole; iface: string; file: string }>): void {
    this.captureList = list.map((c) => ({ ...c, file: `${c.iface}.pcap` }));
    for (const c of list) this.sources.set(`${c.iface}.pcap`, c.file);
  }

  /** The network in each netns of the run, as JSON from iproute2. */
  async topology(when: 'before' | 'after'): Promise<void> {
    const snap: Record<string, unknown> = {};
    for (const ns of ['host', 'client'] as const) {
      const views: Record<string, unknown> = { netns: this.topo.nsName(ns) };
      for (const [key, argv] of [['link', ['ip', '-d', '-j', 'link', 'show']], ['fdb', ['bridge', '-j', 'fdb', 'show']], ['neigh', ['ip', '-j', 'neigh', 'show']]] as const) {
        try {
          const out = (await this.topo.exec(ns, argv)).stdout;
          views[key] = out.trim() ? JSON.parse(out) : [];
        } catch (e) {
          this.note(`topology ${when}: ${formatArgv(argv)} in ${ns}: ${(e as Error).message}`);
        }
      }
      snap[ns] = views;
    }
    this.write(`topology-${when}.json`, snap);
  }

  counters(c: { before: KernelCounters; after: KernelCounters; delta: KernelCounters }): void {
    this.write('counters.json', c);
  }

  /** The inputs the runner judged with, captures renamed to the trace's files. */
  judging(analysis: CaptureAnalysisInput, judging: JudgeInput): void {
    const named = (f: { iface: string; file: string }): { iface: string; file: string } => ({ iface: f.iface, file: `${f.iface}.pcap` });
    this.analysis = { ...analysis, client: named(analysis.client), taps: analysis.taps.map(named) };
    const { expectations: _e, flows: _f, ...rest } = judging;
    this.judged = rest;
  }

  /** The pcaps and every log of the run directory (also of a VM that failed to launch), and
   * the launched VMs' command lines, before the topology's teardown removes that directory. */
  copyRunFiles(vms: readonly VmHandle[]): void {
    for (const [name, from] of this.sources) this.copy(from, name);
    let logs: string[] = [];
    try {
      logs = readdirSync(this.topo.runDir).filter((f) => f.endsWith('.log'));
    } catch (e) {
      this.note(`logs: cannot list the run directory ${this.topo.runDir}: ${(e as Error).message}`);
    }
    for (const f of logs) this.copy(join(this.topo.runDir, f), f);
    for (const vm of vms) this.write(`${vm.spec.name}.argv.json`, vm.argv);
  }

  /** Write the rest and keep the folder, or remove it when the run passed and only failures are kept. */
  async finish(result: ScenarioResult, timeline: Timeline, teardownErrors: string[]): Promise<void> {
    const { dir, on } = this.opts;
    if (on === 'failure' && result.verdict !== 'fail' && result.verdict !== 'error') {
      rmSync(dir, { recursive: true, force: true });
      return;
    }
    try {
      result.trace = dir;
      for (const [name, entries] of this.transcripts) {
        writeFileSync(join(dir, `${name}.qmp.jsonl`), entries.map((e) => JSON.stringify(e)).join('\n') + (entries.length ? '\n' : ''));
      }
      writeJson(join(dir, 'timeline.json'), timeline.absolute());
      writeJson(join(dir, 'versions.json'), await versions(result));
      writeJson(join(dir, 'result.json'), buildJsonReport([result], { packets: true }));
      const manifest: TraceManifest = {
        format: TRACE_FORMAT, scenario: result.scenario, backend: result.backend, backendArgs: this.opts.backendArgs,
        runId: this.topo.runId, captures: this.captureList.filter((c) => existsSync(join(dir, c.file))),
        ...(this.analysis ? { analysis: this.analysis } : {}), ...(this.judged ? { judging: this.judged } : {}),
        teardownErrors, notes: this.notes,
      };
      writeJson(join(dir, 'trace.json'), manifest);
      writeFileSync(join(dir, 'README.md'), readme(result, manifest, readdirSync(dir)));
    } catch (e) {
      delete result.trace;
      this.opts.onError?.(`--trace ${dir}: cannot write the trace: ${(e as Error).message}`);
    }
  }

  private copy(from: string, name: string): void {
    try {
      copyFileSync(from, join(this.opts.dir, name));
    } catch (e) {
      this.note(`${name}: not copied from ${from}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }

  private write(name: string, value: unknown): void {
    try {
      writeJson(join(this.opts.dir, name), value);
    } catch (e) {
      this.note(`${name}: not written: ${(e as Error).message}`);
    }
  }

  private note(line: string): void { this.notes.push(line); }
}

function writeJson(file: string, value: unknown): void {
  writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
}

/** What ran: the kernel, the backend as it introduced itself, Node, switchover and its revision. */
async function versions(result: ScenarioResult): Promise<Record<string, unknown>> {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  let git: { revision: string; dirty: boolean } | undefined;
  if (existsSync(join(ROOT, '.git'))) {
    try {
      const rev = await run(['git', '-C', ROOT, 'rev-parse', 'HEAD']);
      const status = await run(['git', '-C', ROOT, 'status', '--porcelain', '--untracked-files=no']);
      git = { revision: rev.stdout.trim(), dirty: status.stdout.trim() !== '' };
    } catch {
      git = undefined; // no git on this machine: the package version is what there is
    }
  }
  return {
    kernel: { release: release(), version: kernelVersion() },
    backend: { name: result.backend, version: result.backendVersion ?? null, accelerator: result.accelerator ?? null },
    node: process.version,
    switchover: { version: pkg.version, ...(git ? { git } : {}) },
  };
}

const FILES: Array<[RegExp, string]> = [
  [/^scenario\.json$/, 'the scenario as it ran, defaults and --set applied'],
  [/^result\.json$/, 'the result, as `switchover run --json` writes it'],
  [/^trace\.json$/, 'what `switchover analyze` re-judges with; notes on anything not recorded'],
  [/^timeline\.json$/, 't0, phases, marks and QMP events, ms since the epoch'],
  [/^versions\.json$/, 'kernel, backend, accelerator, Node, switchover and git revision'],
  [/^counters\.json$/, 'kernel counters before and after the traffic, and the difference'],
  [/^topology-before\.json$/, '`ip -d -j link`, `bridge -j fdb`, `ip -j neigh` per netns, before the traffic'],
  [/^topology-after\.json$/, 'the same, as the run ended'],
  [/\.pcap$/, 'capture'],
  [/\.argv\.json$/, 'VM command line'],
  [/\.qmp\.jsonl$/, 'QMP transcript: one {t, dir, msg} per line'],
  [/\.console\.log$/, 'guest serial console'],
  [/\.log$/, 'VM log'],
];

function readme(result: ScenarioResult, m: TraceManifest, files: string[]): string {
  const point = new Map(m.captures.map((c) => [c.file, `capture at ${c.point} (${c.ns} netns)`]));
  const rows = files.filter((f) => f !== 'README.md').sort().map((f) => {
    const what = point.get(f) ?? FILES.find(([re]) => re.test(f))?.[1] ?? '';
    return `| \`${f}\` | ${what} |`;
  });
  return [
    `# ${result.scenario} on ${result.backend}: ${result.verdict}`,
    '',
    ...(result.reason ? [result.reason, ''] : []),
    `Run ${m.runId}, started ${result.startedAt}.`,
    '',
    '## Rerun it',
    '',
    'From this folder:',
    '',
    `    ${formatArgv(['switchover', 'run', './scenario.json', ...m.backendArgs])}`,
    '',
    '`switchover replay .` does the same and prints both results side by side;',
    '`switchover analyze .` re-judges this trace offline from its captures, with the run\'s parameters.',
    '',
    '## Files',
    '',
    '| file | what |',
    '| --- | --- |',
    ...rows,
    '',
    'Times are ms since the epoch on the harness clock, the clock of the pcap timestamps;',
    `t0 (hop 1's \`migrate\`) is in timeline.json.`,
    ...(m.notes.length ? ['', '## Not recorded', '', ...m.notes.map((n) => `- ${n}`)] : []),
    '',
  ].join('\n');
}
