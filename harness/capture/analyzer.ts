// Offline analysis of switchover captures: per flow, which packets were lost, delayed,
// duplicated or reordered, how long the outage lasted, and the announce frames. One capture file
// (analyzePcap) or several capture points merged into one account (analyzeCaptures).
//
// Flows (IPv4):
// - ICMP echo, keyed by (requester, responder, id): requests matched to replies by seq
//   (16-bit, unwrapped so long runs keep counting).
// - UDP echo, keyed by (client addr:port, guest addr:port 7): a datagram to the echo port is
//   a request, the datagram back from it the reply, matched by the sequence number of the
//   seq+time payload (lib/seq-payload.ts).
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
// - not on the wire = a request-reply flow's seq missing from its request stream between the
//   first and the last request, unanswered too: the sender could not send it (ping logs such a
//   seq as unanswered while the host address moves, issue 15). It counts in `sent` and `lost`
//   only where the sender's own log (AnalyzeOptions.senderLogs) says it was sent; otherwise it
//   is only in notOnWireSeqs. The outage window covers it either way.
// - outage window = each affected packet spans from its send time to its reply (delayed)
//   or to its successor's send time (lost, not on the wire); spans closer than max(5 ms, 2 x
//   the send interval) join into one window, and the outage is the longest window: the
//   switchover, not a stray late reply a second away.
//   Lost one-way seqs and holes are placed by interpolating the times of their neighbours.
// - with `guestMac`, announces and MAC flapping count only frames whose source is the guest
//   MAC: on a TAP captured both ways (runner.ts), the VM's own frames.
// - reordered = a first arrival whose seq is below the highest seq already delivered;
//   duplicates = extra copies of an already delivered reply.
// - reorderedMaxDepth = per reordered arrival, the highest seq delivered before it minus its
//   seq (how far behind it came); the flow's largest, 0 when nothing was reordered.
// - addedDelayMs = { p50, p99, max } of the added latency (RTT - baseline, as
//   maxAddedLatencyMs) over the delayed packets only; percentiles by nearest rank (the
//   ceil(p/100 x N)-th smallest, a value that occurred); null when nothing was delayed.
// - lostOrLate (only with `deadlineMs`) = lost + answered packets whose added latency is above
//   deadlineMs: what an application with that deadline loses. In-flight packets do not count
//   (not known late); a packet with no latency (a one-way stream on a foreign clock) is not late.
// - maxGapMs = the largest gap between consecutive replies (arrivals) of the flow.
//
// Capture points: a classic pcap is one, a pcapng one per interface (named by its if_name),
// and a Linux SLL2 capture (`tcpdump -i any`) one per ifindex. Each point keeps its own per-seq
// view of each flow; a flow seen at one point is judged there, as a single capture. A flow seen
// at several points is judged as one account, each packet counted once:
// - a request was sent when it was first seen anywhere;
// - a reply (a one-way datagram) arrived when seen at a point nearest the receiver: a point
//   whose arrivals no other point mostly sees again later. For a client's ping that is the
//   client veth; tap0 and tap1, which share no replies, both are when the client is not among
//   the points;
// - every other sighting is a copy (`otherInterfaceCopies`);
// - each lost seq is placed where it was last seen (`lastSeen`, loss-causes.ts).
//
// Memory grows with the flows and the span of their seqs, never with the file: per-seq state
// lives in typed arrays, bounded in total (MAX_TABLE_SLOTS) and in flows (MAX_FLOWS).
//
// Times are ms relative to `t0Micros` (the harness passes the `migrate` command time, so
// the marks line up with the QMP timeline); by default the captures' first packet.
import { readdir } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import type { AddedDelay, AnnounceFrame, FlowResult } from '../scenario/types.js';
import type { PcapFileInfo, PcapPacket } from './capture-file.js';
import { readPcap } from './pcap-reader.js';
import { lastSeenOf, type LastSeen, type PointSightings } from './loss-causes.js';
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_RARP, formatMac, intToIp, isMac, parseMac } from '../../lib/net-addr.js';
import { readSeq, readSeqPayload, SEQ_PAYLOAD_BYTES } from '../../lib/seq-payload.js';
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
  /** Name of the analysis, and of the capture point of a one-interface file (analyzePcap);
   * default the pcapng if_name, else the file's name without its extension. */
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
  /** What the senders say they sent: holes in a request stream they cover are lost (see the header). */
  senderLogs?: SenderLog[];
  /** Added latency (ms) above which an answered packet is late: each flow gets lostOrLate
   * and deadlineMs (see the header). Default: no deadline, neither field. */
  deadlineMs?: number;
}

/** A sender's own record of the seqs it sent (sender-log.ts reads ping's and the generator's). */
export interface SenderLog {
  kind: 'ping' | 'udp';
  /** The flow's destination address (and UDP port) as the sender names it; absent: any. */
  to?: string;
  port?: number;
  /** It sent every seq from firstSeq to lastSeq. */
  firstSeq: number;
  lastSeq: number;
  /** What the log is, for the report ("ping -D -O output"). */
  source: string;
}

/** One capture file given to analyzeCaptures. */
export interface CaptureFile {
  path: string;
  /** Name of its capture point when it has one interface (default: pcapng if_name, else the file's stem). */
  name?: string;
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
  reorderedMaxDepth: number;
  addedDelayMs: AddedDelay | null;
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
  /** Copies of the flow's packets seen at other capture points (or SLL2 interfaces), not counted. */
  otherInterfaceCopies: number;
  /** Seqs missing from the request stream, asked and answered nowhere (see the file header). */
  notOnWire: number;
  notOnWireSeqs: number[];
  /** The sender log that says they were sent: then they are in `sent` and `lost` too. */
  sentConfirmedBy?: string;
  /** With several capture points: the lost seqs by the last point that saw them. */
  lastSeen?: LastSeen[];
}

export interface FlappingFrame { t: number; mac: string }

/** One capture point: an interface of a file (an SLL2 file: one per ifindex). */
export interface CapturePoint {
  name: string;
  file: string;
  /** The pcapng if_name of its interface. */
  ifName?: string;
  /** Linux SLL2: the interface index of its packets. */
  ifindex?: number;
  linkType: number;
  packets: number;
  /** Its first and last packet, ms relative to t0. */
  startMs: number;
  endMs: number;
}

/** One file as read: its format and interfaces (with packets skipped on undecoded ones). */
export type CaptureFileSummary = { file: string } & Pick<PcapFileInfo, 'format' | 'linkType' | 'packets' | 'truncated' | 'trailing' | 'interfaces'>;

export interface PcapAnalysis {
  /** The file, or the files joined by ", ". */
  file: string;
  /** The analysis's name: `iface`, else its capture points' names joined by ",". */
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
  files: CaptureFileSummary[];
  points: CapturePoint[];
  /** With `seqEvidence`: per flow name, what the captures saw of each seq. */
  seen?: Map<string, SeqEvidence>;
}

/** The capture is too big or too strange to account for in bounded memory. */
export class AnalysisLimitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AnalysisLimitError';
  }
}

const DEFAULTS = {
  inFlightWindowMs: 1000, baselineSamples: 20, delayMinMs: 5, delayFactor: 5, echoPort: 7, maxPacketMarks: 20_000,
  minStreamDatagrams: 3,
};
/** A seq further than this from a flow's range means the payload is not our sequence. */
const MAX_SEQ_SPAN = 1 << 22;
/** Per-seq slots of all flows and points together (18 bytes each): 600 MB at most. */
const MAX_TABLE_SLOTS = 1 << 25;
const MAX_FLOWS = 100_000;
const FILTER_HINT = "keep only the switchover's traffic first, e.g. `tcpdump -r IN -w OUT 'icmp or udp'`";
const PROTO_ICMP = 1;
const PROTO_UDP = 17;
const UDP_HEADER = 8;

interface TableData {
  base: number;
  cap: number;
  reqT: Float64Array;
  repT: Float64Array;
  repCount: Uint16Array;
}

/**
 * Per-seq state of one flow at one capture point in typed arrays indexed by seq - base: no
 * object per packet. reqT: request time (µs), or for one-way streams the sender's timestamp;
 * repT: the first reply (arrival) time; repCount: replies (arrivals) seen.
 */
class SeqTable implements TableData {
  base = 0;
  cap = 0;
  reqT = new Float64Array(0);
  repT = new Float64Array(0);
  repCount = new Uint16Array(0);
  minSeq = Infinity;
  maxSeq = -Infinity;

  constructor(private readonly budget: { slots: number }) {}

  /** Slot index of `seq`, growing the arrays; -1 when seq is absurdly far from the range. */
  slot(seq: number): number {
    if (this.cap === 0) {
      this.base = seq - 4;
      this.resize(0, 16);
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

  release(): void {
    this.budget.slots -= this.cap;
    this.cap = 0;
    this.reqT = new Float64Array(0);
    this.repT = new Float64Array(0);
    this.repCount = new Uint16Array(0);
  }

  private resize(shift: number, cap: number): void {
    this.budget.slots += cap - this.cap;
    if (this.budget.slots > MAX_TABLE_SLOTS) {
      throw new AnalysisLimitError(`the capture's flows span more than ${MAX_TABLE_SLOTS} sequence numbers together; ${FILTER_HINT}`);
    }
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

/** What finishFlow judges: one point's view of a flow, or the merged account of several. */
interface FlowView {
  table: TableData;
  duplicates: number;
  reordered: number;
  /** The largest depth of a reordered arrival (see the file header). */
  reorderedMaxDepth: number;
  duplicateRequests: number;
  maxGapMicros: number;
  arrivals: number;
  /** Merged views: a reply was seen at some point (final or not) for the slot. */
  replySeen?: Uint8Array;
}

/** One flow as one capture point saw it. */
class PointFlow implements FlowView {
  readonly table: SeqTable;
  lastSeq = NaN;            // last unwrapped ICMP seq, the reference for unwrapping
  maxDelivered = -Infinity;
  lastArrival = NaN;
  maxGapMicros = 0;
  duplicates = 0;
  reordered = 0;
  reorderedMaxDepth = 0;
  duplicateRequests = 0;
  arrivals = 0;
  /** Distinct requests seen here. */
  requests = 0;

  constructor(readonly flow: Flow, budget: { slots: number }) {
    this.table = new SeqTable(budget);
  }

  /** Unwrap a 16-bit ICMP seq to the value nearest the previous one; a point's first seq is
   * placed nearest the flow's first seq at any point, so all points count alike. */
  unwrap16(seq: number): number {
    if (Number.isNaN(this.lastSeq)) {
      const anchor = this.flow.anchor;
      if (Number.isNaN(anchor)) return (this.flow.anchor = this.lastSeq = seq);
      return (this.lastSeq = anchor + ((((seq - (anchor & 0xffff)) + 0x8000) & 0xffff) - 0x8000));
    }
    const delta = ((seq - (this.lastSeq & 0xffff) + 0x8000) & 0xffff) - 0x8000;
    const ext = this.lastSeq + delta;
    if (ext > this.lastSeq) this.lastSeq = ext;
    return ext;
  }

  request(seq: number, tMicros: number): void {
    const i = this.table.slot(seq);
    if (i < 0) { this.flow.invalidate(); return; }
    if (Number.isNaN(this.table.reqT[i]!)) { this.table.reqT[i] = tMicros; this.requests++; }
    else this.duplicateRequests++;
  }

  /** A reply (request-reply flows) or a datagram arrival (one-way streams). */
  arrival(seq: number, tMicros: number, senderMicros: number): void {
    const t = this.table;
    const i = t.slot(seq);
    if (i < 0) { this.flow.invalidate(); return; }
    const n = t.repCount[i]!;
    if (n < 0xffff) t.repCount[i] = n + 1;
    if (n > 0) { this.duplicates++; return; }
    this.arrivals++;
    t.repT[i] = tMicros;
    if (this.flow.mode === 'one-way') t.reqT[i] = senderMicros;
    if (seq < this.maxDelivered) {
      this.reordered++;
      this.reorderedMaxDepth = Math.max(this.reorderedMaxDepth, this.maxDelivered - seq);
    } else this.maxDelivered = seq;
    if (!Number.isNaN(this.lastArrival) && tMicros - this.lastArrival > this.maxGapMicros) {
      this.maxGapMicros = tMicros - this.lastArrival;
    }
    this.lastArrival = tMicros;
  }
}

class Flow {
  /** Per capture point id. */
  readonly points: Array<PointFlow | undefined> = [];
  /** The first unwrapped ICMP seq at any point. */
  anchor = NaN;
  invalid = false;

  constructor(
    readonly kind: 'ping' | 'udp', readonly mode: 'request-reply' | 'one-way', readonly name: string,
    readonly sender: string, readonly responder: string, readonly responderPort: number, private readonly budget: { slots: number },
  ) {}

  at(point: number): PointFlow {
    return (this.points[point] ??= new PointFlow(this, this.budget));
  }

  /** Not a sequence of ours after all: stop tracking it and give its memory back. */
  invalidate(): void {
    this.invalid = true;
    for (const p of this.points) p?.table.release();
  }
}

/**
 * Flows by two numbers, remembering the last one found: a request and its reply share the
 * keys, so most packets hit it without a Map lookup.
 */
class FlowIndex {
  private readonly map = new Map<number, Map<number, Flow>>();
  private lastOuter = NaN;
  private lastInner = NaN;
  private last: Flow | undefined;

  get(outer: number, inner: number): Flow | undefined {
    if (outer === this.lastOuter && inner === this.lastInner) return this.last;
    const f = this.map.get(outer)?.get(inner);
    if (f) { this.lastOuter = outer; this.lastInner = inner; this.last = f; }
    return f;
  }

  set(outer: number, inner: number, f: Flow): void {
    let m = this.map.get(outer);
    if (!m) this.map.set(outer, (m = new Map()));
    m.set(inner, f);
  }
}

interface PointState {
  file: number;
  iface: number;
  ifindex: number;
  packets: number;
  firstTs: number;
  lastTs: number;
  name: string;
}

/** Parse "52:54:00:12:34:56" into the two numbers the per-packet compare uses. */
function macKey(mac: string): [number, number] {
  if (!isMac(mac)) throw new Error(`guestMac "${mac}" is not a MAC address like 52:54:00:12:34:56`);
  const b = parseMac(mac);
  return [b.readUInt32BE(0), b.readUInt16BE(4)];
}

/** Analyse one capture file, pcap or pcapng (streamed; memory grows with the flows, not the file). */
export function analyzePcap(file: string, opts: AnalyzeOptions = {}): Promise<PcapAnalysis> {
  return analyzeCaptures([{ path: file, ...(opts.iface !== undefined ? { name: opts.iface } : {}) }], opts);
}

/** The capture files of a folder (a run's trace folder): every *.pcap and *.pcapng, by name. */
export async function captureFilesIn(dir: string): Promise<CaptureFile[]> {
  const names = (await readdir(dir)).filter((n) => /\.(pcap|pcapng)$/i.test(n)).sort();
  if (!names.length) throw new Error(`${dir} holds no *.pcap or *.pcapng file; give capture files, or a folder of them`);
  return names.map((n) => ({ path: join(dir, n) }));
}

/** Analyse several capture points of one run together: one account of each packet (file header). */
export async function analyzeCaptures(files: readonly CaptureFile[], opts: AnalyzeOptions = {}): Promise<PcapAnalysis> {
  if (!files.length) throw new Error('analyzeCaptures: no capture files given');
  if (opts.deadlineMs !== undefined && !(Number.isFinite(opts.deadlineMs) && opts.deadlineMs > 0)) {
    throw new RangeError(`analyzeCaptures: deadlineMs must be a positive number of ms, got ${opts.deadlineMs}`);
  }
  const o = { ...DEFAULTS, ...stripUndefined(opts) };
  const echoPort = o.echoPort;
  const udpPorts = opts.udpPorts ? new Set(opts.udpPorts) : null;
  const guest = opts.guestMac ? macKey(opts.guestMac) : null;
  const handover = opts.handoverMicros ?? Infinity;
  const budget = { slots: 0 };

  // Flow lookup by numbers, not strings: outer key (responder ip, port or 0), inner key
  // (requester ip, id or port). A per-packet template string would dominate the cost.
  const icmpFlows = new FlowIndex();
  const udpFlows = new FlowIndex();
  const order: Flow[] = [];
  const add = (
    root: FlowIndex, outer: number, inner: number,
    kind: 'ping' | 'udp', mode: 'request-reply' | 'one-way', name: string, sender: number, responder: number, port: number,
  ): Flow => {
    if (order.length >= MAX_FLOWS) throw new AnalysisLimitError(`more than ${MAX_FLOWS} ICMP echo and UDP flows; ${FILTER_HINT}`);
    const f = new Flow(kind, mode, name, intToIp(sender), intToIp(responder), port, budget);
    root.set(outer, inner, f);
    order.push(f);
    return f;
  };
  const points: PointState[] = [];
  const rawAnnounces: Array<{ tMicros: number; kind: 'rarp' | 'garp'; mac: string; point: number }> = [];
  const flapping: Array<{ tMicros: number; mac: string }> = [];
  let flappingCount = 0;

  const onPacket = (p: PcapPacket, pid: number): void => {
    const b = p.buf;
    const v = p.view; // big-endian reads, as the network orders its fields
    const end = p.offset + p.capLen;
    const fromGuest = guest !== null && p.srcMacOffset >= 0
      && v.getUint32(p.srcMacOffset) === guest[0] && v.getUint16(p.srcMacOffset + 4) === guest[1];
    if (fromGuest && p.tsMicros < handover) {
      if (flappingCount++ < 10) flapping.push({ tMicros: p.tsMicros, mac: formatMac(b, p.srcMacOffset) });
    }
    const et = p.ethertype;
    const o4 = p.payloadOffset;
    if (et === ETHERTYPE_IPV4) {
      if (o4 + 20 > end || b[o4]! >> 4 !== 4) return;
      if ((v.getUint16(o4 + 6) & 0x1fff) !== 0) return; // a non-first fragment has no L4 header
      const l4 = o4 + (b[o4]! & 0x0f) * 4;
      const proto = b[o4 + 9]!;
      const src = v.getUint32(o4 + 12);
      const dst = v.getUint32(o4 + 16);
      if (proto === PROTO_ICMP) {
        if (l4 + 8 > end) return;
        const type = b[l4]!;
        if (type !== 8 && type !== 0) return;
        const id = v.getUint16(l4 + 4);
        const seq16 = v.getUint16(l4 + 6);
        // Requester is the source of a request (8) and the destination of a reply (0).
        const requester = type === 8 ? src : dst;
        const responder = type === 8 ? dst : src;
        const key = requester * 65536 + id;
        const f = icmpFlows.get(responder, key)
          ?? add(icmpFlows, responder, key, 'ping', 'request-reply', `icmp ${intToIp(requester)}>${intToIp(responder)} id=${id}`, requester, responder, 0);
        if (f.invalid) return;
        const at = f.at(pid);
        const seq = at.unwrap16(seq16);
        if (type === 8) at.request(seq, p.tsMicros);
        else at.arrival(seq, p.tsMicros, NaN);
      } else if (proto === PROTO_UDP) {
        if (l4 + UDP_HEADER + SEQ_PAYLOAD_BYTES > end || v.getUint16(l4 + 4) < UDP_HEADER + SEQ_PAYLOAD_BYTES) return;
        const sport = v.getUint16(l4);
        const dport = v.getUint16(l4 + 2);
        if (udpPorts && !udpPorts.has(sport) && !udpPorts.has(dport)) return;
        if (dport === echoPort && sport !== echoPort) {
          const f = udpFlows.get(dst * 65536 + dport, src * 65536 + sport)
            ?? add(udpFlows, dst * 65536 + dport, src * 65536 + sport, 'udp', 'request-reply', `udp ${intToIp(src)}:${sport}>${intToIp(dst)}:${dport} echo`, src, dst, dport);
          if (!f.invalid) f.at(pid).request(readSeq(b, l4 + UDP_HEADER), p.tsMicros);
        } else if (sport === echoPort && dport !== echoPort) {
          const f = udpFlows.get(src * 65536 + sport, dst * 65536 + dport)
            ?? add(udpFlows, src * 65536 + sport, dst * 65536 + dport, 'udp', 'request-reply', `udp ${intToIp(dst)}:${dport}>${intToIp(src)}:${sport} echo`, dst, src, sport);
          if (!f.invalid) f.at(pid).arrival(readSeq(b, l4 + UDP_HEADER), p.tsMicros, NaN);
        } else {
          const f = udpFlows.get(dst * 65536 + dport, src * 65536 + sport)
            ?? add(udpFlows, dst * 65536 + dport, src * 65536 + sport, 'udp', 'one-way', `udp ${intToIp(src)}:${sport}>${intToIp(dst)}:${dport}`, src, dst, dport);
          if (f.invalid) return;
          const { seq, timeUs } = readSeqPayload(b, l4 + UDP_HEADER);
          f.at(pid).arrival(seq, p.tsMicros, timeUs);
        }
      }
    } else if ((et === ETHERTYPE_RARP || et === ETHERTYPE_ARP) && (guest === null || fromGuest)) {
      // ARP body: htype(2) ptype(2) hlen(1) plen(1) op(2) sha(6) spa(4) tha(6) tpa(4).
      if (o4 + 28 > end || b[o4 + 4] !== 6) return;
      if (et === ETHERTYPE_RARP) {
        // QEMU's announce: qemu/net/announce.c announce_self_create(), RARP op 3, sha = guest MAC.
        rawAnnounces.push({ tMicros: p.tsMicros, kind: 'rarp', mac: formatMac(b, o4 + 8), point: pid });
      } else if (b[o4 + 5] === 4 && v.getUint32(o4 + 14) === v.getUint32(o4 + 24)) {
        rawAnnounces.push({ tMicros: p.tsMicros, kind: 'garp', mac: formatMac(b, o4 + 8), point: pid });
      }
    }
  };

  const infos: PcapFileInfo[] = [];
  for (let fi = 0; fi < files.length; fi++) {
    // Capture point of a packet: its interface, and for SLL2 its ifindex too.
    const byIface: number[] = [];
    const byIfindex = new Map<number, number>();
    const newPoint = (iface: number, ifindex: number): number => {
      points.push({ file: fi, iface, ifindex, packets: 0, firstTs: Infinity, lastTs: -Infinity, name: '' });
      return points.length - 1;
    };
    infos.push(await readPcap(files[fi]!.path, (p) => {
      let pid: number | undefined;
      if (p.ifindex < 0) pid = byIface[p.iface] ??= newPoint(p.iface, -1);
      else {
        const key = p.iface * 0x1_0000_0000 + p.ifindex;
        pid = byIfindex.get(key);
        if (pid === undefined) byIfindex.set(key, (pid = newPoint(p.iface, p.ifindex)));
      }
      // Earliest and latest, not first and last: a pcapng of several interfaces is not in time order.
      const pt = points[pid]!;
      if (pt.packets++ === 0 || p.tsMicros < pt.firstTs) pt.firstTs = p.tsMicros;
      if (p.tsMicros > pt.lastTs) pt.lastTs = p.tsMicros;
      onPacket(p, pid);
    }));
  }
  // Listed by file, then interface: the order the files were given, not the first packet's.
  const listed = [...points].sort((a, b) => a.file - b.file || a.iface - b.iface || a.ifindex - b.ifindex);
  namePoints(listed, files, infos);

  const firstTs = points.length ? Math.min(...points.map((p) => p.firstTs)) : 0;
  const lastTs = points.length ? Math.max(...points.map((p) => p.lastTs)) : 0;
  /** Per file, its latest packet: where a capture stopped, for what is still in flight. */
  const fileEnd = files.map((_, fi) => Math.max(...points.filter((p) => p.file === fi).map((p) => p.lastTs)));
  const t0 = opts.t0Micros ?? firstTs;
  const ms = (micros: number): number => round3((micros - t0) / 1000);
  const logs = opts.senderLogs ?? [];

  const flows: PcapFlow[] = [];
  const seen = new Map<string, SeqEvidence>();
  const rank = new Map(listed.map((p, i) => [p, i]));
  let unsequenced = 0;
  for (const f of order) {
    if (f.invalid) { unsequenced++; continue; }
    const pids = f.points.flatMap((p, pid) => (p ? [pid] : [])).sort((a, b) => rank.get(points[a]!)! - rank.get(points[b]!)!);
    const merged = pids.length === 1 ? { view: f.points[pids[0]!]!, finals: pids, copies: 0 } : mergePoints(f, pids);
    if (!merged || (f.mode === 'one-way' && merged.view.arrivals < o.minStreamDatagrams)) { unsequenced++; continue; }
    const endMicros = Math.max(...merged.finals.map((pid) => fileEnd[points[pid]!.file]!));
    const log = f.mode === 'request-reply'
      ? logs.find((l) => l.kind === f.kind && (l.to === undefined || l.to === f.responder) && (l.port === undefined || l.port === f.responderPort))
      : undefined;
    const result = finishFlow(f, merged.view, { ...o, t0, endMicros, log });
    result.otherInterfaceCopies = merged.copies;
    if (points.length > 1) result.lastSeen = lastSeenOf(pids.map((pid) => sightingsAt(f, pid, points[pid]!.name, ms)), result.lostSeqs);
    flows.push(result);
    if (opts.seqEvidence) seen.set(f.name, evidenceOf(merged.view, f.mode, ms));
  }

  const first = infos[0]!;
  const trailing = infos.find((i) => i.trailing)?.trailing;
  return {
    file: files.map((f) => f.path).join(', '),
    iface: opts.iface ?? (listed.length ? listed.map((p) => p.name).join(',') : stemOf(files[0]!.path)),
    linkType: first.linkType,
    packets: infos.reduce((n, i) => n + i.packets, 0),
    truncated: infos.some((i) => i.truncated),
    ...(trailing ? { trailing } : {}),
    t0Micros: t0,
    startMs: points.length ? ms(firstTs) : 0,
    endMs: points.length ? ms(lastTs) : 0,
    flows,
    announces: rawAnnounces.map((a) => ({ t: ms(a.tMicros), kind: a.kind, iface: points[a.point]!.name, mac: a.mac })).sort((x, y) => x.t - y.t),
    macFlapping: flappingCount > 0,
    flappingFrames: flapping.sort((x, y) => x.tMicros - y.tMicros).map((f) => ({ t: ms(f.tMicros), mac: f.mac })),
    unsequencedUdpFlows: unsequenced,
    files: infos.map((i, fi) => ({
      file: files[fi]!.path, format: i.format, linkType: i.linkType, packets: i.packets, truncated: i.truncated,
      ...(i.trailing ? { trailing: i.trailing } : {}), interfaces: i.interfaces,
    })),
    points: listed.map((p) => {
      const iface = infos[p.file]!.interfaces[p.iface];
      return {
        name: p.name, file: files[p.file]!.path, ...(iface?.name !== undefined ? { ifName: iface.name } : {}),
        ...(p.ifindex >= 0 ? { ifindex: p.ifindex } : {}), linkType: iface?.linkType ?? first.linkType,
        packets: p.packets, startMs: ms(p.firstTs), endMs: ms(p.lastTs),
      };
    }),
    ...(opts.seqEvidence ? { seen } : {}),
  };
}

const stemOf = (path: string): string => basename(path, extname(path));

/**
 * Names of the capture points: the name given for a one-interface file, else the pcapng
 * if_name, else the file's stem (with #N for the Nth unnamed interface); an SLL2 capture's
 * interfaces add @ifN. Names that still collide are prefixed with the file's stem.
 */
function namePoints(points: PointState[], files: readonly CaptureFile[], infos: readonly PcapFileInfo[]): void {
  for (const p of points) {
    const described = infos[p.file]!.interfaces;
    const given = files[p.file]!.name;
    const own = described[p.iface]?.name;
    let name = described.length <= 1 && given !== undefined ? given
      : own ?? `${given ?? stemOf(files[p.file]!.path)}${described.length > 1 ? `#${p.iface}` : ''}`;
    if (p.ifindex >= 0 && points.some((q) => q !== p && q.file === p.file && q.iface === p.iface)) name += `@if${p.ifindex}`;
    p.name = name;
  }
  const counts = new Map<string, number>();
  for (const p of points) counts.set(p.name, (counts.get(p.name) ?? 0) + 1);
  for (const p of points) if (counts.get(p.name)! > 1) p.name = `${stemOf(files[p.file]!.path)}:${p.name}`;
  const taken = new Set<string>();
  for (const p of points) {
    let name = p.name;
    for (let k = 2; taken.has(name); k++) name = `${p.name}#${k}`;
    taken.add((p.name = name));
  }
}

/** One point's sightings of a flow's seqs, as loss-causes.ts reads them (ms relative to t0). */
function sightingsAt(f: Flow, pid: number, name: string, ms: (micros: number) => number): PointSightings {
  const t = f.points[pid]!.table;
  const oneWay = f.mode === 'one-way';
  const slot = (seq: number): number => (seq - t.base >= 0 && seq - t.base < t.cap ? seq - t.base : -1);
  return {
    point: name,
    request: (seq) => {
      const i = slot(seq);
      if (i < 0) return undefined;
      if (oneWay) return t.repCount[i]! > 0 ? ms(t.repT[i]!) : undefined;
      return Number.isNaN(t.reqT[i]!) ? undefined : ms(t.reqT[i]!);
    },
    reply: (seq) => {
      const i = slot(seq);
      return oneWay || i < 0 || t.repCount[i] === 0 ? undefined : ms(t.repT[i]!);
    },
  };
}

/** Shared seqs sampled to compare two points: enough for a median, bounded in cost. */
const ORDER_SAMPLES = 4096;

/**
 * Whether point `b` sees `a`'s arrivals again later, for most of them: then `b` is nearer the
 * receiver and `a` is not where arrivals are judged.
 */
function seesLater(a: PointFlow, b: PointFlow): boolean {
  const ta = a.table, tb = b.table;
  const lo = Math.max(ta.minSeq, tb.minSeq), hi = Math.min(ta.maxSeq, tb.maxSeq);
  if (!(hi >= lo) || a.arrivals === 0) return false;
  const stride = Math.max(1, Math.floor((hi - lo + 1) / ORDER_SAMPLES));
  const diffs: number[] = [];
  let ofA = 0;
  for (let seq = lo; seq <= hi; seq += stride) {
    const i = seq - ta.base, j = seq - tb.base;
    if (ta.repCount[i]! === 0) continue;
    ofA++;
    if (tb.repCount[j]! > 0) diffs.push(tb.repT[j]! - ta.repT[i]!);
  }
  return diffs.length * 2 > ofA && median(diffs) > 0;
}

/** The one account of a flow seen at several points (see the file header), or undefined
 * when their seqs do not line up (not a sequence of ours). */
function mergePoints(f: Flow, pids: number[]): { view: FlowView; finals: number[]; copies: number } | undefined {
  const pts = pids.map((pid) => f.points[pid]!);
  let lo = Infinity, hi = -Infinity;
  for (const p of pts) {
    lo = Math.min(lo, p.table.minSeq);
    hi = Math.max(hi, p.table.maxSeq);
  }
  if (!(hi - lo <= MAX_SEQ_SPAN)) return undefined;
  let final = pts.map((a, i) => !pts.some((b, j) => j !== i && seesLater(a, b)));
  if (!final.some(Boolean)) final = pts.map(() => true); // a cycle: no point is downstream of all
  const oneWay = f.mode === 'one-way';
  const n = hi - lo + 1;
  const reqT = new Float64Array(n).fill(NaN);
  const repT = new Float64Array(n).fill(NaN);
  const repCount = new Uint16Array(n);
  const replySeen = new Uint8Array(n);
  let duplicates = 0, duplicateRequests = 0, sightings = 0;
  pts.forEach((p, j) => {
    const t = p.table;
    sightings += p.requests + p.arrivals;
    duplicateRequests = Math.max(duplicateRequests, p.duplicateRequests);
    if (final[j]) duplicates += p.duplicates;
    for (let seq = t.minSeq; seq <= t.maxSeq; seq++) {
      const i = seq - t.base, k = seq - lo;
      const rq = t.reqT[i]!;
      if (!Number.isNaN(rq) && (oneWay || !(reqT[k]! <= rq))) reqT[k] = rq;
      if (t.repCount[i]! === 0) continue;
      replySeen[k] = 1;
      if (!final[j]) continue;
      if (!(repT[k]! <= t.repT[i]!)) repT[k] = t.repT[i]!;
      repCount[k] = Math.min(0xffff, repCount[k]! + t.repCount[i]!);
    }
  });
  // Arrival order across points: reordering and gaps by time, not by file.
  const answered: number[] = [];
  let requests = 0;
  for (let k = 0; k < n; k++) {
    if (repCount[k]! > 0) answered.push(k);
    if (!oneWay && !Number.isNaN(reqT[k]!)) requests++;
  }
  answered.sort((x, y) => repT[x]! - repT[y]! || x - y);
  let reordered = 0, reorderedMaxDepth = 0, maxDelivered = -Infinity, maxGapMicros = 0;
  answered.forEach((k, i) => {
    // Slot indices differ as the seqs do: the same depth as a single point's.
    if (k < maxDelivered) {
      reordered++;
      reorderedMaxDepth = Math.max(reorderedMaxDepth, maxDelivered - k);
    } else maxDelivered = k;
    if (i > 0) maxGapMicros = Math.max(maxGapMicros, repT[k]! - repT[answered[i - 1]!]!);
  });
  return {
    view: { table: { base: lo, cap: n, reqT, repT, repCount }, duplicates, reordered, reorderedMaxDepth, duplicateRequests, maxGapMicros, arrivals: answered.length, replySeen },
    finals: pids.filter((_, j) => final[j]),
    copies: sightings - requests - answered.length,
  };
}

function evidenceOf(v: FlowView, mode: PcapFlow['mode'], ms: (micros: number) => number): SeqEvidence {
  const t = v.table;
  const requestAt = new Map<number, number>();
  const replyAt = new Map<number, number>();
  for (let i = 0; i < t.cap; i++) {
    const seq = i + t.base;
    // A one-way stream's datagram is its arrival (reqT holds the sender's clock there).
    if (mode === 'one-way') {
      if (t.repCount[i]! > 0) requestAt.set(seq, ms(t.repT[i]!));
      continue;
    }
    if (!Number.isNaN(t.reqT[i]!)) requestAt.set(seq, ms(t.reqT[i]!));
    if (t.repCount[i]! > 0) replyAt.set(seq, ms(t.repT[i]!));
  }
  return { requestAt, replyAt };
}

type FinishOptions = typeof DEFAULTS & { t0: number; endMicros: number; log: SenderLog | undefined; deadlineMs?: number };

function finishFlow(f: Flow, v: FlowView, o: FinishOptions): PcapFlow {
  const t = v.table;
  const oneWay = f.mode === 'one-way';
  const seqOf = (i: number): number => i + t.base;
  // The seqs this flow accounts for (slot indices): requests seen and the holes between them,
  // or for a stream lowest..highest arrival.
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < t.cap; i++) {
    if (oneWay ? t.repCount[i]! > 0 : !Number.isNaN(t.reqT[i]!)) { if (i < lo) lo = i; hi = i; }
  }
  const replied = (i: number): boolean => t.repCount[i]! > 0 || v.replySeen?.[i] === 1;
  const seqs = new Int32Array(hi >= lo ? hi - lo + 1 : 0);
  const hole = new Uint8Array(seqs.length);
  let n = 0;
  let orphanReplies = 0;
  for (let i = 0; i < t.cap; i++) {
    const inRange = i >= lo && i <= hi;
    if (oneWay) { if (inRange) seqs[n++] = i; continue; }
    if (!Number.isNaN(t.reqT[i]!)) seqs[n++] = i;
    else if (replied(i)) orphanReplies++;
    else if (inRange) { hole[n] = 1; seqs[n++] = i; }
  }
  const confirmed = (seq: number): boolean => o.log !== undefined && seq >= o.log.firstSeq && seq <= o.log.lastSeq;
  let unconfirmedHoles = 0;
  for (let k = 0; k < n; k++) if (hole[k] && !confirmed(seqOf(seqs[k]!))) unconfirmedHoles++;

  const answered = (i: number): boolean => t.repCount[i]! > 0;
  // One-way latency uses the sender's clock; trust it only when it agrees with the capture.
  const latency = (i: number): number => {
    const l = (t.repT[i]! - t.reqT[i]!) / 1000;
    return oneWay && !(Math.abs(l) < 60_000) ? NaN : l;
  };
  const samples: number[] = [];
  for (let k = 0; k < n; k++) {
    const i = seqs[k]!;
    if (samples.length >= o.baselineSamples) break;
    if (answered(i) && !Number.isNaN(latency(i))) samples.push(latency(i));
  }
  const baseline = median(samples);
  const threshold = Math.max(o.delayMinMs, o.delayFactor * baseline);

  // Time each seq stands for: its send time, or for a lost one-way seq and a hole the
  // interpolation between the times of its neighbours.
  const when = new Float64Array(n);
  let prevKnown = -1;
  for (let k = 0; k < n; k++) {
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

  const sent = n - unconfirmedHoles;
  const marks = sent <= o.maxPacketMarks ? [] as NonNullable<FlowResult['packets']> : undefined;
  const lostSeqs: number[] = [];
  const delayedSeqs: number[] = [];
  const inFlightSeqs: number[] = [];
  const notOnWireSeqs: number[] = [];
  let received = 0;
  let maxAdded = 0;
  /** Added latency (ms) of each delayed packet, for addedDelayMs. */
  const delayedAdded: number[] = [];
  /** Answered packets with added latency above the deadline (lostOrLate). */
  let late = 0;
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
  // A lost packet's slot lasts until the next packet was sent.
  const slotEnd = (k: number): number => (k + 1 < n ? when[k + 1]! : when[k]! + medianInterval(when));
  const inFlightFrom = o.endMicros - o.inFlightWindowMs * 1000;
  for (let k = 0; k < n; k++) {
    const i = seqs[k]!;
    const sentAt = when[k]!;
    let state: 'ok' | 'lost' | 'delayed' | 'in-flight';
    let rttMs: number | undefined;
    if (hole[k]) {
      notOnWireSeqs.push(seqOf(i));
      affect(sentAt, slotEnd(k));
      if (!confirmed(seqOf(i))) continue;
      state = 'lost';
      lostSeqs.push(seqOf(i));
    } else if (answered(i)) {
      received++;
      state = 'ok';
      const l = latency(i);
      if (!Number.isNaN(l) && !Number.isNaN(baseline)) {
        rttMs = round3(l);
        const added = l - baseline;
        if (added > maxAdded) maxAdded = added;
        if (o.deadlineMs !== undefined && added > o.deadlineMs) late++;
        if (added > threshold) {
          state = 'delayed';
          delayedSeqs.push(seqOf(i));
          delayedAdded.push(added);
          affect(sentAt, t.repT[i]!);
        }
      }
    } else if (!oneWay && sentAt >= inFlightFrom) {
      state = 'in-flight';
      inFlightSeqs.push(seqOf(i));
    } else {
      state = 'lost';
      lostSeqs.push(seqOf(i));
      affect(sentAt, slotEnd(k));
    }
    if (marks) {
      const sentMs = round3((sentAt - o.t0) / 1000);
      marks.push(rttMs === undefined ? { seq: seqOf(i), t: sentMs, state } : { seq: seqOf(i), t: sentMs, rttMs, state });
    }
  }

  if (curEnd - curStart > outEnd - outStart) { outStart = curStart; outEnd = curEnd; }
  const affected = outEnd >= outStart;
  const result: PcapFlow = {
    kind: f.kind,
    flow: f.name,
    sender: f.sender,
    mode: f.mode,
    sent,
    received,
    lost: lostSeqs.length,
    lostSeqs,
    delayed: delayedSeqs.length,
    delayedSeqs,
    maxAddedLatencyMs: round3(maxAdded),
    duplicates: v.duplicates,
    reordered: v.reordered,
    reorderedMaxDepth: v.reorderedMaxDepth,
    addedDelayMs: addedDelayOf(delayedAdded),
    ...(o.deadlineMs !== undefined ? { lostOrLate: lostSeqs.length + late, deadlineMs: o.deadlineMs } : {}),
    outageMs: affected ? round3((outEnd - outStart) / 1000) : 0,
    outageStartMs: affected ? round3((outStart - o.t0) / 1000) : null,
    outageEndMs: affected ? round3((outEnd - o.t0) / 1000) : null,
    maxGapMs: round3(v.maxGapMicros / 1000),
    inFlight: inFlightSeqs.length,
    inFlightSeqs,
    baselineRttMs: Number.isNaN(baseline) ? 0 : round3(baseline),
    orphanReplies,
    duplicateRequests: v.duplicateRequests,
    otherInterfaceCopies: 0,
    notOnWire: notOnWireSeqs.length,
    notOnWireSeqs,
    ...(o.log && notOnWireSeqs.some(confirmed) ? { sentConfirmedBy: o.log.source } : {}),
  };
  if (marks) result.packets = marks;
  return result;
}

/** p50, p99 and max of the delayed packets' added latency (file header); null for none. */
function addedDelayOf(added: number[]): AddedDelay | null {
  if (!added.length) return null;
  const sorted = [...added].sort((a, b) => a - b);
  // Nearest rank: the ceil(p/100 x N)-th smallest, so each figure is a latency that occurred.
  const rank = (p: number): number => sorted[Math.max(1, Math.ceil((p / 100) * sorted.length)) - 1]!;
  return { p50: round3(rank(50)), p99: round3(rank(99)), max: round3(sorted[sorted.length - 1]!) };
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
