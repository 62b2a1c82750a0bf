// `switchover analyze CAPTURE|DIR... [--json] [--separate] [--sender-log FILE]... [--in-flight-window MS] [--t0 EPOCH_MICROS] [--deadline MS]`:
// offline analysis of any pcap or pcapng (Ethernet, Linux SLL, SLL2), including captures made
// elsewhere. Several files, and the captures in a folder, are capture points of one run merged
// into one account of each packet (analyzer.ts), which says where each lost packet was last
// seen; --separate analyses each file on its own instead. Prints a per-flow table, or the
// PcapAnalysis as JSON (with --separate and several files, an array of them). --sender-log
// gives ping's output or the UDP generator's summary: the request-stream holes it says were
// sent count as lost. --deadline gives each flow lostOrLate, as a scenario's deadlineMs does.
// Exit 0 on success, 2 on a missing or unreadable capture or bad arguments, with a message
// that says what to do.
// A trace folder (`run --trace`) instead is re-judged as the run judged it (analyze-trace.ts).
import { type CommandSpec, HELP_OPTION, parseCommand, UsageError, usageLine } from './args.js';
import { analyzeTraceCommand } from './analyze-trace.js';
import { isTraceDir } from '../run/trace-read.js';
import { stat } from 'node:fs/promises';
import {
  AnalysisLimitError, analyzeCaptures, captureFilesIn, type CaptureFile, type CaptureFileSummary, type PcapAnalysis, type PcapFlow, type SenderLog,
} from '../capture/analyzer.js';
import { PcapFormatError } from '../capture/capture-file.js';
import { readSenderLog } from '../capture/sender-log.js';
import { fmtMs, formatSeqs, renderFlowTable } from '../report/table.js';
import { InputError, quote } from '../scenario/schema.js';
import { parseDeadlineMs } from '../scenario/scenario.js';

const LINK_NAMES: Record<number, string> = { 1: 'Ethernet', 113: 'Linux SLL', 276: 'Linux SLL2' };

/** "Ethernet", or for pcapng "pcapng, Ethernet (if eth0)". */
function formatOf(f: CaptureFileSummary): string {
  const link = LINK_NAMES[f.linkType] ?? `link type ${f.linkType}`;
  if (f.format === 'pcap') return link;
  const named = f.interfaces.filter((i) => i.name !== undefined).map((i) => i.name);
  return `pcapng, ${f.interfaces.length === 1 ? link : `${f.interfaces.length} interfaces`}${named.length ? ` (if ${named.join(', ')})` : ''}`;
}

/** What is wrong with one file: cut short, trailing bytes, skipped interfaces, capture drops. */
function fileWarnings(f: CaptureFileSummary, prefix: string): string[] {
  const out: string[] = [];
  if (f.truncated) out.push(`  warning: ${prefix}the last record is cut short (capture killed mid-write); it was skipped`);
  if (f.trailing) {
    out.push(`  warning: ${prefix}the ${f.trailing.bytes} bytes from offset ${f.trailing.offset} are not pcap records (${f.trailing.reason}); they were not read`);
  }
  f.interfaces.forEach((i, n) => {
    const which = `interface ${n}${i.name !== undefined ? ` (${i.name})` : ''}`;
    if (!i.decoded && i.packets) out.push(`  warning: ${prefix}${which} has link type ${i.linkType}, which is not decoded: its ${i.packets} packets were skipped`);
    if (i.droppedByKernel) out.push(`  warning: ${prefix}${which}: the capture itself dropped ${i.droppedByKernel} packets; some loss may be the capture's`);
  });
  return out;
}

function lastSeenLine(f: PcapFlow): string | undefined {
  if (!f.lastSeen?.length) return undefined;
  return `  ${f.flow}: lost, last seen ${f.lastSeen.map((g) => `${g.where === null ? 'nowhere' : `at ${g.where} (${g.as})`}: ${g.count} ${formatSeqs(g.seqs)}`).join('; ')}`;
}

function renderAnalysis(a: PcapAnalysis): string {
  const dur = ((a.endMs - a.startMs) / 1000).toFixed(2);
  const merged = a.files.length > 1 || a.points.length > 1;
  const out = [merged
    ? `${a.file}: ${a.points.length} capture points, ${a.packets} packets over ${dur} s`
    : `${a.file}: ${formatOf(a.files[0]!)}, ${a.packets} packets over ${dur} s`];
  if (merged) {
    for (const p of a.points) {
      const where = [a.files.length > 1 ? p.file : '', p.ifName !== undefined ? `if ${p.ifName}` : '', p.ifindex !== undefined ? `ifindex ${p.ifindex}` : ''].filter(Boolean);
      out.push(`  point ${p.name}: ${LINK_NAMES[p.linkType] ?? `link type ${p.linkType}`}, ${p.packets} packets from ${fmtMs(p.startMs)} to ${fmtMs(p.endMs)} ms${where.length ? ` (${where.join(', ')})` : ''}`);
    }
  }
  for (const f of a.files) out.push(...fileWarnings(f, a.files.length > 1 ? `${f.file}: ` : ''));
  if (a.flows.length) out.push(renderFlowTable(a.flows.map((flow) => ({ flow }))));
  else out.push('  no ICMP echo or sequenced UDP flows found');
  for (const f of a.flows) {
    if (f.lost) out.push(`  ${f.flow}: lost seqs ${formatSeqs(f.lostSeqs)}`);
    const seen = lastSeenLine(f);
    if (seen) out.push(seen);
    if (f.notOnWire) {
      out.push(`  ${f.flow}: never on the wire ${formatSeqs(f.notOnWireSeqs)}: ${f.sentConfirmedBy
        ? `sent per ${f.sentConfirmedBy}, so counted as lost`
        : 'not counted as lost; give the sender\'s log (--sender-log) to count those it sent'}`);
    }
    if (f.delayed) out.push(`  ${f.flow}: delayed seqs ${formatSeqs(f.delayedSeqs)}`);
    if (f.inFlight) out.push(`  ${f.flow}: in flight at the end (not loss) ${formatSeqs(f.inFlightSeqs)}`);
    if (f.outageStartMs !== null) out.push(`  ${f.flow}: outage ${fmtMs(f.outageMs)} ms, from ${fmtMs(f.outageStartMs)} to ${fmtMs(f.outageEndMs!)} ms`);
  }
  if (a.announces.length) {
    const rarp = a.announces.filter((x) => x.kind === 'rarp').length;
    out.push(`  announces: ${a.announces.length} (${rarp} RARP, ${a.announces.length - rarp} gratuitous ARP) at ${a.announces.map((x) => fmtMs(x.t)).join(', ')} ms`);
  }
  if (a.unsequencedUdpFlows) out.push(`  ${a.unsequencedUdpFlows} UDP flow(s) ignored: payload is not a switchover sequence`);
  out.push(`  times in ms from t0 = ${new Date(a.t0Micros / 1000).toISOString()}; in flight = unanswered close to the capture's end, not loss`);
  return out.join('\n');
}

const OPTIONS = {
  json: { type: 'boolean', default: false, help: 'print the PcapAnalysis as JSON (flows in the shape of a run\'s traffic[])' },
  separate: { type: 'boolean', default: false, help: 'analyse each file on its own instead of as capture points of one run' },
  'sender-log': {
    type: 'string', multiple: true, arg: 'FILE',
    help: 'ping\'s output or the UDP generator\'s summary: request-stream holes it says were sent count as lost',
  },
  'in-flight-window': { type: 'string', arg: 'MS', help: 'unanswered requests sent this close to the capture\'s end are in flight, not lost (default 1000)' },
  t0: { type: 'string', arg: 'EPOCH_MICROS', help: 'the time the figures count from (default: the first packet)' },
  deadline: {
    type: 'string', arg: 'MS',
    help: 'added latency above which a packet is late: each flow gets lostOrLate (20ms, 20 or 0.02s, as --set deadline=)',
  },
  help: HELP_OPTION,
} as const;

export const ANALYZE: CommandSpec<typeof OPTIONS> = {
  name: 'analyze', args: 'CAPTURE|DIR...|TRACE-DIR',
  summary: 'Offline analysis of pcap and pcapng captures (Ethernet, Linux SLL, SLL2), several merged by interface, or a trace folder re-judged: the same per-flow figures as a run.',
  options: OPTIONS,
  notes: ['A trace folder of `switchover run --trace` (with --json at most) is re-judged as the run judged it.'],
};

/** Bounds of the numeric options: pcap seconds are 32-bit, and a window beyond an hour means nothing. */
const LIMITS: Record<'in-flight-window' | 't0', { max: number; what: string }> = {
  'in-flight-window': { max: 3_600_000, what: 'milliseconds from 0 to 3600000' },
  t0: { max: 2 ** 32 * 1e6, what: `epoch microseconds from 0 to ${2 ** 32 * 1e6} (a pcap's 32-bit seconds)` },
};

function optionNumber(name: keyof typeof LIMITS, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} ${quote(v)} is not a non-negative number`);
  if (n > LIMITS[name].max) throw new Error(`--${name} ${quote(v)} is out of range: expected ${LIMITS[name].what}`);
  return n;
}

/** One line for an input that could not be analysed, naming the file given. */
function failure(e: unknown): string {
  const err = e as NodeJS.ErrnoException & { path?: string };
  if (err.code === 'ENOENT') return `${err.path}: no such file; give the path of a capture (pcap or pcapng) or of a folder of them`;
  if (err.code === 'EACCES') return `${err.path}: permission denied; run with access to the file`;
  if (e instanceof PcapFormatError) {
    return `${e.message}; a pcap (tcpdump -w) or pcapng (Wireshark, dumpcap) with Ethernet, Linux SLL or SLL2 link type is expected`;
  }
  if (e instanceof AnalysisLimitError) return e.message;
  return err.path ? `${err.path}: ${err.message}` : `${err.message ?? String(e)}`;
}

/** The capture files named: files as given, folders by their *.pcap and *.pcapng. */
async function captureFiles(paths: readonly string[]): Promise<CaptureFile[]> {
  const out: CaptureFile[] = [];
  for (const path of paths) {
    if ((await stat(path)).isDirectory()) out.push(...await captureFilesIn(path));
    else out.push({ path });
  }
  return out;
}

export async function analyzeCommand(argv: string[]): Promise<number> {
  const usage = (message: string): number => {
    process.stderr.write(`switchover analyze: ${message}\nusage: ${usageLine(ANALYZE)}  (\`switchover analyze --help\` describes every option)\n`);
    return 2;
  };
  let parsed;
  try {
    parsed = parseCommand(ANALYZE, argv);
  } catch (e) {
    if (e instanceof UsageError) return usage(e.message);
    throw e;
  }
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  if (positionals.length === 0) return usage('no capture given');
  if (positionals.length === 1 && isTraceDir(positionals[0]!)) {
    if (values.t0 !== undefined || values['in-flight-window'] !== undefined || values.deadline !== undefined) {
      process.stderr.write(`switchover analyze: ${positionals[0]} is a trace, re-judged with the run's own t0, in-flight window and deadline: drop --t0, --in-flight-window and --deadline\n`);
      return 2;
    }
    return analyzeTraceCommand(positionals[0]!, { json: values.json });
  }
  let inFlightWindowMs: number | undefined, t0Micros: number | undefined, deadlineMs: number | undefined;
  try {
    inFlightWindowMs = optionNumber('in-flight-window', values['in-flight-window']);
    t0Micros = optionNumber('t0', values.t0);
    deadlineMs = values.deadline === undefined ? undefined : parseDeadlineMs(values.deadline, '--deadline', '');
  } catch (e) {
    if (e instanceof InputError) return usage(e.message);
    process.stderr.write(`switchover analyze: ${(e as Error).message}\n`);
    return 2;
  }
  const results: PcapAnalysis[] = [];
  try {
    const senderLogs: SenderLog[] = [];
    for (const file of values['sender-log'] ?? []) senderLogs.push(await readSenderLog(file));
    const files = await captureFiles(positionals);
    const opts = { inFlightWindowMs, t0Micros, senderLogs, deadlineMs };
    if (values.separate) for (const f of files) results.push(await analyzeCaptures([f], opts));
    else results.push(await analyzeCaptures(files, opts));
  } catch (e) {
    process.stderr.write(`switchover analyze: ${failure(e)}\n`);
    return 2;
  }
  if (values.json) process.stdout.write(`${JSON.stringify(results.length === 1 ? results[0] : results, null, 2)}\n`);
  else process.stdout.write(`${results.map(renderAnalysis).join('\n\n')}\n`);
  return 0;
}
