// Bench section "engine-echo": how fast the guest answers, engine VM against the real QEMU
// TCG guest, each on its own bridge topology, measured from the client netns:
// - `ping -f -c 20000 -w 10 -q` (iputils flood: the next request goes out when the reply
//   arrives, or after 10 ms): replies per second from the summary line, and the mean RTT;
// - UDP echo (port 7) round trips per second, from harness/bench/udp-echo-child.ts: closed
//   loop (one datagram in flight) and windowed (16 in flight), 3 s each. The QEMU guest
//   (busybox) has no UDP echo, so that peer is n/a.
import { join } from 'node:path';
import { engineBackend } from '../vm/engine.js';
import { qemuBackend } from '../vm/qemu.js';
import { GUEST_MAC } from '../run/runner.js';
import { withTopology, type Topology } from '../net/topology.js';
import type { VmBackend, VmHandle } from '../scenario/types.js';
import { hasTool, networkUnavailable, round } from './measure.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { notAvailable, type BenchContext, type BenchRow, type BenchSection } from './section.js';
import type { UdpEchoReport } from './udp-echo-child.js';

const SECTION = 'engine-echo';
const PING_COUNT = 20_000;
const PING_DEADLINE_S = 10;
const UDP_MS = 3_000;
const UDP_WINDOW = 16;
const REACH_TIMEOUT_MS = 30_000;

export interface FloodResult { transmitted: number; received: number; timeMs: number; avgRttMs?: number }

/** iputils ping's summary (ping_common.c finish()): "N packets transmitted, M received, ..., time Tms". */
export function parseFloodSummary(text: string): FloodResult {
  const m = /(\d+) packets transmitted, (\d+) received.*?time (\d+)ms/.exec(text);
  if (!m) throw new Error(`no ping summary line in: ${text.trim().slice(-300)}`);
  const rtt = /= [\d.]+\/([\d.]+)\/[\d.]+\/[\d.]+ ms/.exec(text);
  return { transmitted: Number(m[1]), received: Number(m[2]), timeMs: Number(m[3]), ...(rtt ? { avgRttMs: Number(rtt[1]) } : {}) };
}

interface EchoFigures { backend: string; flood: FloodResult; udp?: UdpEchoReport[] }

async function waitReachable(topo: Topology): Promise<void> {
  const deadline = Date.now() + REACH_TIMEOUT_MS;
  for (;;) {
    const r = await topo.exec('client', ['ping', '-c', '1', '-W', '1', topo.guestIp], { allowFail: true });
    if (r.exitCode === 0) return;
    if (Date.now() > deadline) throw new Error(`guest ${topo.guestIp} did not answer ping within ${REACH_TIMEOUT_MS / 1000} s`);
    await sleep(100);
  }
}

async function measure(ctx: BenchContext, backend: VmBackend, udp: boolean): Promise<EchoFigures> {
  return withTopology({ layout: 'bridge', queues: 1 }, async (topo) => {
    let vm: VmHandle | undefined;
    try {
      vm = await backend.launch({
        name: 'echo', netns: topo.hostNs, runDir: topo.runDir, tap: { ifname: topo.tap0, queues: 1, vhost: false },
        mac: GUEST_MAC, ip: `${topo.guestIp}/${topo.guestPrefix}`, memMB: 256, dirtyRate: 0,
      });
      await waitReachable(topo);
      const ping = await topo.exec('client', ['ping', '-f', '-q', '-c', String(PING_COUNT), '-w', String(PING_DEADLINE_S), topo.guestIp],
        { allowFail: true, timeoutMs: (PING_DEADLINE_S + 10) * 1000 });
      const flood = parseFloodSummary(ping.stdout);
      const figures: EchoFigures = { backend: backend.name, flood };
      if (udp) {
        const child = join(ctx.root, 'dist', 'harness', 'bench', 'udp-echo-child.js');
        figures.udp = [];
        for (const window of [1, UDP_WINDOW]) {
          const r = await topo.exec('client', [process.execPath, child, topo.guestIp, '7', String(UDP_MS), String(window)], { timeoutMs: UDP_MS + 10_000 });
          figures.udp.push(JSON.parse(r.stdout) as UdpEchoReport);
        }
      }
      return figures;
    } finally {
      await vm?.shutdown();
    }
  });
}

const perSecond = (f: FloodResult): number => (f.timeMs > 0 ? f.received / (f.timeMs / 1000) : NaN);
const lossPct = (f: FloodResult): string => `${round(100 * (1 - f.received / Math.max(1, f.transmitted)), 1)}%`;

export const engineEchoSection: BenchSection = {
  name: SECTION,
  what: 'echo rate (ping -f replies/s, UDP echo round trips/s), engine VM vs QEMU TCG guest',
  async run(ctx: BenchContext): Promise<BenchRow[]> {
    const cannot = networkUnavailable();
    if (cannot) return [notAvailable(SECTION, 'echo rate', cannot)];
    const engine = await measure(ctx, engineBackend, true);
    let qemu: EchoFigures | undefined;
    let accel = '';
    let why = '';
    if (!hasTool('qemu-system-x86_64')) why = 'qemu-system-x86_64 not found (apt-get install qemu-system-x86)';
    else {
      try {
        const backend = qemuBackend();
        qemu = await measure(ctx, backend, false);
        accel = await backend.accelerator();
      } catch (e) {
        why = `QEMU guest failed: ${(e as Error).message.split('\n')[0]}`;
      }
    }
    const peerName = qemu ? `QEMU ${accel.toUpperCase()} guest` : 'QEMU guest';
    const floodCmd = `ping -f -q -c ${PING_COUNT} -w ${PING_DEADLINE_S}`;
    const e = perSecond(engine.flood);
    const q = qemu ? perSecond(qemu.flood) : NaN;
    const rows: BenchRow[] = [{
      section: SECTION, measure: 'ping -f replies/s', value: Math.round(e), unit: 'replies/s',
      peer: { name: peerName, value: qemu ? Math.round(q) : null }, ...(qemu ? { ratio: round(e / q, 2) } : {}),
      note: `${floodCmd}; lost: engine ${lossPct(engine.flood)}${qemu ? `, QEMU ${lossPct(qemu.flood)}` : `; peer n/a: ${why}`}`,
    }];
    const eRtt = engine.flood.avgRttMs, qRtt = qemu?.flood.avgRttMs;
    if (eRtt !== undefined) {
      rows.push({
        section: SECTION, measure: 'ping -f mean RTT', value: eRtt, unit: 'ms',
        peer: { name: peerName, value: qRtt ?? null }, ...(qRtt ? { ratio: round(qRtt / eRtt, 2) } : {}),
        note: 'ratio = QEMU / engine (> 1: engine answers sooner)',
      });
    }
    for (const u of engine.udp ?? []) {
      rows.push({
        section: SECTION, measure: u.window === 1 ? 'UDP echo round trips/s, closed loop' : `UDP echo round trips/s, ${u.window} in flight`,
        value: Math.round(u.received / (u.elapsedMs / 1000)), unit: 'trips/s', peer: { name: peerName, value: null },
        note: `${UDP_MS / 1000} s, port 7, ${u.lost} lost; peer n/a: busybox guest has no UDP echo`,
      });
    }
    return rows;
  },
};
