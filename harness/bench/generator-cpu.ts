// Bench section "generator-cpu": what the UDP traffic generator (harness/traffic/udp-stream.ts) costs,
// as CPU ms per second of sending per 10,000 datagrams/s, at 10,000 and 20,000/s. It runs as
// the harness runs it (traffic-udp.ts, its own process) but on loopback, against the
// fixtures/udp-peer.ts echo, so it needs no privilege and measures the generator alone: the
// figure is its own process.cpuUsage over the send phase (cpuMs / sendMs). Target: 20,000/s in
// at most a quarter of a core, i.e. 125 ms per 10,000/s.
import { startLoopbackEcho } from '../../fixtures/udp-echo.js';
import { start } from '../net/exec.js';
import { startUdpStream, type UdpStreamSummary } from '../traffic/udp.js';
import { generatorCpuPer10k, round } from './measure.js';
import type { BenchRow, BenchSection } from './section.js';

const SECTION = 'generator-cpu';
const RATES = [10_000, 20_000];
const SEND_MS = 3_000;
const LINGER_MS = 300;
const QUARTER_CORE_PER_10K_AT_20K = 125;

/** Runs the generator in this netns, as a topology would run it in one of its own. */
const here = {
  spawn: (_ns: string, argv: readonly string[]) => start(argv),
};

async function measure(rate: number): Promise<UdpStreamSummary> {
  const echo = await startLoopbackEcho(SEND_MS + LINGER_MS + 10_000);
  try {
    return await startUdpStream(here, {
      dst: '127.0.0.1', port: echo.port, rate, count: (rate * SEND_MS) / 1000, durationMs: SEND_MS + 5_000, lingerMs: LINGER_MS,
    }).result;
  } finally {
    echo.stop();
  }
}

export const generatorCpuSection: BenchSection = {
  name: SECTION,
  what: 'UDP generator CPU per 10,000 datagrams/s at 10,000 and 20,000/s, to a loopback echo',
  async run(): Promise<BenchRow[]> {
    const rows: BenchRow[] = [];
    for (const rate of RATES) {
      const s = await measure(rate);
      const echoed = s.flows.find((f) => f.echo)?.received ?? 0;
      const perSecond = s.sendMs > 0 ? s.cpuMs / (s.sendMs / 1000) : NaN;
      const per10k = round(generatorCpuPer10k(s), 1);
      const target = rate === 20_000 ? `; target <= ${QUARTER_CORE_PER_10K_AT_20K} (a quarter core at 20,000/s)` : '';
      rows.push({
        section: SECTION, measure: `CPU at ${rate.toLocaleString('en-US')}/s`, value: Number.isFinite(per10k) ? per10k : null,
        unit: 'ms/s per 10k/s',
        note: `${round(perSecond, 0)} ms CPU per s of sending; achieved ${s.achievedRate}/s, echoed ${echoed}/${s.sent}, ` +
          `socket drops ${s.socketDrops}, send blocked ${s.sendBlocked}${target}`,
      });
    }
    return rows;
  },
};
