// What the capture-file readers share (pcap-reader.ts for classic pcap, pcapng-reader.ts for
// pcapng): the packet view handed to callbacks, the file summary, the format error, link-layer
// decoding, and the file read in chunks.
//
// Link types: Ethernet (1), Linux cooked v1 (113, `tcpdump -y LINUX_SLL`) and v2 (276,
// `tcpdump -i any` since libpcap 1.10). Anything else is refused by name rather than read as
// "no flows", which would look like a capture in which nothing happened (issue 18).
import { readSync } from 'node:fs';

export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_LINUX_SLL = 113;
export const LINKTYPE_LINUX_SLL2 = 276;

const ETHERTYPE_VLAN = 0x8100;
const ETHERTYPE_QINQ = 0x88a8;
const ARPHRD_ETHER = 1;

export const PCAPNG_BLOCK_SHB = 0x0a0d0d0a;

const DECODED_LINK_TYPES = new Set([LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2]);
/** Names of link types that turn up in foreign captures, for the refusal (pcap-linktype(7)). */
const LINK_TYPE_NAMES: Record<number, string> = {
  0: 'BSD loopback', 7: 'ARCNET', 101: 'raw IP', 104: 'Cisco HDLC', 105: 'IEEE 802.11', 108: 'OpenBSD loopback',
  127: '802.11 radiotap', 129: 'Linux ARCNET', 226: 'IPNET', 228: 'raw IPv4', 229: 'raw IPv6', 242: 'IP over InfiniBand',
};

export const isDecodedLinkType = (linkType: number): boolean => DECODED_LINK_TYPES.has(linkType);

/** "link type 105 (IEEE 802.11)", for messages. */
export function linkTypeName(linkType: number): string {
  const name = LINK_TYPE_NAMES[linkType];
  return `link type ${linkType}${name ? ` (${name})` : ''}`;
}

/** No sane capture has bigger records (libpcap's MAXIMUM_SNAPLEN is 262144). */
export const MAX_RECORD_BYTES = 262_144;

/** One capture interface of a file: a classic pcap has one, a pcapng one per interface block. */
export interface CaptureInterface {
  linkType: number;
  snaplen: number;
  /** pcapng if_name / if_description, when the writer gave them. */
  name?: string;
  description?: string;
  /** Timestamp unit: "µs", "ns", or for other pcapng if_tsresol values "10^-N s" / "2^-N s". */
  tsUnit: string;
  /** Packets on this interface; those of an undecoded link type were skipped, not delivered. */
  packets: number;
  decoded: boolean;
  /** pcapng interface statistics (isb_ifdrop): packets the capture itself dropped. */
  droppedByKernel?: number;
}

export interface PcapFileInfo {
  format: 'pcap' | 'pcapng';
  /** The first decoded interface's link type (-1: a pcapng that describes no interface). */
  linkType: number;
  snaplen: number;
  /** Timestamps finer than µs in the file (pcap magic 0xa1b23c4d, pcapng if_tsresol); tsMicros is still µs. */
  nanosecond: boolean;
  interfaces: CaptureInterface[];
  /** Packets delivered to the callback. */
  packets: number;
  firstTsMicros: number;
  lastTsMicros: number;
  /** The last record was cut short (capture killed mid-write); it was not delivered. */
  truncated: boolean;
  /** Bytes after the last record that are not records (an impossible record header); not read. */
  trailing?: { offset: number; bytes: number; reason: string };
}

/**
 * One packet, valid only during the callback: `buf` is the reader's chunk buffer and every
 * offset is absolute into it. Copy what you keep.
 */
export interface PcapPacket {
  buf: Buffer;
  /** The same bytes as a DataView: its reads are the cheapest on the per-packet path. */
  view: DataView;
  tsMicros: number;
  linkType: number;
  /** Index of the packet's interface in PcapFileInfo.interfaces (always 0 in a classic pcap). */
  iface: number;
  /** Offset of the link-layer header and captured / original lengths of the record. */
  offset: number;
  capLen: number;
  origLen: number;
  /** EtherType of the network-layer payload after VLAN tags; -1 when unknown. */
  ethertype: number;
  /** Offset of the network-layer payload (IP header, ARP body). */
  payloadOffset: number;
  /** Offset of the 6-byte source / destination MAC in buf, -1 when the link type lacks it. */
  srcMacOffset: number;
  dstMacOffset: number;
  /** Linux cooked captures: packet type (0 to us, 3 other host, 4 outgoing); -1 otherwise. */
  sllPacketType: number;
  /** SLL2: interface index; -1 otherwise. */
  ifindex: number;
}

/** A capture file that cannot be read: wrong magic, bad header, or an impossible record. */
export class PcapFormatError extends Error {
  constructor(readonly file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = 'PcapFormatError';
  }
}

const CHUNK_BYTES = 1 << 20;

/**
 * A file read in 1 MiB chunks: buf[pos..filled) is unread data, buf[0] is at file offset
 * `base`. Both readers work on it directly, so the per-packet path is plain buffer reads.
 * Reads are synchronous: a 1 MiB read from the page cache takes a fraction of the time its
 * packets take to parse, and a thread-pool round trip per chunk cost a fifth of the analysis.
 */
export class Chunks {
  readonly buf = Buffer.allocUnsafe(CHUNK_BYTES);
  pos = 0;
  filled = 0;
  base = 0;
  eof = false;

  constructor(private readonly fd: number, readonly size: number) {}

  /** Unread bytes in the buffer. */
  get avail(): number { return this.filled - this.pos; }

  /** File offset of buf[pos]. */
  get offset(): number { return this.base + this.pos; }

  /** Keep the unread tail, then top the buffer up from the file. */
  fill(): void {
    if (this.pos > 0) {
      this.buf.copy(this.buf, 0, this.pos, this.filled);
      this.filled -= this.pos;
      this.base += this.pos;
      this.pos = 0;
    }
    while (!this.eof && this.filled < this.buf.length) {
      const n = readSync(this.fd, this.buf, this.filled, this.buf.length - this.filled, this.base + this.filled);
      if (n === 0) this.eof = true;
      this.filled += n;
    }
  }

  /** Pass over `n` bytes from pos, reading none of what lies beyond the buffer. */
  skip(n: number): void {
    if (n <= this.avail) { this.pos += n; return; }
    this.base = this.offset + n;
    this.pos = 0;
    this.filled = 0;
    this.eof = this.base >= this.size;
  }
}

/** The one packet object a reader reuses. */
export function packetView(buf: Buffer, linkType: number): PcapPacket {
  return {
    buf, view: new DataView(buf.buffer, buf.byteOffset, buf.byteLength), tsMicros: 0, linkType, iface: 0, offset: 0, capLen: 0, origLen: 0, ethertype: -1, payloadOffset: 0,
    srcMacOffset: -1, dstMacOffset: -1, sllPacketType: -1, ifindex: -1,
  };
}

/** Fill ethertype, payload and MAC offsets from the record's link-layer header. */
export function decodeLinkLayer(p: PcapPacket, start: number, capLen: number): void {
  const b = p.buf;
  p.ethertype = -1;
  p.srcMacOffset = -1;
  p.dstMacOffset = -1;
  p.sllPacketType = -1;
  p.ifindex = -1;
  p.payloadOffset = start;
  let typeAt: number;
  switch (p.linkType) {
    case LINKTYPE_ETHERNET:
      if (capLen < 14) return;
      p.dstMacOffset = start;
      p.srcMacOffset = start + 6;
      typeAt = start + 12;
      break;
    case LINKTYPE_LINUX_SLL:
      // packet type(2) ARPHRD(2) addr len(2) addr(8) protocol(2); the address is the sender's.
      if (capLen < 16) return;
      p.sllPacketType = b.readUInt16BE(start);
      if (b.readUInt16BE(start + 2) === ARPHRD_ETHER && b.readUInt16BE(start + 4) === 6) p.srcMacOffset = start + 6;
      p.ethertype = b.readUInt16BE(start + 14);
      p.payloadOffset = start + 16;
      return;
    case LINKTYPE_LINUX_SLL2:
      // protocol(2) reserved(2) ifindex(4) ARPHRD(2) packet type(1) addr len(1) addr(8).
      if (capLen < 20) return;
      p.ethertype = b.readUInt16BE(start);
      p.ifindex = b.readUInt32BE(start + 4);
      p.sllPacketType = b[start + 10]!;
      if (b.readUInt16BE(start + 8) === ARPHRD_ETHER && b[start + 11] === 6) p.srcMacOffset = start + 12;
      p.payloadOffset = start + 20;
      return;
    default:
      return;
  }
  const end = start + capLen;
  let type = b.readUInt16BE(typeAt);
  let at = typeAt + 2;
  while ((type === ETHERTYPE_VLAN || type === ETHERTYPE_QINQ) && at + 4 <= end) {
    type = b.readUInt16BE(at + 2);
    at += 4;
  }
  p.ethertype = type;
  p.payloadOffset = at;
}
