// Synthetic pcap writing: frame builders for tests that need exact packets (announces, VLAN
// tags, seq wrap, duplicates), and a fast writer for the benchmark's 1,000,000-packet capture.
// Real-traffic fixtures come from fixtures/make-pcaps.ts; this is for what a real run cannot
// produce on demand.
import { closeSync, openSync, writeSync } from 'node:fs';
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_RARP, LINKTYPE_ETHERNET } from '../pcap-reader.js';

const macBytes = (mac: string): Buffer => Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
const ipBytes = (ip: string): Buffer => Buffer.from(ip.split('.').map(Number));

export function ethernet(dst: string, src: string, ethertype: number, payload: Buffer, vlan?: number): Buffer {
  const tag = vlan === undefined ? Buffer.alloc(0) : Buffer.from([0x81, 0x00, (vlan >> 8) & 0x0f, vlan & 0xff]);
  const type = Buffer.alloc(2);
  type.writeUInt16BE(ethertype);
  return Buffer.concat([macBytes(dst), macBytes(src), tag, type, payload]);
}

/** Linux cooked v1 header (tcpdump -y LINUX_SLL) around an IPv4/ARP payload. */
export function sll(src: string, ethertype: number, payload: Buffer, packetType = 0): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt16BE(packetType, 0);
  h.writeUInt16BE(1, 2);
  h.writeUInt16BE(6, 4);
  macBytes(src).copy(h, 6);
  h.writeUInt16BE(ethertype, 14);
  return Buffer.concat([h, payload]);
}

/** Linux cooked v2 header (tcpdump -i any) around an IPv4/ARP payload. */
export function sll2(ifindex: number, src: string, ethertype: number, payload: Buffer, packetType = 0): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt16BE(ethertype, 0);
  h.writeUInt32BE(ifindex, 4);
  h.writeUInt16BE(1, 8);
  h[10] = packetType;
  h[11] = 6;
  macBytes(src).copy(h, 12);
  return Buffer.concat([h, payload]);
}

export function ipv4(src: string, dst: string, proto: number, l4: Buffer): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + l4.length, 2);
  h[8] = 64;
  h[9] = proto;
  ipBytes(src).copy(h, 12);
  ipBytes(dst).copy(h, 16);
  return Buffer.concat([h, l4]);
}

export function icmpEcho(type: 0 | 8, id: number, seq: number): Buffer {
  const b = Buffer.alloc(64);
  b[0] = type;
  b.writeUInt16BE(id, 4);
  b.writeUInt16BE(seq & 0xffff, 6);
  return b;
}

/** A UDP datagram with the stream payload: seq (u64 BE), send time µs (u64 BE), padding. */
export function udpStream(sport: number, dport: number, seq: number, sendMicros: number): Buffer {
  const b = Buffer.alloc(8 + 32);
  b.writeUInt16BE(sport, 0);
  b.writeUInt16BE(dport, 2);
  b.writeUInt16BE(b.length, 4);
  b.writeBigUInt64BE(BigInt(seq), 8);
  b.writeBigUInt64BE(BigInt(Math.round(sendMicros)), 16);
  return b;
}

/** QEMU's announce RARP (net/announce.c) or a gratuitous ARP, as a whole Ethernet frame. */
export function announceFrame(kind: 'rarp' | 'garp', mac: string, ip = '0.0.0.0'): Buffer {
  const body = Buffer.alloc(28);
  body.writeUInt16BE(1, 0);
  body.writeUInt16BE(ETHERTYPE_IPV4, 2);
  body[4] = 6;
  body[5] = 4;
  body.writeUInt16BE(kind === 'rarp' ? 3 : 1, 6);
  macBytes(mac).copy(body, 8);
  ipBytes(ip).copy(body, 14);
  macBytes(mac).copy(body, 18);
  ipBytes(ip).copy(body, 24);
  return ethernet('ff:ff:ff:ff:ff:ff', mac, kind === 'rarp' ? ETHERTYPE_RARP : ETHERTYPE_ARP, body);
}

/** Buffered classic-pcap writer (µs timestamps, little endian). */
export class PcapWriter {
  private readonly fd: number;
  private buf = Buffer.allocUnsafe(4 << 20);
  private pos = 0;

  constructor(readonly file: string, linkType = LINKTYPE_ETHERNET, snaplen = 262_144) {
    this.fd = openSync(file, 'w');
    const h = Buffer.alloc(24);
    h.writeUInt32LE(0xa1b2c3d4, 0);
    h.writeUInt16LE(2, 4);
    h.writeUInt16LE(4, 6);
    h.writeUInt32LE(snaplen, 16);
    h.writeUInt32LE(linkType, 20);
    writeSync(this.fd, h);
  }

  /** Append one record; returns the offset of its frame bytes in `this.buffer` for patching. */
  write(tsMicros: number, frame: Buffer): number {
    if (this.pos + 16 + frame.length > this.buf.length) this.flush();
    const b = this.buf;
    const sec = Math.floor(tsMicros / 1e6);
    b.writeUInt32LE(sec, this.pos);
    b.writeUInt32LE(tsMicros - sec * 1e6, this.pos + 4);
    b.writeUInt32LE(frame.length, this.pos + 8);
    b.writeUInt32LE(frame.length, this.pos + 12);
    frame.copy(b, this.pos + 16);
    this.pos += 16 + frame.length;
    return this.pos - frame.length;
  }

  get buffer(): Buffer { return this.buf; }

  flush(): void {
    let off = 0;
    while (off < this.pos) off += writeSync(this.fd, this.buf, off, this.pos - off);
    this.pos = 0;
  }

  close(): void {
    this.flush();
    closeSync(this.fd);
  }
}

export function writePcap(file: string, frames: Array<{ tsMicros: number; frame: Buffer }>, linkType = LINKTYPE_ETHERNET): void {
  const w = new PcapWriter(file, linkType);
  for (const f of frames) w.write(f.tsMicros, f.frame);
  w.close();
}

export interface BenchPcapTruth {
  packets: number;
  /** ICMP echo seqs (unwrapped, from 0) whose reply was left out. */
  icmpLost: number[];
  /** UDP echo seqs whose reply came 50 ms late. */
  udpDelayed: number[];
}

const CLIENT_MAC = '02:00:00:00:00:01';
const GUEST_MAC = '52:54:00:12:34:56';
const CLIENT_IP = '192.168.100.1';
const GUEST_IP = '192.168.100.2';

/**
 * The bench capture: rounds of ICMP request+reply and UDP echo request+reply, 1 ms apart
 * (so ICMP seqs wrap past 65535), with a 100-round window of lost ICMP replies and a
 * 100-round window of 50 ms late UDP replies. Frames are patched in place from templates.
 */
export function writeBenchPcap(file: string, packets: number): BenchPcapTruth {
  const w = new PcapWriter(file);
  const icmpReq = ethernet(GUEST_MAC, CLIENT_MAC, ETHERTYPE_IPV4, ipv4(CLIENT_IP, GUEST_IP, 1, icmpEcho(8, 0x1234, 0)));
  const icmpRep = ethernet(CLIENT_MAC, GUEST_MAC, ETHERTYPE_IPV4, ipv4(GUEST_IP, CLIENT_IP, 1, icmpEcho(0, 0x1234, 0)));
  const udpReq = ethernet(GUEST_MAC, CLIENT_MAC, ETHERTYPE_IPV4, ipv4(CLIENT_IP, GUEST_IP, 17, udpStream(40000, 7, 0, 0)));
  const udpRep = ethernet(CLIENT_MAC, GUEST_MAC, ETHERTYPE_IPV4, ipv4(GUEST_IP, CLIENT_IP, 17, udpStream(7, 40000, 0, 0)));
  const ICMP_SEQ_AT = 14 + 20 + 6;
  const UDP_SEQ_AT = 14 + 20 + 8;
  const rounds = Math.ceil(packets / 4) + 100;
  const lossFrom = Math.floor(packets / 8);
  const delayFrom = Math.floor(packets / 12);
  const truth: BenchPcapTruth = { packets: 0, icmpLost: [], udpDelayed: [] };
  const t0 = 1_700_000_000_000_000;
  let written = 0;
  const put = (ts: number, frame: Buffer, seqAt: number, seq: number, wide: boolean): void => {
    if (written >= packets) return;
    const at = w.write(ts, frame);
    if (wide) w.buffer.writeUInt32BE(seq, at + seqAt + 4);
    else w.buffer.writeUInt16BE(seq & 0xffff, at + seqAt);
    written++;
  };
  const late: Array<{ ts: number; seq: number }> = [];
  for (let r = 0; r < rounds && written < packets; r++) {
    const ts = t0 + r * 1000;
    while (late.length && late[0]!.ts <= ts) { const l = late.shift()!; put(l.ts, udpRep, UDP_SEQ_AT, l.seq, true); }
    put(ts, icmpReq, ICMP_SEQ_AT, r, false);
    if (r >= lossFrom && r < lossFrom + 100) truth.icmpLost.push(r);
    else put(ts + 40, icmpRep, ICMP_SEQ_AT, r, false);
    put(ts + 200, udpReq, UDP_SEQ_AT, r, true);
    if (r >= delayFrom && r < delayFrom + 100) { late.push({ ts: ts + 50_200, seq: r }); truth.udpDelayed.push(r); }
    else put(ts + 260, udpRep, UDP_SEQ_AT, r, true);
  }
  w.close();
  truth.packets = written;
  return truth;
}
