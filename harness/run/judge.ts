// From a run's captures and checks to its figures and verdict: one code path for the runner
// and for `switchover analyze TRACE`, so a trace re-judged offline gives the run's verdict and
// figures on the same files. The inputs are plain data (CaptureAnalysisInput, JudgeInput):
// the runner builds them from what it recorded, and a trace keeps them in trace.json.
import { analyzePcap, type PcapAnalysis, type SenderLog } from '../capture/analyzer.js';
import { attributeLoss, tapPeriods, type VmLife } from '../capture/loss-causes.js';
import { checkExpectations, checkFlowsCaptured, harnessBottlenecks, verdictOf } from '../verdict/verdict.js';
import type { Expectations, Layout, RunHealth, ScenarioResult, TrafficSpec } from '../scenario/types.js';

type Check = ScenarioResult['expectations'][number];

/** Unanswered requests this close to the end of the capture are in flight, not lost: our
 * generators stop on a signal, and a reply here takes well under a millisecond. */
export const IN_FLIGHT_WINDOW_MS = 300;

/** What the analysis of a run's captures takes, as the runner had it. */
export interface CaptureAnalysisInput {
  /** The run's t0 (hop 1's `migrate`), µs since the epoch. */
  t0Micros: number;
  inFlightWindowMs: number;
  client: { iface: string; file: string };
  /** tap0 then tap1, captured both ways. */
  taps: Array<{ iface: string; file: string }>;
  /** The TAP the guest moved to (tap0 again for local migration). */
  targetTap: string;
  guestMac: string;
  local: boolean;
  /** Hop 1's handover (the source's STOP), µs since the epoch; absent when no hop completed. */
  handoverMicros?: number;
  layout: Layout;
  guestIp: string;
  /** Who held which TAP when (ms relative to t0); fromMs null: never (JSON has no Infinity). */
  vmLives: Array<Omit<VmLife, 'fromMs'> & { fromMs: number | null }>;
  /** What ping and the generators say they sent: holes in the client's request streams that
   * they cover count as lost (capture/sender-log.ts). */
  senderLogs?: SenderLog[];
  /** The scenario's deadlineMs: each client flow then carries lostOrLate (analyzer.ts). */
  deadlineMs?: number;
}

export type CaptureFigures = Pick<ScenarioResult, 'traffic' | 'announces' | 'macFlapping'>;

/** The client's flows with a cause for every lost packet, and the target TAP's announces. */
export async function analyzeRunCaptures(a: CaptureAnalysisInput, health: RunHealth): Promise<CaptureFigures> {
  const client = await analyzePcap(a.client.file, {
    t0Micros: a.t0Micros, iface: a.client.iface, inFlightWindowMs: a.inFlightWindowMs, ...(a.senderLogs ? { senderLogs: a.senderLogs } : {}),
    ...(a.deadlineMs !== undefined ? { deadlineMs: a.deadlineMs } : {}),
  });
  const taps: PcapAnalysis[] = [];
  for (const { iface, file } of a.taps) {
    taps.push(await analyzePcap(file, {
      t0Micros: a.t0Micros, iface, seqEvidence: true,
      // Announces and MAC flapping: the target's. Local migration keeps the TAP: the source
      // spoke on it until stop; only hop 1 matters.
      ...(iface !== a.targetTap ? {} : { guestMac: a.guestMac, ...(a.local ? {} : { handoverMicros: a.handoverMicros ?? Number.MAX_SAFE_INTEGER }) }),
    }));
  }
  const target = taps.find((t) => t.iface === a.targetTap);
  if (!target) throw new Error(`no capture of the target TAP ${a.targetTap} among ${a.taps.map((t) => t.iface).join(', ')}`);
  // Where each lost packet died: the TAP captures, the counters, who read which TAP when.
  const lives: VmLife[] = a.vmLives.map((l) => ({ ...l, fromMs: l.fromMs ?? Infinity }));
  const causes = attributeLoss({
    flows: client.flows, taps: taps.map((t) => ({ tap: t.iface, seen: t.seen! })), periods: tapPeriods(lives),
    tapTxDropped: Object.fromEntries(health.taps.map((t) => [t.name, t.txDropped])), clientVeth: health.clientVeth,
    arpUnresolvedDiscards: health.arpUnresolvedDiscards, layout: a.layout, guestIp: a.guestIp,
  });
  client.flows.forEach((f, i) => { f.lossCauses = causes[i]; });
  return { traffic: client.flows, announces: target.announces, macFlapping: !a.local && target.macFlapping };
}

/** What the verdict takes besides the figures. */
export interface JudgeInput {
  expectations: Expectations;
  flows: TrafficSpec[];
  /** Checks the run made before its analysis: each hop's destination ran, the guest survived. */
  runChecks: Check[];
  /** iputils' own lost seqs (ping -O), when the scenario pinged. */
  pingLostSeqs?: number[];
  /** Timed faults that never fired: `KIND at PHASE: why`. */
  unfired: string[];
  /** The guest died: its loss is the crash's, never a slow harness. */
  guestGone: boolean;
}

/** iputils' own view (-O) must agree with the pcap: every pcap loss is a ping loss. */
export function crossCheckPing(traffic: ScenarioResult['traffic'], pingLostSeqs: number[]): Check | undefined {
  const icmp = traffic.find((f) => f.kind === 'ping');
  if (!icmp) return undefined;
  const pingLost = new Set(pingLostSeqs);
  const missing = icmp.lostSeqs.filter((q) => !pingLost.has(q));
  return {
    name: 'ping output agrees with pcap', expected: 'pcap losses ⊆ ping losses',
    actual: missing.length ? `pcap-only losses: ${missing.slice(0, 10).join(',')}` : `ping ${pingLostSeqs.length}, pcap ${icmp.lostSeqs.length}`,
    ok: missing.length === 0,
  };
}

/** Sets the result's expectations, verdict and reason from its figures and `j`. */
export function judge(result: ScenarioResult, j: JudgeInput): void {
  const ping = j.pingLostSeqs ? crossCheckPing(result.traffic, j.pingLostSeqs) : undefined;
  result.expectations = [
    ...j.runChecks,
    ...(ping ? [ping] : []),
    ...checkExpectations(result, j.expectations),
    ...checkFlowsCaptured(j.flows, result),
    ...j.unfired.map((u) => ({ name: 'fault fired', expected: 'fired', actual: u, ok: false })),
  ];
  result.verdict = verdictOf(result.expectations);
  delete result.reason;
  if (result.verdict === 'fail') {
    result.reason = result.expectations.filter((c) => !c.ok).map((c) => `${c.name}: expected ${c.expected}, got ${c.actual}`).join('; ');
  }
  const bottlenecks = j.guestGone ? [] : harnessBottlenecks(result, j.flows);
  if (bottlenecks.length) {
    result.reason = `the harness or the machine was the bottleneck, so this run cannot judge the migration (its expectations ${result.verdict === 'pass' ? 'held' : 'failed'}): ${bottlenecks.join('; ')}`;
    result.verdict = 'error';
  }
}

/** A teardown that left something behind makes the run an error, whatever its verdict. */
export function judgeTeardown(result: ScenarioResult, errors: readonly string[]): void {
  if (errors.length && result.verdict !== 'error') {
    result.verdict = 'error';
    result.reason = `teardown left something behind: ${errors.join('; ')}`;
  }
}
