// Child process for the analyzer bench: analyse one pcap and report the time spent in
// analyzePcap and this process's peak RSS (VmHWM), so the memory figure is the analyzer's
// alone. Usage: node analyze-child.js FILE -> one JSON line.
import { readFileSync } from 'node:fs';
import { analyzePcap } from '../capture/analyzer.js';

export interface AnalyzeChildReport {
  analysisMs: number;
  packets: number;
  vmHwmKb: number;
  flows: Array<{ flow: string; sent: number; lost: number; delayed: number; lostSeqs: number[]; delayedSeqs: number[] }>;
}

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: analyze-child.js FILE\n');
  process.exit(2);
}
const started = performance.now();
const a = await analyzePcap(file, { maxPacketMarks: 0 });
const analysisMs = performance.now() - started;
const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
const report: AnalyzeChildReport = {
  analysisMs,
  packets: a.packets,
  vmHwmKb: Number(hwm?.[1] ?? NaN),
  flows: a.flows.map((f) => ({ flow: f.flow, sent: f.sent, lost: f.lost, delayed: f.delayed, lostSeqs: f.lostSeqs, delayedSeqs: f.delayedSeqs })),
};
process.stdout.write(`${JSON.stringify(report)}\n`);
