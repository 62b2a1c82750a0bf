// Offline analysis of a switchover capture: per flow, which packets were lost, delayed,
// duplicated or reordered, how long the outage lasted, and the announce frames.
//
// Flows (IPv4):
// - ICMP echo, keyed by (requester, responder, id): requests matched to replies by seq
//   (16-bit, unwrapped so long runs keep counting).
// - UDP echo, keyed by (client addr:port, guest addr:port 7): a datagram to the echo port is
//   a request, the datagram back from it the reply, matched by the sequence number in the
//   first 8 payload bytes (big endian; bytes 8-16 carry the send time in µs).
// - Any other UDP datagram with a 16-byte payload is a one-way sequenced stream (for
//   example guest->client), judged by gaps in the sequence numbers it delivered.
//
// Rules (the numbers a verdict rests on):
// - baseline RTT = median RTT of the first `baselineSamples` (20) answered requests in seq
//   order; for one-way streams the same over send-to-arrival latency, used only when the
//   sender's clock agrees with the capture clock (|latency| < 60 s).
// - delayed = answered, with added latency (RTT - baseline) > max(delayMinMs (5 ms),
//   delayFactor (5) x baseline): the switchover-sized delays netpass produces, not jitter.
// - in flight = unanswered but sent within `inFlightWindowMs` (1000 ms) of the capture's
//   last packet: the capture stopped before the answer could arrive; not switchover loss.
// - lost = unanswered and not in flight. One-way streams: a seq missing between the lowest
//   and highest seq seen (loss after the last delivered datagram is invisible there).
// - outage window = each affected packet spans from its send time to its reply (delayed)
//   or to its successor's send time (lost); spans closer than max(5 ms, 2 x the send
//   interval) join into one window, and the outage is the longest window: the switchover,
//   not a stray late reply a second away.
//   One-way streams place a lost seq by interpolating the arrivals of its neighbours.
// - with `guestMac`, announces and MAC flapping count only frames whose source is the guest
//   MAC: on a TAP captured both ways (runner.ts), the VM's own frames.
// - reordered = a first arrival whose seq is below the highest seq already delivered;
//   duplicates = extra copies of an already delivered reply.
// - maxGapMs = the largest gap between consecutive replies (arrivals) of the flow.
// - `tcpdump -i any` (Linux SLL2) sees a forwarded packet once per interface it crosses; a
//   flow counts only the interface it was first seen on (the others: `otherInterfaceCopies`).
//
// Times are ms relative to `t0Micros` (the harness passes the `migrate` command time, so
// the marks line up with the QMP timeline); by default the capture's first packet.
import { basename } from 'node:path';
import type { AnnounceFrame, FlowResult } from '../scenario/types.js';
import {
  ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_RARP, formatMac, readPcap, type PcapFileInfo, type PcapPacket,
} from './pcap-reader.js';
import { median } from '../../lib/stats.js';

export interface AnalyzeOptions {
  /** Epoch µs that becomes t = 0 (the `migrate` command time); default the first packet. */
  t0Micros?: number;
  /** Unanswered requests this close to the end of the capture are in flight (default 1000). */
  inFlightWindowMs?: number;
  /** Answered requests whose median RTT is the baseline (default 20). */
  baselineSamples?: number;
  /** Added latency above max(delayMinMs, delayFactor x baseline) is "delayed" (5 ms, 5). */
  delayMinMs?: number;
  delayFactor?: number;
  /** Name of the capture point in announce frames (default the file's basename). */
  iface?: string;
  /** The guest's MAC: frames from it before `handoverMicros` mean MAC flapping, and only
   * frames from it are announces. Only set it for a capture on the destination TAP. */
  guestMac?: string;
  handoverMicros?: number;
  /** UDP echo port (default 7). */
  echoPort?: number;
  /** Only UDP flows touching these ports are analysed (default: any sequenced datagram). */
  udpPorts?: number[];
  /** Flows with more packets than this carry no per-packet marks (default 20000). */
  maxPacketMarks?: number;
  /** One-way UDP flows with fewer datagrams are not streams (DHCP, mDNS...): ignored (default 3). */
  minStreamDatagrams?: number;
  /** Keep, per flow, when each seq was seen (PcapAnalysis.seen), for loss attribution
   * across capture points (loss-causes.ts). */
  seqEvidence?: boolean;
}

/** What one capture point saw of a flow, per seq: ms relative to t0 of the first sighting. */
export interface SeqEvidence {
  /** Requests; for a one-way stream, its datagrams. */
  requestAt: Map<number, number>;
  /** Replies (request-reply flows only). */
  replyAt: Map<number, number>;
}

export interface PcapFlow extends FlowResult {
  /** request-reply: echo matched to answer; one-way: a stream judged by seq gaps. */
  mode: 'request-reply' | 'one-way';
  /** The IPv4 address that sends the requests (one-way: the datagrams). */
  sender: string;
  delayedSeqs: number[];
  inFlightSeqs: number[];
  /** Outage window in ms relative to t0; null when nothing was affected. */
  outageStartMs: number | null;
  outageEndMs: number | null;
  /** Replies to requests the capture never saw (it started mid-flight). */
  orphanReplies: number;
  /** Requests seen more than once with the same seq. */
  duplicateRequests: number;
  /** SLL2 captures: copies of the flow's packets seen on other interfaces, not counted. */
  otherInterfaceCopies: number;
}

export interface FlappingFrame { t: number; mac: string }

export interface PcapAnalysis {
  file: string;
  iface: string;
  linkType: number;
  packets: number;
  truncated: boolean;
  /** Bytes after the last record that are not records (pcap-reader.ts); absent when none. */
  trailing?: PcapFileInfo['trailing'];
  t0Micros: number;
  /** First and last packet, ms relative to t0. */
  startMs: number;
  endMs: number;
  flows: PcapFlow[];
  announces: AnnounceFrame[];
  macFlapping: boolean;
  /** The first frames (at most 10) that showed the guest MAC before handover. */
  flappingFrames: FlappingFrame[];
  /** UDP flows ignored because their payload did not look sequenced (huge seq jumps, or a
   * one-way flow of fewer than minStreamDatagrams datagrams). */
  unsequencedUdpFlows: number;
  /** With `seqEvidence`: per flow name, what this capture saw of each seq. */
  seen?: Map<string, SeqEvidence>;
}

const DEFAULTS = {
  inFlightWindowMs: 1000, baselineSamples: 20, delayMinMs: 5, delayFactor: 5, echoPort: 7, maxPacketMarks: 20_000,
  minStreamDatagrams: 3,
};
/** A seq further than this from a flow's range means the payload is not our sequence. */
const MAX_SEQ_SPAN = 1 << 22;
const PROTO_ICMP = 1;
const PROTO_UDP = 17;

/**
 * Per-seq state of one flow in typed arrays indexed by seq - base: no object per packet.
 * reqT: request send time (µs), or for one-way streams the sender's timestamp; repT: the
 * first reply (arrival) time; repCount: replies (arrivals) seen.
 */
class SeqTable {
  base = 0;
  cap = 0;
  reqT = new Float64Array(0);
  repT = new Float64Array(0);
  repCount = new Uint16Array(0);
  minSeq = Infinity;
  maxSeq = -Infinity;

  /** Slot index of `seq`, growing the arrays; -1 when seq is absurdly far from the range. */
  slot(seq: number): number {
    if (this.cap === 0) {
      this.base = seq - 64;
      this.resize(0, 1024);
    }
    if (seq < this.minSeq) {
      if (this.maxSeq - seq > MAX_SEQ_SPAN) return -1;
      this.minSeq = seq;
    }
    if (seq > this.maxSeq) {
      if (seq - this.minSeq > MAX_SEQ_SPAN) return -1;
      this.maxSeq = seq;
    }
    let idx = seq - this.base;
    if (idx < 0) {
      const shift = Math.max(-idx, this.cap);
      this.resize(shift, this.cap + shift);
      this.base -= shift;
      idx += shift;
    } else if (idx >= this.cap) {
      let cap = this.cap * 2;
      while (idx >= cap) cap *= 2;
      this.resize(0, cap);
    }
    return idx;
  }

  private resize(shift: number, cap: number): void {
    const reqT = new Float64Array(cap).fill(NaN);
    const repT = new Float64Array(cap).fill(NaN);
    const repCount = new Uint16Array(cap);
    reqT.set(this.reqT, shift);
    repT.set(this.repT, shift);
    repCount.set(this.repCount, shift);
    this.reqT = reqT;
    this.repT = repT;
    this.repCount = repCount;
    this.cap = cap;
  }
}

class FlowState {
  readonly table = new SeqTable();
  lastSeq = NaN;            // last unwrapped ICMP seq, the reference for unwrapping
  maxDelivered = -Infinity;
  lastArrival = NaN;
  maxGapMicros = 0;
  duplicates = 0;
  reordered = 0;
  duplicateRequests = 0;
  invalid = false;
  arrivals = 0;
  ifindex = -1;
  otherInterfaceCopies = 0;
  constructor(readonly kind: 'ping' | 'udp', readonly mode: 'request-reply' | 'one-way', readonly name: string,
    readonly sender: string) {}

  /** False for an SLL2 copy of this flow's packet seen on a second interface. */
  onItsInterface(ifindex: number): boolean {
    if (ifindex < 0 || this.ifindex === ifindex) return true;
    if (this.ifindex < 0) { this.ifindex = ifindex; return true; }
    this.otherInterfaceCopies++;
    return false;
  }

  /** Unwrap a 16-bit ICMP seq to the value nearest the previous one. */
  unwrap16(seq: number): number {
    if (Number.isNaN(this.lastSeq)) return (this.lastSeq = seq);
    const delta = ((seq - (this.lastSeq & 0xffff) + 0x8000) & 0xffff) - 0x8000;
    const ext = this.lastSeq + delta;
    if (ext > this.lastSeq) this.lastSeq = ext;
    return ext;
  }

  request(seq: number, tMicros: number): void {
    const i = this.table.slot(seq);
    if (i < 0) { this.invalid = true; return; }
    if (Number.isNaN(this.table.reqT[i]!)) this.table.reqT[i] = tMicros;
    else this.duplicateRequests++;
  }

  /** A reply (request-reply flows) or a datagram arrival (one-way streams). */
  arrival(seq: number, tMicros: number, senderMicros: number): void {
    const t = this.table;
    const i = t.slot(seq);
    if (i < 0) { this.invalid = true; return; }
    const n = t.repCount[i]!;
    if (n < 0xffff) t.repCount[i] = n + 1;
    if (n > 0) { this.duplicates++; return; }
    this.arrivals++;
    t.repT[i] = tMicros;
    if (this.mode === 'one-way') t.reqT[i] = senderMicros;
    if (seq < this.maxDelivered) this.reordered++;
    else this.maxDelivered = seq;
    if (!Number.isNaN(this.lastArrival) && tMicros - this.lastArrival > this.maxGapMicros) {
      this.maxGapMicros = tMicros - this.lastArrival;
    }
    this.lastArrival = tMicros;
  }
}

const ipStr = (v: number): string => `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;

/** Parse "52:54:00:12:34:56" into the two numbers the per-packet compare uses. */
function macKey(mac: string): [number, number] {
  const parts = mac.split(/[:-]/).map((h) => parseInt(h, 16));
  if (parts.length !== 6 || parts.some((v) => !(v >= 0 && v <= 255))) {
    throw new Error(`guestMac "${mac}" is not a MAC address like 52:54:00:12:34:56`);
  }
  const b = Buffer.from(parts);
  return [b.readUInt32BE(0), b.readUInt16BE(4)];
}

/** Analyse one pcap file (streamed; memory grows with the number of flows and seqs). */
export async function analyzePcap(file: string, opts: AnalyzeOptions = {}): Promise<PcapAnalysis> {
  const o = { ...DEFAULTS, ...stripUndefined(opts) };
  const echoPort = o.echoPort;
  const udpPorts = opts.udpPorts ? new Set(opts.udpPorts) : null;
  const guest = opts.guestMac ? macKey(opts.guestMac) : null;
  const handover = opts.handoverMicros ?? Infinity;
  const iface = opts.iface ?? basename(file);

  // Flow lookup by numbers, not strings: outer key (responder ip, port or 0), inner key
  // (requester ip, id or port). A per-packet template string would dominate the cost.
  const icmpFlows = new Map<number, Map<number, FlowState>>();
  const udpFlows = new Map<number, Map<number, FlowState>>();
  const lookup = (
    root: Map<number, Map<number, FlowState>>, outer: number, inner: number, make: () => FlowState,
  ): FlowState => {
    let m = root.get(outer);
    if (!m) root.set(outer, (m = new Map()));
    let f = m.get(inner);
    if (!f) m.set(inner, (f = make()));
    return f;
  };
  const order: FlowState[] = [];
  const made = (f: FlowState): FlowState => { order.push(f); return f; };
  const rawAnnounces: Array<{ tMicros: number; kind: 'rarp' | 'garp'; mac: string }> = [];
  const flapping: Array<{ tMicros: number; mac: string }> = [];
  let flappingCount = 0;

  const onPacket = (p: PcapPacket): void => {
    const b = p.buf;
    const end = p.offset + p.capLen;
    const fromGuest = guest !== null && p.srcMacOffset >= 0
      && b.readUInt32BE(p.srcMacOffset) === guest[0] && b.readUInt16BE(p.srcMacOffset + 4) === guest[1];
    if (fromGuest && p.tsMicros < handover) {
      if (flappingCount++ < 10) flapping.push({ tMicros: p.tsMicros, mac: formatMac(b, p.srcMacOffset) });
    }
    const et = p.ethertype;
    const o4 = p.payloadOffset;
    if (et === ETHERTYPE_IPV4) {
      if (o4 + 20 > end || b[o4]! >> 4 !== 4) return;
      if ((b.readUInt16BE(o4 + 6) & 0x1fff) !== 0) return; // a non-first fragment has no L4 header
      const l4 = o4 + (b[o4]! & 0x0f) * 4;
      const proto = b[o4 + 9]!;
      const src = b.readUInt32BE(o4 + 12);
      const dst = b.readUInt32BE(o4 + 16);
      if (proto === PROTO_ICMP) {
        if (l4 + 8 > end) return;
        const type = b[l4]!;
        if (type !== 8 && type !== 0) return;
        const id = b.readUInt16BE(l4 + 4);
        const seq16 = b.readUInt16BE(l4 + 6);
        // Requester is the source of a request (8) and the destination of a reply (0).
        const requester = type === 8 ? src : dst;
        const responder = type === 8 ? dst : src;
        const f = lookup(icmpFlows, responder, requester * 65536 + id,
          () => made(new FlowState('ping', 'request-reply', `icmp ${ipStr(requester)}>${ipStr(responder)} id=${id}`, ipStr(requester))));
        if (!f.onItsInterface(p.ifindex)) return;
        const seq = f.unwrap16(seq16);
        if (type === 8) f.request(seq, p.tsMicros);
        else f.arrival(seq, p.tsMicros, NaN);
      } else if (proto === PROTO_UDP) {
        if (l4 + 24 > end || b.readUInt16BE(l4 + 4) < 24) return;
        const sport = b.readUInt16BE(l4);
        const dport = b.readUInt16BE(l4 + 2);
        if (udpPorts && !udpPorts.has(sport) && !udpPorts.has(dport)) return;
        const seq = b.readUInt32BE(l4 + 8) * 4294967296 + b.readUInt32BE(l4 + 12);
        if (dport === echoPort && sport !== echoPort) {
          const f = lookup(udpFlows, dst * 65536 + dport, src * 65536 + sport,
            () => made(new FlowState('udp', 'request-reply', `udp ${ipStr(src)}:${sport}>${ipStr(dst)}:${dport} echo`, ipStr(src))));
          if (f.onItsInterface(p.ifindex)) f.request(seq, p.tsMicros);
        } else if (sport === echoPort && dport !== echoPort) {
          const f = lookup(udpFlows, src * 65536 + sport, dst * 65536 + dport,
            () => made(new FlowState('udp', 'request-reply', `udp ${ipStr(dst)}:${dport}>${ipStr(src)}:${sport} echo`, ipStr(dst))));
          if (f.onItsInterface(p.ifindex)) f.arrival(seq, p.tsMicros, NaN);
        } else {
          const sent = b.readUInt32BE(l4 + 16) * 4294967296 + b.readUInt32BE(l4 + 20);
          const f = lookup(udpFlows, dst * 65536 + dport, src * 65536 + sport,
            () => made(new FlowState('udp', 'one-way', `udp ${ipStr(src)}:${sport}>${ipStr(dst)}:${dport}`, ipStr(src))));
          if (f.onItsInterface(p.ifindex)) f.arrival(seq, p.tsMicros, sent);
        }
      }
    } else if ((et === ETHERTYPE_RARP || et === ETHERTYPE_ARP) && (guest === null || fromGuest)) {
      // ARP body: htype(2) ptype(2) hlen(1) plen(1) op(2) sha(6) spa(4) tha(6) tpa(4).
      if (o4 + 28 > end || b[o4 + 4] !== 6) return;
      if (et === ETHERTYPE_RARP) {
        // QEMU's announce: qemu/net/announce.c announce_self_create(), RARP op 3, sha = guest MAC.
        rawAnnounces.push({ tMicros: p.tsMicros, kind: 'rarp', mac: formatMac(b, o4 + 8) });
      } else if (b[o4 + 5] === 4 && b.readUInt32BE(o4 + 14) === b.readUInt32BE(o4 + 24)) {
        rawAnnounces.push({ tMicros: p.tsMicros, kind: 'garp', mac: formatMac(b, o4 + 8) });
      }
    }
  };

  const info = await readPcap(file, onPacket);
  const t0 = opts.t0Micros ?? info.firstTsMicros;
  const ms = (micros: number): number => round3((micros - t0) / 1000);
  const endMicros = info.lastTsMicros;
  for (const f of order) if (f.mode === 'one-way' && f.arrivals < o.minStreamDatagrams) f.invalid = true;
  const valid = order.filter((f) => !f.invalid);
  const flows = valid.map((f) => finishFlow(f, { ...o, t0, endMicros }));
  return {
    file,
    iface,
    linkType: info.linkType,
    packets: info.packets,
    truncated: info.truncated,
    ...(info.trailing ? { trailing: info.trailing } : {}),
    t0Micros: t0,
    startMs: info.packets ? ms(info.firstTsMicros) : 0,
    endMs: info.packets ? ms(info.lastTsMicros) : 0,
    flows,
    announces: rawAnnounces.map((a) => ({ t: ms(a.tMicros), kind: a.kind, iface, mac: a.mac })),
    macFlapping: flappingCount > 0,
    flappingFrames: flapping.map((f) => ({ t: ms(f.tMicros), mac: f.mac })),
    unsequencedUdpFlows: order.filter((f) => f.invalid).length,
    ...(opts.seqEvidence ? { seen: new Map(valid.map((f) => [f.name, evidenceOf(f, ms)])) } : {}),
  };
}

function evidenceOf(f: FlowState, ms: (micros: number) => number): SeqEvidence {
  const t = f.table;
  const requestAt = new Map<number, number>();
  const replyAt = new Map<number, number>();
  for (let i = 0; i < t.cap; i++) {
    const seq = i + t.base;
    // A one-way stream's datagram is its arrival (reqT holds the sender's clock there).
    if (f.mode === 'one-way') {
      if (t.repCount[i]! > 0) requestAt.set(seq, ms(t.repT[i]!));
      continue;
    }
    if (!Number.isNaN(t.reqT[i]!)) requestAt.set(seq, ms(t.reqT[i]!));
    if (t.repCount[i]! > 0) replyAt.set(seq, ms(t.repT[i]!));
  }
  return { requestAt, replyAt };
}

type FinishOptions = typeof DEFAULTS & { t0: number; endMicros: number };

function finishFlow(f: FlowState, o: FinishOptions): PcapFlow {
  const t = f.table;
  const oneWay = f.mode === 'one-way';
  // The seqs this flow accounts for: requests seen, or for a stream lowest..highest arrival.
  const seqs: number[] = [];
  let orphanReplies = 0;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < t.cap; i++) {
    if (oneWay) {
      if (t.repCount[i]! > 0) { if (i < lo) lo = i; hi = i; }
    } else if (!Number.isNaN(t.reqT[i]!)) seqs.push(i);
    else if (t.repCount[i]! > 0) orphanReplies++;
  }
  if (oneWay) for (let i = lo; i <= hi; i++) seqs.push(i);

  const answered = (i: number): boolean => t.repCount[i]! > 0;
  // One-way latency uses the sender's clock; trust it only when it agrees with the capture.
  const latency = (i: number): number => {
    const v = (t.repT[i]! - t.reqT[i]!) / 1000;
    return oneWay && !(Math.abs(v) < 60_000) ? NaN : v;
  };
  const samples: number[] = [];
  for (const i of seqs) {
    if (samples.length >= o.baselineSamples) break;
    if (answered(i) && !Number.isNaN(latency(i))) samples.push(latency(i));
  }
  const baseline = median(samples);
  const threshold = Math.max(o.delayMinMs, o.delayFactor * baseline);

  // Time each seq stands for: its send time, or for a lost one-way seq the interpolation
  // between the arrivals of its delivered neighbours.
  const when = new Float64Array(seqs.length);
  let prevKnown = -1;
  for (let k = 0; k < seqs.length; k++) {
    const i = seqs[k]!;
    const known = oneWay ? (answered(i) ? t.repT[i]! : NaN) : t.reqT[i]!;
    when[k] = known;
    if (Number.isNaN(known)) continue;
    if (prevKnown >= 0 && k - prevKnown > 1) {
      const a = when[prevKnown]!;
      for (let j = prevKnown + 1; j < k; j++) when[j] = a + ((known - a) * (j - prevKnown)) / (k - prevKnown);
    }
    prevKnown = k;
  }

  const marks = seqs.length <= o.maxPacketMarks ? [] as NonNullable<FlowResult['packets']> : undefined;
  const lostSeqs: number[] = [];
  const delayedSeqs: number[] = [];
  const inFlightSeqs: number[] = [];
  let received = 0;
  let maxAdded = 0;
  // Affected packets come in send order; each opens or extends a window. Windows closer
  // than `merge` join; the outage is the longest window, so one stray late reply far from
  // the switchover does not stretch it over the whole run.
  const merge = Math.max(5_000, 2 * medianInterval(when));
  let curStart = Infinity, curEnd = -Infinity;
  let outStart = Infinity, outEnd = -Infinity;
  const affect = (start: number, end: number): void => {
    if (start <= curEnd + merge) { curEnd = Math.max(curEnd, end); return; }
    if (curEnd - curStart > outEnd - outStart) { outStart = curStart; outEnd = curEnd; }
    curStart = start;
    curEnd = end;
  };
  const inFlightFrom = o.endMicros - o.inFlightWindowMs * 1000;
  const seqOf = (i: number): number => i + t.base;
  for (let k = 0; k < seqs.length; k++) {
    const i = seqs[k]!;
    const sentAt = when[k]!;
    const sentMs = round3((sentAt - o.t0) / 1000);
    let state: 'ok' | 'lost' | 'delayed' | 'in-flight';
    let rttMs: number | undefined;
    if (answered(i)) {
      received++;
      state = 'ok';
      const l = latency(i);
      if (!Number.isNaN(l) && !Number.isNaN(baseline)) {
        rttMs = round3(l);
        const added = l - baseline;
        if (added > maxAdded) maxAdded = added;
        if (added > threshold) {
          state = 'delayed';
          delayedSeqs.push(seqOf(i));
          affect(sentAt, t.repT[i]!);
        }
      }
    } else if (!oneWay && sentAt >= inFlightFrom) {
      state = 'in-flight';
      inFlightSeqs.push(seqOf(i));
    } else {
      state = 'lost';
      lostSeqs.push(seqOf(i));
      // A lost packet's slot lasts until the next packet was sent.
      affect(sentAt, k + 1 < seqs.length ? when[k + 1]! : sentAt + medianInterval(when));
    }
    if (marks) marks.push(rttMs === undefined ? { seq: seqOf(i), t: sentMs, state } : { seq: seqOf(i), t: sentMs, rttMs, state });
  }

  if (curEnd - curStart > outEnd - outStart) { outStart = curStart; outEnd = curEnd; }
  const affected = outEnd >= outStart;
  const result: PcapFlow = {
    kind: f.kind,
    flow: f.name,
    sender: f.sender,
    mode: f.mode,
    sent: seqs.length,
    received,
    lost: lostSeqs.length,
    lostSeqs,
    delayed: delayedSeqs.length,
    delayedSeqs,
    maxAddedLatencyMs: round3(maxAdded),
    duplicates: f.duplicates,
    reordered: f.reordered,
    outageMs: affected ? round3((outEnd - outStart) / 1000) : 0,
    outageStartMs: affected ? round3((outStart - o.t0) / 1000) : null,
    outageEndMs: affected ? round3((outEnd - o.t0) / 1000) : null,
    maxGapMs: round3(f.maxGapMicros / 1000),
    inFlight: inFlightSeqs.length,
    inFlightSeqs,
    baselineRttMs: Number.isNaN(baseline) ? 0 : round3(baseline),
    orphanReplies,
    duplicateRequests: f.duplicateRequests,
    otherInterfaceCopies: f.otherInterfaceCopies,
  };
  if (marks) result.packets = marks;
  return result;
}

/**
 * Merge the analyses of several capture points of one run (client veth, tap0, tap1):
 * flows are kept per capture point (named "iface: flow"), announces merged in time order,
 * MAC flapping if any capture saw it. All analyses should share one t0Micros.
 */
export function combineAnalyses(list: PcapAnalysis[]): PcapAnalysis {
  if (list.length === 0) throw new Error('combineAnalyses: no analyses to combine');
  if (list.length === 1) return list[0]!;
  return {
    file: list.map((a) => a.file).join(','),
    iface: list.map((a) => a.iface).join(','),
    linkType: list[0]!.linkType,
    packets: list.reduce((s, a) => s + a.packets, 0),
    truncated: list.some((a) => a.truncated),
    t0Micros: list[0]!.t0Micros,
    startMs: Math.min(...list.map((a) => a.startMs)),
    endMs: Math.max(...list.map((a) => a.endMs)),
    flows: list.flatMap((a) => a.flows.map((f) => ({ ...f, flow: `${a.iface}: ${f.flow}` }))),
    announces: list.flatMap((a) => a.announces).sort((x, y) => x.t - y.t),
    macFlapping: list.some((a) => a.macFlapping),
    flappingFrames: list.flatMap((a) => a.flappingFrames).sort((x, y) => x.t - y.t).slice(0, 10),
    unsequencedUdpFlows: list.reduce((s, a) => s + a.unsequencedUdpFlows, 0),
  };
}

function medianInterval(when: Float64Array): number {
  const d: number[] = [];
  for (let k = 1; k < when.length && d.length < 100; k++) d.push(when[k]! - when[k - 1]!);
  const m = median(d);
  return Number.isNaN(m) ? 0 : m;
}

const round3 = (v: number): number => Math.round(v * 1000) / 1000;

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
