// Bench section "scale": how time and memory grow.
// - Guest size: engine guests of 256 MiB, 1 GiB and 4 GiB, each sparse with the same 64 MiB
//   of random pages (`-guest fill=`) and an idle vCPU (dirty rate 0, so only the size
//   changes), migrated over a UNIX socket with unlimited bandwidth, 3 times each, medians:
//   migration total-time, transferred bytes, and the peak RSS (VmHWM) of the source and
//   destination processes.
// - Traffic: netpass-bridge-udp at 1,000, 10,000 and 50,000 datagrams/s through a migration
//   (runner, pcaps kept): lost, then the client pcap analysed again in a child process
//   (analyze-child.js) for the analyzer's time and peak RSS.
// The last row of each part states the growth, computed from the rows above it.
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../net/exec.js';
import { engineBackend } from '../vm/engine.js';
import type { VmProcess } from '../vm/process.js';
import { findScenarios } from '../scenario/catalogue.js';
import { readPcap } from '../capture/pcap-reader.js';
import { applyOverrides } from '../scenario/scenario.js';
import type { AnalyzeChildReport } from './analyze-child.js';
import {
  engineVmArgv, migrateLocally, networkUnavailable, peakRssKb, ran, round, runScenarioTimes, startProcessVm, verdicts, waitIncomingDone,
} from './measure.js';
import { median } from '../../lib/stats.js';
import { notAvailable, type BenchContext, type BenchRow, type BenchSection } from './section.js';

const SECTION = 'scale';
const SIZES_MB = [256, 1024, 4096];
const NONZERO_MB = 64;
const SIZE_RUNS = 3;
const UDP_RATES = [1_000, 10_000, 50_000];

const MiB = (bytes: number): number => round(bytes / 2 ** 20, 1);

interface SizePoint { sizeMB: number; totalMs: number; transferred: number; srcKb?: number; dstKb?: number }

async function migrateGuest(ctx: BenchContext, sizeMB: number): Promise<SizePoint> {
  const dir = mkdtempSync(join(ctx.tmpDir, `scale-${sizeMB}-`));
  const fill = NONZERO_MB / sizeMB;
  const start = (name: string, incoming?: string): Promise<VmProcess> => {
    const { argv, qmpPath } = engineVmArgv(ctx.root, { name, dir, memMB: sizeMB, fill, ...(incoming ? { incoming } : {}) });
    return startProcessVm(argv, { name: `engine-${name}-${sizeMB}M`, dir, qmpPath, timeoutMs: 60_000 });
  };
  const src = await start('src');
  let dst: VmProcess | undefined;
  try {
    dst = await start('dst', 'defer');
    const info = await migrateLocally(src, dst, join(dir, 'mig.sock'), { parameters: { 'max-bandwidth': 0 } });
    await waitIncomingDone(dst);
    return {
      sizeMB, totalMs: info['total-time'] ?? NaN, transferred: info.ram?.transferred ?? NaN,
      srcKb: peakRssKb(src.pid), dstKb: peakRssKb(dst.pid),
    };
  } finally {
    await src.shutdown();
    await dst?.shutdown();
  }
}

async function analyzeInChild(ctx: BenchContext, pcap: string): Promise<AnalyzeChildReport> {
  const r = await run([process.execPath, join(ctx.root, 'dist', 'harness', 'bench', 'analyze-child.js'), pcap], { timeoutMs: 120_000 });
  return JSON.parse(r.stdout) as AnalyzeChildReport;
}

interface TrafficPoint {
  rate: number; sent: number; lost: number; inFlight: number; wallMs: number; verdict: string;
  /** First to last packet of the client capture: how long the stream really ran. */
  captureMs?: number;
  analysis?: AnalyzeChildReport; analysisError?: string;
  /** The run ended in error or unsupported: no figure of it means anything. */
  notRun?: string;
}

async function trafficRun(ctx: BenchContext, rate: number): Promise<TrafficPoint> {
  const [base] = await findScenarios(['netpass-bridge-udp']);
  const s = applyOverrides(base!, [`rate=${rate}`]);
  const keep = mkdtempSync(join(ctx.tmpDir, `scale-udp-${rate}-`));
  const [run] = await runScenarioTimes(s, engineBackend, 1, { keepPcapsDir: keep });
  const r = run!.result;
  const point: TrafficPoint = {
    rate, sent: r.traffic.reduce((n, f) => n + f.sent, 0), lost: r.traffic.reduce((n, f) => n + f.lost, 0),
    inFlight: r.traffic.reduce((n, f) => n + f.inFlight, 0), wallMs: run!.wallMs, verdict: verdicts([r]),
  };
  if (!ran(r)) return { ...point, notRun: `${r.verdict}: ${r.reason ?? ''}` };
  const client = r.pcaps?.find((p) => p.endsWith('client.pcap'));
  if (!client) return { ...point, analysisError: `no client pcap kept (${point.verdict})` };
  try {
    const info = await readPcap(client, () => undefined);
    point.captureMs = (info.lastTsMicros - info.firstTsMicros) / 1000;
    return { ...point, analysis: await analyzeInChild(ctx, client) };
  } catch (e) {
    return { ...point, analysisError: (e as Error).message };
  }
}

/** Each figure's median over the runs (figures a run could not read are left out). */
function medianPoint(runs: SizePoint[]): SizePoint {
  const of = (pick: (p: SizePoint) => number | undefined): number | undefined => {
    const v = runs.map(pick).filter((x): x is number => x !== undefined && Number.isFinite(x));
    return v.length ? median(v) : undefined;
  };
  return {
    sizeMB: runs[0]!.sizeMB, totalMs: of((p) => p.totalMs) ?? NaN, transferred: of((p) => p.transferred) ?? NaN,
    srcKb: of((p) => p.srcKb), dstKb: of((p) => p.dstKb),
  };
}

function sizeRows(points: SizePoint[]): BenchRow[] {
  const rows: BenchRow[] = points.map((p) => ({
    section: SECTION, measure: `guest ${p.sizeMB} MiB (${NONZERO_MB} MiB non-zero): migration time p50`, value: p.totalMs, unit: 'ms',
    note: `transferred ${MiB(p.transferred)} MiB; peak RSS src ${p.srcKb === undefined ? '?' : MiB(p.srcKb * 1024)} MiB, `
      + `dst ${p.dstKb === undefined ? '?' : MiB(p.dstKb * 1024)} MiB`,
  }));
  const first = points[0], last = points[points.length - 1];
  if (first && last && last !== first) {
    const zeroPages = (p: SizePoint): number => (p.sizeMB - NONZERO_MB) * 256;
    const perZeroPage = (last.transferred - first.transferred) / (zeroPages(last) - zeroPages(first));
    const ratio = (a: number | undefined, b: number | undefined): number => (a && b ? b / a : NaN);
    const x = (a: number | undefined, b: number | undefined): string => (a && b ? `x${round(b / a, 2)}` : '?');
    // "Constant" within 10 %: the run-to-run noise of a loaded machine.
    const flat = (r: number): boolean => r < 1.1;
    const bytesFlat = flat(ratio(first.transferred, last.transferred));
    const memFlat = flat(ratio(first.srcKb, last.srcKb)) && flat(ratio(first.dstKb, last.dstKb));
    const msPerGiB = (last.totalMs - first.totalMs) / ((last.sizeMB - first.sizeMB) / 1024);
    rows.push({
      section: SECTION, measure: `growth ${first.sizeMB} MiB -> ${last.sizeMB} MiB (x${last.sizeMB / first.sizeMB} RAM, same non-zero)`,
      value: round(perZeroPage, 1), unit: 'B/zero page',
      note: `time ${x(first.totalMs, last.totalMs)} (${msPerGiB >= 0 ? '+' : ''}${round(msPerGiB, 1)} ms per GiB of zero RAM), `
        + `transferred ${x(first.transferred, last.transferred)}, RSS src ${x(first.srcKb, last.srcKb)}, dst ${x(first.dstKb, last.dstKb)}: `
        + `bytes ${bytesFlat ? 'constant in total size' : 'grow with total size'}, memory ${memFlat ? 'constant in total size' : 'grows with total size'}`,
    });
  }
  return rows;
}

function trafficRows(points: TrafficPoint[]): BenchRow[] {
  const rows: BenchRow[] = [];
  for (const p of points) {
    if (p.notRun) {
      rows.push(notAvailable(SECTION, `UDP ${p.rate.toLocaleString('en-US')}/s through a migration`, `netpass-bridge-udp ${p.notRun.split('\n')[0]}`));
      continue;
    }
    rows.push({
      section: SECTION, measure: `UDP ${p.rate.toLocaleString('en-US')}/s through a migration: lost`, value: p.lost, unit: 'packets',
      note: `sent ${p.sent}${p.captureMs ? ` over ${Math.round(p.captureMs)} ms captured (~${Math.round(p.sent / (p.captureMs / 1000))}/s)` : ''}, `
        + `${p.inFlight} in flight at the end; wall ${Math.round(p.wallMs)} ms; ${p.verdict}`,
    });
    rows.push(p.analysis
      ? {
        section: SECTION, measure: `UDP ${p.rate.toLocaleString('en-US')}/s: analyzer time`, value: Math.round(p.analysis.analysisMs), unit: 'ms',
        note: `${p.analysis.packets} packets in the client pcap, ${round((p.analysis.analysisMs * 1000) / Math.max(1, p.analysis.packets), 2)} µs/packet; `
          + `analyzer peak RSS ${MiB(p.analysis.vmHwmKb * 1024)} MiB`,
      }
      : { section: SECTION, measure: `UDP ${p.rate.toLocaleString('en-US')}/s: analyzer time`, value: null, unit: '', note: `n/a: ${p.analysisError}` });
  }
  const a = points.filter((p) => p.analysis);
  const first = a[0], last = a[a.length - 1];
  if (first?.analysis && last?.analysis && first !== last) {
    const pk = last.analysis.packets / Math.max(1, first.analysis.packets);
    const time = last.analysis.analysisMs / first.analysis.analysisMs;
    const rss = last.analysis.vmHwmKb / first.analysis.vmHwmKb;
    rows.push({
      section: SECTION, measure: `growth ${first.rate.toLocaleString('en-US')}/s -> ${last.rate.toLocaleString('en-US')}/s`,
      value: round(time, 2), unit: 'x time',
      note: `for x${round(pk, 1)} packets; analyzer RSS x${round(rss, 2)}: time ${time <= pk * 1.1 ? 'at most linear' : 'more than linear'} in packets, `
        + `memory ${rss < 1.5 ? 'nearly flat (streamed, per-seq state only)' : 'grows with packets'}`,
    });
  }
  return rows;
}

export const scaleSection: BenchSection = {
  name: SECTION,
  what: `cost vs guest size (${SIZES_MB.join('/')} MiB, ${NONZERO_MB} MiB non-zero) and UDP rate (${UDP_RATES.join('/')} packets/s)`,
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    const sizes: SizePoint[] = [];
    for (const size of SIZES_MB) {
      const runs: SizePoint[] = [];
      for (let i = 0; i < SIZE_RUNS; i++) runs.push(await migrateGuest(ctx, size));
      sizes.push(medianPoint(runs));
    }
    const cannot = networkUnavailable();
    if (cannot) return [...sizeRows(sizes), notAvailable(SECTION, 'UDP rate scale', cannot)];
    const traffic: TrafficPoint[] = [];
    for (const rate of UDP_RATES) traffic.push(await trafficRun(ctx, rate));
    return [...sizeRows(sizes), ...trafficRows(traffic)];
  },
};
