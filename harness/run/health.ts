// A run's `health` (types.ts RunHealth) from what the runner collected: the kernel counter
// deltas (kernel-counters.ts), tcpdump's own counters, the UDP generators' summaries and the
// engine's per-phase event-loop stalls from query-migrate. Also the loss attribution's inputs
// that come from the same counters (loss-causes.ts).
//
// API
//   stallsOf(info, vm, role) -> engineStalls entries     from one query-migrate reply
//   generatorHealth(summary) -> generators entry
//   buildHealth(parts) -> RunHealth
import type { MigrationInfo } from '../../lib/qmp-protocol.js';
import type { CaptureStats } from '../capture/tcpdump.js';
import type { KernelCounters } from '../net/kernel-counters.js';
import type { Topology } from '../net/topology.js';
import type { UdpStreamSummary } from '../traffic/udp.js';
import type { RunHealth, VmHandle } from '../scenario/types.js';

type Stall = RunHealth['engineStalls'][number];

/** The x-switchover-max-stall-ms of one VM's query-migrate reply; none from a backend without it. */
export function stallsOf(info: MigrationInfo, vm: VmHandle, role: Stall['role']): Stall[] {
  const byPhase = info['x-switchover-max-stall-ms'] ?? {};
  return Object.entries(byPhase).filter((e): e is [string, number] => typeof e[1] === 'number')
    .map(([phase, maxMs]) => ({ vm: vm.spec.name, role, tap: vm.spec.tap.ifname, phase, maxMs }));
}

/** One generator's figures, as it measured them itself. */
export function generatorHealth(u: UdpStreamSummary): RunHealth['generators'][number] {
  return {
    askedRate: u.rate, achievedRate: Math.round(u.achievedRate), sent: u.sent, sendMs: Math.round(u.sendMs),
    socketDrops: u.socketDrops, sendErrors: u.sendErrors, sendBlocked: u.sendBlocked, cpuMs: u.cpuMs,
  };
}

export interface HealthParts {
  topo: Pick<Topology, 'tap0' | 'tap1' | 'clientIface'>;
  delta: KernelCounters;
  captures: Array<{ iface: string; stats: CaptureStats }>;
  generators: UdpStreamSummary[];
  stalls: Stall[];
}

export function buildHealth(p: HealthParts): RunHealth {
  const link = (name: string): { txqueuelen: number; txDropped: number } => {
    const l = p.delta.links[name];
    if (!l) throw new Error(`kernel counters have no link ${name}: it vanished during the run`);
    return l;
  };
  return {
    taps: [p.topo.tap0, p.topo.tap1].map((name) => ({ name, ...link(name) })),
    clientVeth: { name: p.topo.clientIface, txDropped: link(p.topo.clientIface).txDropped },
    udp: p.delta.udp,
    arpUnresolvedDiscards: p.delta.arpUnresolvedDiscards,
    captures: p.captures.map((c) => ({ iface: c.iface, captured: c.stats.captured, droppedByKernel: c.stats.droppedByKernel })),
    generators: p.generators.map(generatorHealth),
    engineStalls: p.stalls,
  };
}
