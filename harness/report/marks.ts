// The marks of a flow's timeline lane, derived from the analyzer's per-packet list: every
// lost, delayed and reordered packet stays a mark of its own; the healthy ones (ok, and in
// flight at capture end) fold into runs of consecutive packets of one state. A 16,000-datagram
// flow thus draws as a few dozen marks instead of 16,000, and looks the same: a run is broken
// wherever the sender paused for longer than twice its usual interval and RUN_GAP_MS, the
// analyzer's rule for joining outage windows.
//
// The `--json` file carries these marks (traffic[].marks) when it drops the per-packet list, so
// `switchover report compare` can draw the timelines of two saved runs.
import { median } from '../../lib/stats.js';
import type { FlowResult } from '../scenario/types.js';

export type PacketState = NonNullable<FlowResult['packets']>[number]['state'];

/** One packet, or a run of `count` consecutive healthy packets from `seq`/`t` to `lastSeq`/`lastT`. */
export interface PacketMark {
  seq: number;
  /** Send time, ms relative to the migrate command (one-way streams: arrival time). */
  t: number;
  state: PacketState;
  /** The packet's round trip (one-way: latency); for a run the largest. */
  rttMs?: number;
  /** Arrived after a packet with a higher seq had (the analyzer's `reordered` rule). */
  reordered?: true;
  lastSeq?: number;
  lastT?: number;
  count?: number;
}

/** A flow as the report reads it: the analyzer's extra fields and the marks of a saved file. */
export type ReportFlow = FlowResult & {
  mode?: 'request-reply' | 'one-way';
  outageStartMs?: number | null;
  outageEndMs?: number | null;
  marks?: PacketMark[];
};

/** A gap in sending shorter than this never ends a run: at the report's usual scale (about
 * 1 ms a pixel) it leaves no visible hole. */
export const RUN_GAP_MS = 5;

/** The longest gap in sending a run spans: max(RUN_GAP_MS, 2 x the median send interval). */
function runGapMs(packets: NonNullable<FlowResult['packets']>): number {
  const gaps: number[] = [];
  for (let k = 1; k < packets.length; k++) gaps.push(packets[k]!.t - packets[k - 1]!.t);
  const m = median(gaps);
  return Number.isNaN(m) ? RUN_GAP_MS : Math.max(RUN_GAP_MS, 2 * m);
}

const HEALTHY = new Set<PacketState>(['ok', 'in-flight']);

/** Indexes of packets that arrived after a higher seq had: each answered packet whose arrival
 * is later than the earliest arrival among the seqs above it. Request-reply arrival is send
 * time + RTT; a one-way stream's `t` already is its arrival. */
function reorderedIndexes(f: ReportFlow, packets: NonNullable<FlowResult['packets']>): Set<number> {
  const out = new Set<number>();
  const oneWay = f.mode === 'one-way';
  let earliest = Infinity;
  for (let k = packets.length - 1; k >= 0; k--) {
    const p = packets[k]!;
    if (p.state !== 'ok' && p.state !== 'delayed') continue;
    const at = oneWay ? p.t : p.rttMs === undefined ? NaN : p.t + p.rttMs;
    if (Number.isNaN(at)) continue;
    if (at > earliest) out.add(k);
    else earliest = at;
  }
  return out;
}

/** The marks of a flow: the saved ones, else derived from its per-packet list; undefined when it has neither. */
export function flowMarks(f: ReportFlow): PacketMark[] | undefined {
  if (!f.packets) return f.marks;
  const packets = f.packets;
  const reordered = reorderedIndexes(f, packets);
  const maxGap = runGapMs(packets);
  const out: PacketMark[] = [];
  let run: PacketMark | undefined;
  packets.forEach((p, k) => {
    const single = !HEALTHY.has(p.state) || reordered.has(k);
    const prevT = run ? run.lastT ?? run.t : NaN;
    if (run && !single && p.state === run.state && p.t - prevT <= maxGap) {
      run.lastSeq = p.seq;
      run.lastT = p.t;
      run.count = (run.count ?? 1) + 1;
      if (p.rttMs !== undefined && (run.rttMs === undefined || p.rttMs > run.rttMs)) run.rttMs = p.rttMs;
      return;
    }
    const m: PacketMark = { seq: p.seq, t: p.t, state: p.state };
    if (p.rttMs !== undefined) m.rttMs = p.rttMs;
    if (reordered.has(k)) m.reordered = true;
    out.push(m);
    run = single ? undefined : m;
  });
  return out;
}

/** How many packets a mark stands for. */
export const markCount = (m: PacketMark): number => m.count ?? 1;
