// `switchover analyze PCAP... [--json] [--in-flight-window MS] [--t0 EPOCH_MICROS]`:
// offline analysis of any classic pcap (Ethernet, Linux SLL, SLL2), including captures made
// elsewhere. Prints a per-flow table, or the PcapAnalysis as JSON. Exit 0 on success, 2 on
// a missing or unreadable capture or bad arguments, with a message that says what to do.
import { parseArgs } from 'node:util';
import { joinDashValues, valuedOptions } from './args.js';
import { analyzePcap, type PcapAnalysis } from '../capture/analyzer.js';
import { PcapFormatError } from '../capture/pcap-reader.js';
import { FLOW_HEADERS, flowRow, fmtMs, formatSeqs, renderTable } from '../report/table.js';
import { quote } from '../scenario/schema.js';

const USAGE = 'usage: switchover analyze PCAP... [--json] [--in-flight-window MS] [--t0 EPOCH_MICROS]';
const LINK_NAMES: Record<number, string> = { 1: 'Ethernet', 113: 'Linux SLL', 276: 'Linux SLL2' };

function renderAnalysis(a: PcapAnalysis): string {
  const dur = ((a.endMs - a.startMs) / 1000).toFixed(2);
  const out = [`${a.file}: ${LINK_NAMES[a.linkType] ?? `link type ${a.linkType}`}, ${a.packets} packets over ${dur} s`];
  if (a.truncated) out.push('  warning: the last record is cut short (capture killed mid-write); it was skipped');
  if (a.trailing) {
    out.push(`  warning: the ${a.trailing.bytes} bytes from offset ${a.trailing.offset} are not pcap records (${a.trailing.reason}); they were not read`);
  }
  if (a.flows.length) out.push(renderTable(FLOW_HEADERS, a.flows.map((f) => flowRow(f))));
  else out.push('  no ICMP echo or sequenced UDP flows found');
  for (const f of a.flows) {
    if (f.lost) out.push(`  ${f.flow}: lost seqs ${formatSeqs(f.lostSeqs)}`);
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
  json: { type: 'boolean', default: false },
  'in-flight-window': { type: 'string' },
  t0: { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

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

/** One line for a capture that could not be analysed, naming the file given. */
function failure(file: string, e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ENOENT') return `${file}: no such file; give the path of a pcap written by tcpdump -w`;
  if (err.code === 'EISDIR') return `${file} is a directory; give a pcap file in it`;
  if (err.code === 'EACCES') return `${file}: permission denied; run with access to the file`;
  if (e instanceof PcapFormatError) return `${e.message}; a classic pcap (tcpdump -w) with Ethernet, Linux SLL or SLL2 link type is expected`;
  return `${file}: ${err.message}`;
}

export async function analyzeCommand(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: joinDashValues(argv, valuedOptions(OPTIONS)), allowPositionals: true, strict: true, options: OPTIONS });
  } catch (e) {
    process.stderr.write(`switchover analyze: ${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) { process.stdout.write(`${USAGE}\n`); return 0; }
  if (positionals.length === 0) { process.stderr.write(`switchover analyze: no capture given\n${USAGE}\n`); return 2; }
  let inFlightWindowMs: number | undefined, t0Micros: number | undefined;
  try {
    inFlightWindowMs = optionNumber('in-flight-window', values['in-flight-window']);
    t0Micros = optionNumber('t0', values.t0);
  } catch (e) {
    process.stderr.write(`switchover analyze: ${(e as Error).message}\n`);
    return 2;
  }
  const results: PcapAnalysis[] = [];
  for (const file of positionals) {
    try {
      results.push(await analyzePcap(file, { inFlightWindowMs, t0Micros }));
    } catch (e) {
      process.stderr.write(`switchover analyze: ${failure(file, e)}\n`);
      return 2;
    }
  }
  if (values.json) process.stdout.write(`${JSON.stringify(results.length === 1 ? results[0] : results, null, 2)}\n`);
  else process.stdout.write(`${results.map(renderAnalysis).join('\n\n')}\n`);
  return 0;
}
