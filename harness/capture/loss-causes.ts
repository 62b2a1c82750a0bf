// Where every lost packet died (issue 12). A pure function over what a run recorded: the
// client capture (what was lost), the captures on the TAPs in both directions (what reached a
// VM, what a VM answered), the kernel's drop counters and which VM read each TAP when, in
// which state (from the QMP STOP/RESUME events). Each lost seq gets exactly one cause, so the
// causes of a flow add up to its lost count; what the evidence cannot place is `unknown`.
// The causes are described with LossCause in types.ts.
//
// A lost request seen on TAP X at time t is judged by the state of X's VM at t, with two
// corrections from the flow's own replies (a TAP queue is FIFO per flow):
//   - before a VM stops reading (STOP at T), a frame newer than the last one it answered may
//     still have sat in the queue at T: it belongs to the state after T;
//   - after a VM starts reading (RESUME at T), until it has answered the frames queued before
//     T, a drop is the backlog's doing: it belongs to the state before T.
// Counter-bound causes (tap-queue, veth-queue, host-arp-queue) take at most as many packets as
// the counter went up, earliest first; the rest are `unknown`. A lost request that no capture
// saw, in a hole of the client's request stream (analyzer.ts notOnWireSeqs), never left the
// client: `not-on-wire`.
//
// Where a packet was seen is the capture half of this, shared with `switchover analyze` of
// several capture points (analyzer.ts): sightingsOf() finds a seq's first and last sighting of
// its request and of its reply across the points; lastSeenOf() groups lost seqs by the last.
//
// API
//   tapPeriods(vms) -> TapPeriod[]          who read each TAP when, from VM lives
//   attributeLoss(evidence) -> LossCause[][]  per flow of evidence.flows, in the same order
//   sightingsOf(points, key) -> PacketSightings
//   lastSeenOf(points, seqs) -> LastSeen[]
import type { PcapFlow, SeqEvidence } from './analyzer.js';
import type { Layout, LossCause } from '../scenario/types.js';

/** One capture point's view of a flow: when (any clock, the same for all points) it first saw a seq's request and reply. */
export interface PointSightings {
  point: string;
  request(key: number): number | undefined;
  reply(key: number): number | undefined;
}

export interface Sighting { point: string; t: number }

export interface PacketSightings {
  firstRequest?: Sighting;
  lastRequest?: Sighting;
  firstReply?: Sighting;
  lastReply?: Sighting;
}

export function sightingsOf(points: readonly PointSightings[], key: number): PacketSightings {
  const s: PacketSightings = {};
  for (const p of points) {
    const rq = p.request(key);
    if (rq !== undefined) {
      if (!s.firstRequest || rq < s.firstRequest.t) s.firstRequest = { point: p.point, t: rq };
      if (!s.lastRequest || rq > s.lastRequest.t) s.lastRequest = { point: p.point, t: rq };
    }
    const rp = p.reply(key);
    if (rp !== undefined) {
      if (!s.firstReply || rp < s.firstReply.t) s.firstReply = { point: p.point, t: rp };
      if (!s.lastReply || rp > s.lastReply.t) s.lastReply = { point: p.point, t: rp };
    }
  }
  return s;
}

/**
 * Lost seqs by the last place they were seen: the latest sighting of the reply, else of the
 * request (a one-way stream's datagram counts as its request); `where` null: no point saw it.
 * Largest group first, seqs ascending.
 */
export interface LastSeen { where: string | null; as: 'request' | 'reply' | null; count: number; seqs: number[] }

export function lastSeenOf(points: readonly PointSightings[], seqs: readonly number[]): LastSeen[] {
  const by = new Map<string, LastSeen>();
  for (const seq of seqs) {
    const s = sightingsOf(points, seq);
    const last = s.lastReply ? { where: s.lastReply.point, as: 'reply' as const }
      : s.lastRequest ? { where: s.lastRequest.point, as: 'request' as const } : { where: null, as: null };
    const k = `${last.as}|${last.where}`;
    let g = by.get(k);
    if (!g) by.set(k, (g = { ...last, count: 0, seqs: [] }));
    g.count++;
    g.seqs.push(seq);
  }
  const out = [...by.values()];
  for (const g of out) g.seqs.sort((a, b) => a - b);
  return out.sort((a, b) => b.count - a.count);
}

/** running; paused: has not run yet (incoming, or -S before `cont`); stopped: ran, then STOP. */
export type VmState = 'running' | 'paused' | 'stopped';

/** From `fromMs` until the TAP's next period, `vm` read `tap` (or would have) in `state`. */
export interface TapPeriod { tap: string; vm: string; fromMs: number; state: VmState }

/** One VM process of a run, as the loss attribution needs it (times in ms relative to t0). */
export interface VmLife {
  name: string;
  tap: string;
  /** Started as a migration target: not running until its first RESUME. */
  incoming: boolean;
  /** When it got the TAP: its launch; a local-migration target, when the fds came over. */
  fromMs: number;
  /** Its STOP and RESUME events. */
  events: Array<{ tMs: number; event: 'STOP' | 'RESUME' }>;
}

export interface LossEvidence {
  /** The client capture's flows: their lostSeqs are what is attributed. */
  flows: PcapFlow[];
  /** What each TAP capture saw, per flow name (analyzePcap with seqEvidence). */
  taps: Array<{ tap: string; seen: Map<string, SeqEvidence> }>;
  periods: TapPeriod[];
  /** Counter deltas over the run: frames dropped at each TAP's queue, at the client veth,
   * and in the host's neighbour queue. */
  tapTxDropped: Record<string, number>;
  clientVeth: { name: string; txDropped: number };
  arpUnresolvedDiscards: number;
  layout: Layout;
  guestIp: string;
}

/** Who read each TAP when. A VM's events after a later VM took its TAP are not the TAP's. */
export function tapPeriods(vms: readonly VmLife[]): TapPeriod[] {
  const byTap = new Map<string, VmLife[]>();
  for (const vm of vms) byTap.set(vm.tap, [...(byTap.get(vm.tap) ?? []), vm]);
  const out: TapPeriod[] = [];
  for (const [tap, lives] of byTap) {
    const sorted = [...lives].sort((a, b) => a.fromMs - b.fromMs);
    sorted.forEach((vm, i) => {
      const until = sorted[i + 1]?.fromMs ?? Infinity;
      let ran = !vm.incoming;
      out.push({ tap, vm: vm.name, fromMs: vm.fromMs, state: ran ? 'running' : 'paused' });
      for (const e of [...vm.events].sort((a, b) => a.tMs - b.tMs)) {
        if (e.tMs < vm.fromMs || e.tMs >= until) continue;
        if (e.event === 'RESUME') ran = true;
        out.push({ tap, vm: vm.name, fromMs: e.tMs, state: e.event === 'RESUME' ? 'running' : ran ? 'stopped' : 'paused' });
      }
    });
  }
  return out.sort((a, b) => a.fromMs - b.fromMs);
}

/** One flow as one TAP capture saw it, with the per-period bounds effectiveState computes once. */
interface TapView {
  tap: string;
  requestAt: Map<number, number>;
  replyAt: Map<number, number>;
  /** By STOP time: the newest request before it that the VM answered. */
  lastRead: Map<number, number>;
  /** By RESUME time: when the VM had answered everything queued before it. */
  drained: Map<number, number>;
}

type Verdict = { cause: LossCause['cause']; where?: string; vm?: LossCause['vm'] };
interface Pending { flow: number; seq: number; t: number; budget: string; verdict: Verdict }

/** ICMP seqs are 16 bits on the wire: captures that start at different times unwrap them
 * differently, so they are matched modulo 2^16. */
const keyOf = (f: PcapFlow, seq: number): number => (f.kind === 'ping' ? seq & 0xffff : seq);

function rekey(f: PcapFlow, m: Map<number, number> | undefined): Map<number, number> {
  if (!m || f.kind !== 'ping') return m ?? new Map();
  const out = new Map<number, number>();
  for (const [seq, t] of m) out.set(seq & 0xffff, t);
  return out;
}

export function attributeLoss(e: LossEvidence): LossCause[][] {
  const periodsOf = new Map<string, TapPeriod[]>();
  for (const p of e.periods) periodsOf.set(p.tap, [...(periodsOf.get(p.tap) ?? []), p]);
  for (const list of periodsOf.values()) list.sort((a, b) => a.fromMs - b.fromMs);

  const decided: Array<Array<{ seq: number; v: Verdict }>> = e.flows.map(() => []);
  const pending: Pending[] = [];

  e.flows.forEach((f, fi) => {
    const taps: TapView[] = e.taps.map(({ tap, seen }) => {
      const s = seen.get(f.flow);
      return { tap, requestAt: rekey(f, s?.requestAt), replyAt: rekey(f, s?.replyAt), lastRead: new Map(), drained: new Map() };
    });
    const points: PointSightings[] = taps.map((x) => ({ point: x.tap, request: (k) => x.requestAt.get(k), reply: (k) => x.replyAt.get(k) }));
    const sentAt = new Map((f.packets ?? []).map((x) => [x.seq, x.t]));
    const holes = new Set(f.notOnWireSeqs);
    const stateAt = (tap: string, t: number): TapPeriod | undefined =>
      effectiveState(periodsOf.get(tap) ?? [], taps.find((x) => x.tap === tap)!, t);

    for (const seq of f.lostSeqs) {
      const key = keyOf(f, seq);
      const decide = (v: Verdict): void => { decided[fi]!.push({ seq, v }); };
      const sighted = sightingsOf(points, key);
      const seen = sighted.firstRequest;
      if (f.mode === 'one-way') {
        if (f.sender === e.guestIp) decide(seen ? { cause: 'reply-lost', where: seen.point } : { cause: 'not-on-wire', where: 'guest' });
        // The client capture is the sender's side: a gap there never went out, unless a TAP
        // saw it (then the capture itself missed it).
        else decide(seen ? { cause: 'unknown', where: e.clientVeth.name } : { cause: 'not-on-wire', where: e.clientVeth.name });
        continue;
      }
      if (sighted.firstReply) { decide({ cause: 'reply-lost', where: sighted.firstReply.point }); continue; }
      if (seen) {
        const p = stateAt(seen.point, seen.t);
        if (!p) decide({ cause: 'unknown', where: seen.point });
        else if (p.state === 'stopped') decide({ cause: 'stopped-source', where: seen.point });
        else {
          pending.push({ flow: fi, seq, t: seen.t, budget: `tap:${seen.point}`,
            verdict: { cause: 'tap-queue', where: seen.point, vm: p.state === 'paused' ? 'paused' : 'running-too-slow' } });
        }
        continue;
      }
      // A hole in the client's own request stream, on no TAP: the client never sent it.
      if (holes.has(seq)) { decide({ cause: 'not-on-wire', where: e.clientVeth.name }); continue; }
      // On no TAP: it died in the host between the client and the TAPs.
      pending.push({ flow: fi, seq, t: sentAt.get(seq) ?? 0, budget: 'off-tap', verdict: { cause: 'unknown' } });
    }
  });

  const budgets = new Map<string, number>(Object.entries(e.tapTxDropped).map(([tap, n]) => [`tap:${tap}`, Math.max(0, n)]));
  let veth = Math.max(0, e.clientVeth.txDropped);
  let arp = e.layout === 'routed' ? Math.max(0, e.arpUnresolvedDiscards) : 0;
  for (const p of pending.sort((a, b) => a.t - b.t)) {
    let v: Verdict;
    if (p.budget === 'off-tap') {
      if (veth > 0) { veth--; v = { cause: 'veth-queue', where: e.clientVeth.name }; }
      else if (arp > 0) { arp--; v = { cause: 'host-arp-queue' }; }
      else v = { cause: 'unknown' };
    } else {
      const left = budgets.get(p.budget) ?? 0;
      if (left > 0) { budgets.set(p.budget, left - 1); v = p.verdict; }
      else v = { cause: 'unknown', where: p.verdict.where };
    }
    decided[p.flow]!.push({ seq: p.seq, v });
  }
  return decided.map(group);
}

/**
 * The state that decides a frame seen on a TAP at `t`: the TAP's period at t, or the
 * neighbouring non-running one when the frame sat in (or was dropped behind) the queue across
 * a STOP or a RESUME. See the file header.
 */
function effectiveState(periods: TapPeriod[], x: TapView, t: number): TapPeriod | undefined {
  let i = -1;
  while (i + 1 < periods.length && periods[i + 1]!.fromMs <= t) i++;
  const p = periods[i];
  if (!p || p.state !== 'running') return p;
  const next = periods[i + 1];
  if (next && next.state !== 'running') {
    // The newest request before the STOP that the VM answered: anything newer may still have
    // been queued when it stopped.
    let lastRead = x.lastRead.get(next.fromMs);
    if (lastRead === undefined) {
      lastRead = -Infinity;
      for (const [key, tr] of x.requestAt) if (tr < next.fromMs && tr > lastRead && x.replyAt.has(key)) lastRead = tr;
      x.lastRead.set(next.fromMs, lastRead);
    }
    if (t > lastRead) return next;
  }
  const prev = periods[i - 1];
  if (prev && prev.state !== 'running') {
    // Until the VM has answered what queued up before it resumed, drops are that backlog's.
    let drained = x.drained.get(p.fromMs);
    if (drained === undefined) {
      drained = p.fromMs;
      for (const [key, tr] of x.requestAt) {
        const reply = x.replyAt.get(key);
        if (tr < p.fromMs && reply !== undefined && reply > drained) drained = reply;
      }
      x.drained.set(p.fromMs, drained);
    }
    if (t <= drained) return prev;
  }
  return p;
}

/** Verdicts -> causes: one entry per (cause, where, vm), largest first, seqs ascending. */
function group(items: Array<{ seq: number; v: Verdict }>): LossCause[] {
  const by = new Map<string, LossCause>();
  for (const { seq, v } of items) {
    const k = `${v.cause}|${v.where ?? ''}|${v.vm ?? ''}`;
    let c = by.get(k);
    if (!c) by.set(k, (c = { cause: v.cause, ...(v.where ? { where: v.where } : {}), ...(v.vm ? { vm: v.vm } : {}), count: 0, seqs: [] }));
    c.count++;
    c.seqs.push(seq);
  }
  const out = [...by.values()];
  for (const c of out) c.seqs.sort((a, b) => a - b);
  return out.sort((a, b) => b.count - a.count);
}
