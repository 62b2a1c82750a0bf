// Bench section "analyzer": packets per second of `switchover analyze`'s analyzer against
// `tcpdump -nn -r FILE > /dev/null` on the same generated capture (1,000,000 packets by
// default), as classic pcap and as pcapng (libpcap reads both), side by side, plus the
// analyzer's peak memory measured in its own process. Each side runs 3 times after a warm-up
// read (page cache hot for both); the best run counts. Issue 15 asks for at least 3x tcpdump.
import { closeSync, openSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { AnalyzeChildReport } from './analyze-child.js';
import { writeBenchPcap } from '../../fixtures/pcap-synth.js';
import { commandFailure, start, whichTool } from '../net/exec.js';
import { notAvailable, type BenchContext, type BenchRow, type BenchSection } from './section.js';

const RUNS = 3;
const SECTION = 'analyzer';

/** Runs argv to its end; ms is from start to exit, as the user would wait for it. */
async function timed(argv: string[], stdoutFd: number | 'pipe'): Promise<{ ms: number; stdout: string }> {
  const started = performance.now();
  const r = await start(argv, { stdio: ['ignore', stdoutFd, 'pipe'] });
  const ms = performance.now() - started;
  const failed = commandFailure(argv, r);
  if (failed) throw failed;
  return { ms, stdout: String(r.stdout ?? '') };
}

/** pcap-parser (the npm package DESIGN.md names) counting packets, for reference. */
function pcapParserMs(file: string): Promise<number> {
  const require = createRequire(import.meta.url);
  const pcapp = require('pcap-parser') as { parse(f: string): NodeJS.EventEmitter };
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const parser = pcapp.parse(file);
    parser.on('packet', () => undefined);
    parser.on('error', reject);
    parser.on('end', () => resolve(performance.now() - started));
  });
}

export const analyzerSection: BenchSection = {
  name: SECTION,
  what: 'analyzer packets/s vs tcpdump -nn -r on a generated capture, pcap and pcapng; analyzer peak RSS',
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    if (!whichTool('tcpdump')) {
      return [notAvailable(SECTION, 'packets/s vs tcpdump', 'tcpdump not found (apt-get install tcpdump)')];
    }
    const child = join(ctx.root, 'dist', 'harness', 'bench', 'analyze-child.js');
    const rows: BenchRow[] = [];
    for (const format of ['pcap', 'pcapng'] as const) {
      const file = join(ctx.tmpDir, `bench.${format}`);
      const genStart = performance.now();
      const truth = writeBenchPcap(file, ctx.packets, format);
      const genMs = performance.now() - genStart;
      const fileMb = statSync(file).size / 1048576;
      const devNull = openSync('/dev/null', 'w');
      const tcpdump: number[] = [];
      const wall: number[] = [];
      const inner: AnalyzeChildReport[] = [];
      try {
        await timed(['tcpdump', '-nn', '-r', file], devNull); // warm-up: page cache
        for (let i = 0; i < RUNS; i++) {
          tcpdump.push((await timed(['tcpdump', '-nn', '-r', file], devNull)).ms);
          const r = await timed([process.execPath, child, file], 'pipe');
          wall.push(r.ms);
          inner.push(JSON.parse(r.stdout) as AnalyzeChildReport);
        }
      } finally {
        closeSync(devNull);
      }
      const best = (v: number[]): number => Math.min(...v);
      const n = truth.packets;
      const tcpdumpPps = n / (best(tcpdump) / 1000);
      const wallPps = n / (best(wall) / 1000);
      const innerPps = n / (best(inner.map((r) => r.analysisMs)) / 1000);
      const rep = inner[0]!;
      const icmp = rep.flows.find((f) => f.flow.startsWith('icmp'));
      const udp = rep.flows.find((f) => f.flow.startsWith('udp'));
      const correct = rep.packets === n && icmp !== undefined && udp !== undefined
        && icmp.lostSeqs.join() === truth.icmpLost.join() && udp.delayedSeqs.join() === truth.udpDelayed.join()
        && icmp.delayed === 0 && udp.lost === 0;
      const peakMb = Math.max(...inner.map((r) => r.vmHwmKb)) / 1024;
      const peer = { name: 'tcpdump -nn -r', value: Math.round(tcpdumpPps) };
      rows.push(
        { section: SECTION, measure: `generate ${n} packets (${format})`, value: Math.round(n / (genMs / 1000)), unit: 'pkt/s', note: `${fileMb.toFixed(0)} MiB ${format}` },
        {
          section: SECTION, measure: `analyzer, whole process (${format})`, value: Math.round(wallPps), unit: 'pkt/s',
          peer, ratio: round2(wallPps / tcpdumpPps), note: `best of ${RUNS}; includes node start-up`,
        },
        { section: SECTION, measure: `analyzer, analyzePcap only (${format})`, value: Math.round(innerPps), unit: 'pkt/s', peer, ratio: round2(innerPps / tcpdumpPps) },
        {
          section: SECTION, measure: `analyzer peak RSS (VmHWM, ${format})`, value: round2(peakMb), unit: 'MiB',
          note: `${format} is ${fileMb.toFixed(0)} MiB: streamed, not held`,
        },
        {
          section: SECTION, measure: `analyzer finds the planted loss and delay (${format})`, value: correct ? 1 : 0, unit: 'ok',
          note: correct ? `${truth.icmpLost.length} lost, ${truth.udpDelayed.length} delayed, as planted` : 'MISMATCH against the generated truth',
        },
      );
      if (format !== 'pcap') continue;
      // The same analysis of a 100x smaller capture: the difference is what the file's size
      // costs (per-seq state), against node's own footprint.
      const small = join(ctx.tmpDir, 'bench-small.pcap');
      writeBenchPcap(small, Math.max(1000, Math.floor(n / 100)));
      const smallRep = JSON.parse((await timed([process.execPath, child, small], 'pipe')).stdout) as AnalyzeChildReport;
      const smallMb = smallRep.vmHwmKb / 1024;
      const parserMs = await pcapParserMs(file);
      rows.push(
        {
          section: SECTION, measure: `peak RSS, ${smallRep.packets}-packet capture`, value: round2(smallMb), unit: 'MiB',
          note: `+${(peakMb - smallMb).toFixed(1)} MiB for 100x the packets: per-seq state, ~${Math.round(((peakMb - smallMb) * 1048576) / n)} B/packet`,
        },
        {
          section: SECTION, measure: 'pcap-parser (npm), read only', value: Math.round(n / (parserMs / 1000)), unit: 'pkt/s',
          peer, ratio: round2(n / (parserMs / 1000) / tcpdumpPps), note: 'reference: why the analyzer has its own reader',
        },
      );
    }
    return rows;
  },
};

const round2 = (v: number): number => Math.round(v * 100) / 100;
