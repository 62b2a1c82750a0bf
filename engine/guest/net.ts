// The guest's network stack on raw Ethernet frames: ARP (replies and a cache learned from
// ARP traffic), ICMP echo, UDP echo on port 7, a UDP sink on port 9, and a sequenced UDP
// sender toward the client. Replies are built in place in the received buffer and written at
// once, so the hot path allocates nothing and never touches JSON.
//
// UDP sequence numbers (ports 7 and 9): the seq of lib/seq-payload.ts (its first 8 bytes are
// enough here), counted from 0. A gap counts its seqs as missing; a missing seq that arrives
// late moves from missing to reordered; a seq seen before counts as a duplicate.
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, formatMac, intToIp, ipToInt, parseMac } from '../../lib/net-addr.js';
import type { GuestNetInfo, GuestUdpCounters } from '../../lib/qmp-protocol.js';
import { readSeq, SEQ_PAYLOAD_BYTES, writeSeqPayload } from '../../lib/seq-payload.js';

const IPPROTO_ICMP = 1;
const IPPROTO_UDP = 17;
export const UDP_ECHO_PORT = 7;
export const UDP_SINK_PORT = 9;
/** Source port of the guest's sequenced sender. */
export const UDP_SENDER_PORT = 40009;
/** How many missing seqs are remembered individually (beyond that they are only counted). */
export const MAX_TRACKED_MISSING = 65536;
export const MAX_ARP_ENTRIES = 256;
/**
 * Bounds of the guest's UDP sender, for `x-guest-udp-send` and for a sender that arrives in a
 * migrated device state alike (issue 18: a stream saying rate 1e9 flooded the destination and
 * starved its QMP). The rate is the scenario schema's UDP limit; the count ends within 17
 * minutes at that rate.
 */
export const UDP_SENDER_LIMITS = { maxRate: 100_000, maxCount: 100_000_000 } as const;

/** Writes one frame toward the host (the NIC's transmit). */
export type Transmit = (buf: Buffer, len: number) => void;

/** RFC 1071 checksum over buf[start, end). */
export function inetChecksum(buf: Buffer, start: number, end: number, initial = 0): number {
  let sum = initial;
  let i = start;
  for (; i + 1 < end; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  if (i < end) sum += buf[i]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** Sequence accounting of one UDP port. */
export class SeqCounter {
  received = 0;
  missing = 0;
  duplicates = 0;
  reordered = 0;
  highest = -1;
  private readonly gaps = new Set<number>();

  constructor(readonly port: number) {}

  record(seq: number): void {
    this.received++;
    if (seq > this.highest) {
      const gap = seq - this.highest - 1;
      this.missing += gap;
      for (let s = this.highest + 1; s < seq && this.gaps.size < MAX_TRACKED_MISSING; s++) this.gaps.add(s);
      this.highest = seq;
    } else if (this.gaps.delete(seq)) {
      this.missing--;
      this.reordered++;
    } else {
      this.duplicates++;
    }
  }

  info(): GuestUdpCounters {
    return { port: this.port, received: this.received, missing: this.missing, duplicates: this.duplicates, reordered: this.reordered, 'highest-seq': this.highest };
  }

  save(): SeqCounterState {
    return { port: this.port, received: this.received, missing: this.missing, duplicates: this.duplicates, reordered: this.reordered, highest: this.highest, gaps: [...this.gaps] };
  }

  load(s: SeqCounterState): void {
    this.received = s.received; this.missing = s.missing; this.duplicates = s.duplicates;
    this.reordered = s.reordered; this.highest = s.highest;
    this.gaps.clear();
    for (const g of s.gaps) this.gaps.add(g);
  }
}

export interface SeqCounterState {
  port: number; received: number; missing: number; duplicates: number; reordered: number; highest: number; gaps: number[];
}

export interface UdpSenderState { dst: string; port: number; rate: number; count: number; next: number }

/** The guest's migratable network state (device state section of the stream). */
export interface GuestNetState {
  ip: string | null; prefix: number; gw: string | null;
  arp: Array<[string, string]>;
  udp: SeqCounterState[];
  sender: UdpSenderState | null;
}

export interface GuestNetOptions { mac: string; ip?: string; prefix: number; gw?: string }

export class GuestNet {
  private readonly mac: Buffer;
  readonly macText: string;
  private ip: number;
  private ipText: string | null;
  private prefix: number;
  private mask: number;
  private gw: string | null;
  /** ip (u32) -> MAC bytes, learned from ARP. */
  private readonly arp = new Map<number, Buffer>();
  readonly echo = new SeqCounter(UDP_ECHO_PORT);
  readonly sink = new SeqCounter(UDP_SINK_PORT);
  private sender: UdpSenderState | null = null;
  private senderTimer: NodeJS.Timeout | undefined;
  private senderLast = 0;
  private senderCarry = 0;
  private ipId = 0;
  private injected = { frames: 0, maxDelayMs: 0, totalDelayMs: 0 };
  private running = false;
  private readonly txBuf = Buffer.alloc(1514);

  constructor(opts: GuestNetOptions, private readonly transmit: Transmit) {
    this.mac = parseMac(opts.mac);
    this.macText = opts.mac;
    this.ipText = opts.ip ?? null;
    this.ip = opts.ip ? ipToInt(opts.ip) : 0;
    this.prefix = opts.prefix;
    this.mask = opts.prefix === 0 ? 0 : (0xffffffff << (32 - opts.prefix)) >>> 0;
    this.gw = opts.gw ?? null;
  }

  /** The vCPU runs: timers (the UDP sender) go; stopped, the guest does nothing. */
  setRunning(running: boolean): void {
    this.running = running;
    if (running && this.sender && !this.senderTimer) this.armSender();
    if (!running) this.disarmSender();
  }

  /** One received frame. Mutates `buf` to build the reply in place. */
  receive(buf: Buffer, len: number): void {
    if (len < 14 || this.ip === 0) return;
    const type = buf.readUInt16BE(12);
    if (type === ETHERTYPE_ARP) this.arp_(buf, len);
    else if (type === ETHERTYPE_IPV4) this.ipv4(buf, len);
  }

  private isForUs(buf: Buffer): boolean {
    // Unicast to our MAC, or broadcast (ARP requests).
    if (buf[0] === 0xff && buf[1] === 0xff && buf[2] === 0xff && buf[3] === 0xff && buf[4] === 0xff && buf[5] === 0xff) return true;
    return buf.compare(this.mac, 0, 6, 0, 6) === 0;
  }

  private arp_(buf: Buffer, len: number): void {
    if (len < 42 || buf.readUInt16BE(14) !== 1 || buf.readUInt16BE(16) !== ETHERTYPE_IPV4 || buf[18] !== 6 || buf[19] !== 4) return;
    const op = buf.readUInt16BE(20);
    const spa = buf.readUInt32BE(28);
    const tpa = buf.readUInt32BE(38);
    // Learn the sender, as Linux does for requests aimed at us and replies (net/ipv4/arp.c arp_process).
    if (spa !== 0 && spa !== this.ip && (tpa === this.ip || op === 2)) this.learn(spa, buf, 22);
    if (op !== 1 || tpa !== this.ip || !this.isForUs(buf)) return;
    // Reply in place: eth dst = requester, eth src = us, op = 2, swap sender/target.
    buf.copy(buf, 0, 22, 28);
    this.mac.copy(buf, 6);
    buf.writeUInt16BE(2, 20);
    buf.copy(buf, 32, 22, 32); // target hw+ip = old sender
    this.mac.copy(buf, 22);
    buf.writeUInt32BE(this.ip, 28);
    this.transmit(buf, 42);
  }

  private learn(ip: number, buf: Buffer, off: number): void {
    const cur = this.arp.get(ip);
    if (cur) { buf.copy(cur, 0, off, off + 6); return; }
    if (this.arp.size >= MAX_ARP_ENTRIES) this.arp.delete(this.arp.keys().next().value!);
    this.arp.set(ip, Buffer.from(buf.subarray(off, off + 6)));
  }

  private ipv4(buf: Buffer, len: number): void {
    if (len < 34 || buf[14]! >> 4 !== 4 || !this.isForUs(buf)) return;
    const ihl = (buf[14]! & 15) * 4;
    const totLen = buf.readUInt16BE(16);
    if (ihl < 20 || totLen < ihl || 14 + totLen > len) return;
    if ((buf.readUInt16BE(20) & 0x3fff) !== 0) return; // fragments: not reassembled
    if (buf.readUInt32BE(30) !== this.ip) return;
    const l4 = 14 + ihl;
    const end = 14 + totLen;
    const proto = buf[23];
    if (proto === IPPROTO_ICMP) {
      if (end - l4 < 8 || buf[l4] !== 8 || buf[l4 + 1] !== 0) return;
      buf[l4] = 0;
      buf.writeUInt16BE(0, l4 + 2);
      buf.writeUInt16BE(inetChecksum(buf, l4, end), l4 + 2);
      this.replyIp(buf, ihl, end);
    } else if (proto === IPPROTO_UDP) {
      if (end - l4 < 8) return;
      const dport = buf.readUInt16BE(l4 + 2);
      const payload = l4 + 8;
      const seq = end - payload >= 8 ? readSeq(buf, payload) : -1;
      if (dport === UDP_SINK_PORT) {
        if (seq >= 0) this.sink.record(seq);
      } else if (dport === UDP_ECHO_PORT) {
        if (seq >= 0) this.echo.record(seq);
        // Swapping ports and addresses leaves the UDP checksum valid (the sum is commutative).
        const sport = buf.readUInt16BE(l4);
        buf.writeUInt16BE(dport, l4);
        buf.writeUInt16BE(sport, l4 + 2);
        this.replyIp(buf, ihl, end);
      }
    }
  }

  /** Turns a received IPv4 frame into its reply: swap MACs and addresses, fresh TTL, checksum. */
  private replyIp(buf: Buffer, ihl: number, end: number): void {
    buf.copy(buf, 0, 6, 12);
    this.mac.copy(buf, 6);
    const src = buf.readUInt32BE(26);
    buf.writeUInt32BE(this.ip, 26);
    buf.writeUInt32BE(src, 30);
    buf[22] = 64;
    buf.writeUInt16BE(0, 24);
    buf.writeUInt16BE(inetChecksum(buf, 14, 14 + ihl), 24);
    this.transmit(buf, end);
  }

  /** Starts (or replaces) the guest's sequenced UDP stream toward dst:port; bounds: UDP_SENDER_LIMITS. */
  startUdpSend(dst: string, port: number, rate: number, count: number): void {
    if (this.ip === 0) throw new Error('the guest has no IP address (start the VM with -guest ip=A/N)');
    this.sender = { dst, port, rate, count, next: 0 };
    this.disarmSender();
    if (this.running) this.armSender();
  }

  /** Stops the UDP stream, whether QMP or a migrated state started it; returns how many it sent. */
  stopUdpSend(): { sent: number } | undefined {
    const s = this.sender;
    this.disarmSender();
    this.sender = null;
    return s ? { sent: s.next } : undefined;
  }

  private disarmSender(): void {
    clearInterval(this.senderTimer);
    this.senderTimer = undefined;
  }

  private armSender(): void {
    this.senderLast = performance.now();
    this.senderCarry = 1; // the first datagram goes at once
    const tickMs = Math.max(1, Math.min(20, Math.floor(1000 / Math.max(1, this.sender!.rate))));
    this.senderTimer = setInterval(() => this.senderTick(), tickMs);
  }

  private senderTick(): void {
    const s = this.sender;
    if (!s) return;
    const now = performance.now();
    // Catch up at most 100 ms of backlog after a late tick.
    let due = Math.min((now - this.senderLast) / 1000, 0.1) * s.rate + this.senderCarry;
    this.senderLast = now;
    const dst = ipToInt(s.dst);
    const hop = (dst & this.mask) === (this.ip & this.mask) || !this.gw ? dst : ipToInt(this.gw);
    const dmac = this.arp.get(hop);
    if (!dmac) {
      this.senderCarry = Math.min(due, 1);
      this.sendArpRequest(hop);
      return;
    }
    while (due >= 1 && s.next < s.count) {
      this.sendUdp(dmac, dst, s.port, s.next++);
      due -= 1;
    }
    this.senderCarry = due;
    if (s.next >= s.count) this.stopUdpSend();
  }

  private sendUdp(dmac: Buffer, dst: number, port: number, seq: number): void {
    const b = this.txBuf;
    const payloadLen = SEQ_PAYLOAD_BYTES;
    dmac.copy(b, 0);
    this.mac.copy(b, 6);
    b.writeUInt16BE(ETHERTYPE_IPV4, 12);
    b[14] = 0x45; b[15] = 0;
    b.writeUInt16BE(20 + 8 + payloadLen, 16);
    b.writeUInt16BE(this.ipId = (this.ipId + 1) & 0xffff, 18);
    b.writeUInt16BE(0x4000, 20); // DF
    b[22] = 64; b[23] = IPPROTO_UDP;
    b.writeUInt16BE(0, 24);
    b.writeUInt32BE(this.ip, 26);
    b.writeUInt32BE(dst, 30);
    b.writeUInt16BE(inetChecksum(b, 14, 34), 24);
    b.writeUInt16BE(UDP_SENDER_PORT, 34);
    b.writeUInt16BE(port, 36);
    b.writeUInt16BE(8 + payloadLen, 38);
    b.writeUInt16BE(0, 40); // no UDP checksum (allowed on IPv4)
    writeSeqPayload(b, 42, seq, Math.round((performance.timeOrigin + performance.now()) * 1000));
    this.transmit(b, 42 + payloadLen);
  }

  private sendArpRequest(target: number): void {
    const b = this.txBuf;
    b.fill(0xff, 0, 6);
    this.mac.copy(b, 6);
    b.writeUInt16BE(ETHERTYPE_ARP, 12);
    b.writeUInt16BE(1, 14); b.writeUInt16BE(ETHERTYPE_IPV4, 16); b[18] = 6; b[19] = 4;
    b.writeUInt16BE(1, 20);
    this.mac.copy(b, 22);
    b.writeUInt32BE(this.ip, 28);
    b.fill(0, 32, 38);
    b.writeUInt32BE(target, 38);
    this.transmit(b, 42);
  }

  /** A frame the destination injected from the netpass stream, `delayMs` after the source received it. */
  recordNetpassInjected(delayMs: number): void {
    this.injected.frames++;
    this.injected.totalDelayMs += delayMs;
    if (delayMs > this.injected.maxDelayMs) this.injected.maxDelayMs = delayMs;
  }

  info(): GuestNetInfo {
    const i = this.injected;
    return {
      ip: this.ipText ?? '',
      mac: this.macText,
      'arp-cache': [...this.arp].map(([ip, mac]) => ({ ip: intToIp(ip), mac: formatMac(mac) })),
      udp: [this.echo.info(), this.sink.info()],
      ...(i.frames ? { 'netpass-injected': { frames: i.frames, 'max-delay-ms': Math.round(i.maxDelayMs), 'mean-delay-ms': Math.round(i.totalDelayMs / i.frames) } } : {}),
    };
  }

  save(): GuestNetState {
    return {
      ip: this.ipText, prefix: this.prefix, gw: this.gw,
      arp: [...this.arp].map(([ip, mac]) => [intToIp(ip), formatMac(mac)]),
      udp: [this.echo.save(), this.sink.save()],
      sender: this.sender ? { ...this.sender } : null,
    };
  }

  /** Takes over a migrated guest's state (the destination's device-state load). */
  load(s: GuestNetState): void {
    this.ipText = s.ip;
    this.ip = s.ip ? ipToInt(s.ip) : 0;
    this.prefix = s.prefix;
    this.mask = s.prefix === 0 ? 0 : (0xffffffff << (32 - s.prefix)) >>> 0;
    this.gw = s.gw;
    this.arp.clear();
    for (const [ip, mac] of s.arp) this.arp.set(ipToInt(ip), parseMac(mac));
    for (const c of s.udp) (c.port === UDP_ECHO_PORT ? this.echo : this.sink).load(c);
    this.sender = s.sender ? { ...s.sender } : null;
    this.disarmSender();
    if (this.running && this.sender) this.armSender();
  }

  /** The guest's IPv4 address as a u32 (0 when unconfigured), for announce frames. */
  get ipAddress(): number { return this.ip; }
}
