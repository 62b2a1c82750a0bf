// The scenario's traffic during a run: 1 ms ping and sequenced UDP from the client netns,
// and the guest's own UDP stream back to the client (VmHandle.guestUdpSend). Flows are
// bounded in count and time and stopped by the runner; ping's own view is cross-checked
// against the pcap (judge.ts).
import { setTimeout as sleep } from 'node:timers/promises';
import { MIGRATION_TIMEOUT_MS } from './run-vms.js';
import type { Topology } from '../net/topology.js';
import { startPing, type PingResult, type PingRun } from '../traffic/ping.js';
import { startUdpStream, type UdpRun } from '../traffic/udp.js';
import type { Scenario, VmHandle } from '../scenario/types.js';

const GUEST_UDP_PORT = 5009;
/** Upper bound on one flow's run time: traffic is stopped by the runner long before. */
const TRAFFIC_BOUND_MS = MIGRATION_TIMEOUT_MS + 60_000;

export interface TrafficRuns {
  ping?: PingRun;
  /** Client -> guest streams; stopped by the runner like ping. */
  udpSenders: UdpRun[];
  /** Receive-only streams (guest -> client), stopped once the guest's stream is over. */
  udpReceivers: UdpRun[];
  /** traffic.durationMs after the start: the least the traffic lasts. */
  minEnd: number;
  /** When the guest's own stream (guestUdpSend, a fixed count) is over. */
  guestStreamEnd: number;
}

/**
 * Flows run for at least traffic.durationMs and until TRAFFIC_TAIL_MS after the last hop,
 * whichever is later, so a slow backend's switchover still lands inside the traffic. They
 * are bounded in count and time (TRAFFIC_BOUND_MS) and stopped by the runner.
 */
export async function startTraffic(s: Scenario, topo: Topology, src: VmHandle): Promise<TrafficRuns> {
  const started = Date.now();
  const out: TrafficRuns = { udpSenders: [], udpReceivers: [], minEnd: started + s.traffic.durationMs, guestStreamEnd: started };
  const boundMs = s.traffic.durationMs + TRAFFIC_BOUND_MS;
  for (const f of s.traffic.flows) {
    if (f.kind === 'ping') {
      out.ping = startPing(topo, { dst: topo.guestIp, intervalMs: f.intervalMs, count: Math.ceil(boundMs / f.intervalMs) });
      // Awaited in finishTraffic; until then a failure must not be an unhandled rejection.
      out.ping.result.catch(() => undefined);
      continue;
    }
    if (f.direction === 'to-guest' || f.direction === 'both') {
      const u = startUdpStream(topo, { dst: topo.guestIp, port: f.port ?? 7, rate: f.rate, count: Math.ceil((f.rate * boundMs) / 1000), durationMs: boundMs });
      u.result.catch(() => undefined);
      await u.ready;
      out.udpSenders.push(u);
    }
    if (f.direction === 'from-guest' || f.direction === 'both') {
      const u = startUdpStream(topo, { dst: topo.guestIp, port: 9, rate: 1, count: 0, durationMs: boundMs, listenPort: GUEST_UDP_PORT, lingerMs: 0 });
      u.result.catch(() => undefined);
      await u.ready;
      out.udpReceivers.push(u);
      const count = Math.max(1, Math.round((f.rate * s.traffic.durationMs) / 1000));
      await src.guestUdpSend({ dst: topo.clientIp, port: GUEST_UDP_PORT, rate: f.rate, count });
      out.guestStreamEnd = Math.max(out.guestStreamEnd, Date.now() + s.traffic.durationMs);
    }
  }
  return out;
}

/** Stop every flow at max(durationMs, `tailEnd`); the guest's stream ends by its count. */
export async function finishTraffic(t: TrafficRuns, tailEnd: number): Promise<{ ping?: PingResult }> {
  await sleep(Math.max(0, Math.max(t.minEnd, tailEnd) - Date.now()));
  const ping = t.ping ? await t.ping.stop() : undefined;
  for (const u of t.udpSenders) await u.stop();
  if (t.udpReceivers.length) {
    await sleep(Math.max(0, t.guestStreamEnd + 1_000 - Date.now()));
    for (const u of t.udpReceivers) await u.stop();
  }
  return { ping };
}
