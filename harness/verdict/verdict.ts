// Expectations -> verdict. Each expectation becomes one line (name, expected, actual, ok)
// so the table, JUnit and HTML report show why a scenario passed or failed. A run whose
// harness or machine was the bottleneck gets no verdict at all (harnessBottlenecks).
import type { Expectations, Scenario, ScenarioResult } from '../scenario/types.js';

type Check = ScenarioResult['expectations'][number];

function line(name: string, expected: string, actual: number | string, ok: boolean): Check {
  return { name, expected, actual: String(actual), ok };
}

/** Sum of a field over flows. */
const total = (r: ScenarioResult, f: (x: ScenarioResult['traffic'][number]) => number): number =>
  r.traffic.reduce((s, x) => s + f(x), 0);

export function checkExpectations(r: ScenarioResult, e: Expectations): Check[] {
  const checks: Check[] = [];
  const status = e.migrationStatus ?? 'completed';
  checks.push(line('migration status', status, r.migration.status, r.migration.status === status));
  const lost = total(r, (f) => f.lost);
  if (e.lost !== undefined) checks.push(line('lost', `<= ${e.lost}`, lost, lost <= e.lost));
  if (e.minLost !== undefined) checks.push(line('lost', `>= ${e.minLost}`, lost, lost >= e.minLost));
  if (e.maxOutageMs !== undefined) {
    const outage = Math.max(0, ...r.traffic.map((f) => f.outageMs));
    checks.push(line('outage ms', `<= ${e.maxOutageMs}`, outage.toFixed(1), outage <= e.maxOutageMs));
  }
  if (e.maxAddedLatencyMs !== undefined) {
    const added = Math.max(0, ...r.traffic.map((f) => f.maxAddedLatencyMs));
    checks.push(line('added latency ms', `<= ${e.maxAddedLatencyMs}`, added.toFixed(1), added <= e.maxAddedLatencyMs));
  }
  if (e.duplicates !== undefined) {
    const d = total(r, (f) => f.duplicates);
    checks.push(line('duplicates', `<= ${e.duplicates}`, d, d <= e.duplicates));
  }
  if (e.reordered !== undefined) {
    const d = total(r, (f) => f.reordered);
    checks.push(line('reordered', `<= ${e.reordered}`, d, d <= e.reordered));
  }
  if (e.maxLostOrLate !== undefined) {
    // Each flow carries the deadline it was judged by (the scenario's deadlineMs, judge.ts).
    const judged = r.traffic.filter((f) => f.lostOrLate !== undefined);
    const deadline = judged[0]?.deadlineMs;
    const name = `lost or late${deadline !== undefined ? ` > ${deadline} ms` : ''}`;
    // A flow without the figure was not judged against the deadline: no pass on it.
    if (!r.traffic.length || judged.length < r.traffic.length) {
      checks.push(line(name, `<= ${e.maxLostOrLate}`, 'not measured (no deadline given to the analysis)', false));
    } else {
      const n = total(r, (f) => f.lostOrLate!);
      checks.push(line(name, `<= ${e.maxLostOrLate}`, n, n <= e.maxLostOrLate));
    }
  }
  if (e.minAnnounces !== undefined) {
    const n = r.announces.filter((a) => a.kind === 'rarp').length;
    checks.push(line('RARP announces', `>= ${e.minAnnounces}`, n, n >= e.minAnnounces));
  }
  if (e.minPasses !== undefined) {
    const p = r.migration.passes ?? 0;
    checks.push(line('precopy passes', `>= ${e.minPasses}`, p, p >= e.minPasses));
  }
  // "0 lost" means on every packet: the guest's own sequence counters must agree with the pcap.
  if (e.lost === 0 && r.guestCounters?.length) {
    const missing = r.guestCounters.reduce((s, c) => s + c.missing, 0);
    checks.push(line('guest sink missing', '0', missing, missing === 0));
  }
  return checks;
}

/**
 * Every flow the scenario asked for is in the capture with packets in it: a run whose traffic
 * never flowed has measured nothing, so `lost <= 0` holding on no flow is not a pass (issue 18).
 * A UDP flow in both directions is two captured flows (echo and the guest's stream).
 */
export function checkFlowsCaptured(flows: Scenario['traffic']['flows'], r: ScenarioResult): Check[] {
  return (['ping', 'udp'] as const).flatMap((kind) => {
    const wanted = flows.reduce((n, f) => n + (f.kind !== kind ? 0 : f.kind === 'udp' && f.direction === 'both' ? 2 : 1), 0);
    if (!wanted) return [];
    const captured = r.traffic.filter((f) => f.kind === kind && f.sent > 0).length;
    return [line(`${kind} flows captured`, `>= ${wanted} with packets`, captured, captured >= wanted)];
  });
}

export function verdictOf(checks: Check[]): 'pass' | 'fail' {
  return checks.every((c) => c.ok) ? 'pass' : 'fail';
}

/** A generator below this share of the rate asked did not run the scenario asked for. */
const MIN_RATE_SHARE = 0.95;
/** Phases in which a VM runs the guest outside the downtime window (source STOP to
 * destination start): the source before it stops, the destination once it has the guest. */
const GUEST_PHASES: Record<'source' | 'destination', readonly string[]> = { source: ['setup', 'active'], destination: ['completed'] };

const num = (v: number): string => Math.round(v).toLocaleString('en-US');
const FIX = 'lower the traffic (--set rate=N, --set interval=MS) or run on a less loaded machine';

/**
 * Why a run cannot be judged, one reason per part that was the bottleneck, each naming it and
 * what to do (issue 12). Any reason makes the verdict `error`: the loss measured is then the
 * harness's or the machine's, and a `pass` or `fail` on it would be false.
 */
export function harnessBottlenecks(r: ScenarioResult, flows: Scenario['traffic']['flows']): string[] {
  const h = r.health;
  if (!h) return [];
  const out: string[] = [];
  for (const g of h.generators) {
    if (g.askedRate > 0 && g.achievedRate < MIN_RATE_SHARE * g.askedRate) {
      out.push(`the UDP generator sent ${num(g.achievedRate)}/s of the ${num(g.askedRate)}/s asked (${Math.round((100 * g.achievedRate) / g.askedRate)}%): it could not keep the rate; ${FIX}`);
    }
    if (g.sendErrors > 0) out.push(`the UDP generator had ${g.sendErrors} failed sends: its datagrams never left; ${FIX}`);
  }
  const own = h.generators.reduce((n, g) => n + g.socketDrops, 0);
  const { rcvbufErrors, sndbufErrors } = h.udp.client;
  if (own > 0 || rcvbufErrors > 0 || sndbufErrors > 0) {
    out.push(`harness sockets in the client netns dropped datagrams (UDP RcvbufErrors ${rcvbufErrors}, SndbufErrors ${sndbufErrors}; the generator's own socket ${own}): the generator or ping did not keep up; ${FIX}`);
  }
  for (const c of h.captures) {
    if (c.droppedByKernel > 0) out.push(`tcpdump on ${c.iface} dropped ${c.droppedByKernel} packets in the kernel: the capture is incomplete; ${FIX}`);
  }
  const slow = new Map<string, number>();
  for (const f of r.traffic) {
    for (const c of f.lossCauses ?? []) if (c.cause === 'tap-queue' && c.vm === 'running-too-slow') slow.set(c.where!, (slow.get(c.where!) ?? 0) + c.count);
  }
  for (const [tap, n] of slow) {
    out.push(`${n} packets were dropped at the queue of ${tap} while its VM was running: the VM could not keep up with its traffic, which is not the migration's loss; fix the VM's receive path or ${FIX}`);
  }
  // Frames a second the guest is offered; a stall longer than its TAP queue lasts at this rate overflows it.
  const rate = flows.reduce((n, f) => n + (f.kind === 'ping' ? 1000 / f.intervalMs : f.direction === 'from-guest' ? 0 : f.rate), 0);
  for (const st of h.engineStalls) {
    if (!GUEST_PHASES[st.role].includes(st.phase)) continue;
    const qlen = h.taps.find((t) => t.name === st.tap)?.txqueuelen ?? 0;
    if (qlen > 0 && (st.maxMs * rate) / 1000 > qlen) {
      out.push(`the ${st.role} VM ${st.vm} stalled ${st.maxMs} ms in its ${st.phase} phase, outside the downtime window: at ${num(rate)} packets/s that overflows the ${qlen}-frame queue of ${st.tap}; the engine (or the machine) is the bottleneck; ${FIX}`);
    }
  }
  return out;
}
