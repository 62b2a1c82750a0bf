// Streaming reader for classic libpcap files (the format tcpdump -w writes).
//
// It reads the file in fixed-size chunks and hands each packet to a callback as a view
// into the current chunk: one mutable PcapPacket object is reused for every packet, so a
// 1,000,000-packet capture costs neither a per-packet allocation nor the whole file in
// memory. pcap-parser emits two objects and re-concatenates buffers per packet, which is
// several times slower than `tcpdump -r` on large captures; the format is small enough to
// parse here (https://www.tcpdump.org/manpages/pcap-savefile.5.html).
//
// Link types: Ethernet (1), Linux cooked v1 (113, `tcpdump -y LINUX_SLL`) and v2 (276,
// `tcpdump -i any` since libpcap 1.10). A file of any other link type is refused by name: read
// as "no flows", it would look like a capture in which nothing happened (issue 18).
//
// A record header that no writer produces (original length 0, a fraction of a second past one
// second, more captured than on the wire) ends the records: what follows, such as zeros a crash
// left at the end of the file, is reported in `trailing` rather than read as packets at 1970.
import { open } from 'node:fs/promises';

export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_LINUX_SLL = 113;
export const LINKTYPE_LINUX_SLL2 = 276;

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_RARP = 0x8035;
const ETHERTYPE_VLAN = 0x8100;
const ETHERTYPE_QINQ = 0x88a8;
const ARPHRD_ETHER = 1;

const DECODED_LINK_TYPES = new Set([LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2]);
/** Names of link types that turn up in foreign captures, for the refusal (pcap-linktype(7)). */
const LINK_TYPE_NAMES: Record<number, string> = {
  0: 'BSD loopback', 7: 'ARCNET', 101: 'raw IP', 104: 'Cisco HDLC', 105: 'IEEE 802.11', 108: 'OpenBSD loopback',
  127: '802.11 radiotap', 129: 'Linux ARCNET', 226: 'IPNET', 228: 'raw IPv4', 229: 'raw IPv6', 242: 'IP over InfiniBand',
};

const CHUNK_BYTES = 1 << 20;
/** No sane capture has bigger records (libpcap's MAXIMUM_SNAPLEN is 262144). */
const MAX_RECORD_BYTES = 262_144;

export interface PcapFileInfo {
  linkType: number;
  snaplen: number;
  /** Timestamps in the file are nanoseconds (magic 0xa1b23c4d); tsMicros is still µs. */
  nanosecond: boolean;
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
  tsMicros: number;
  linkType: number;
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

/** A pcap file that cannot be read: wrong magic, bad header, or an impossible record. */
export class PcapFormatError extends Error {
  constructor(readonly file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = 'PcapFormatError';
  }
}

/** Stream every packet of `file` to `onPacket`; resolves with the file's summary. */
export async function readPcap(file: string, onPacket: (p: PcapPacket) => void): Promise<PcapFileInfo> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(CHUNK_BYTES);
    let filled = 0;
    let pos = 0;
    /** File offset of buf[0]. */
    let base = 0;
    let eof = false;
    const fill = async (): Promise<void> => {
      // Keep the unread tail, then top the buffer up.
      if (pos > 0) {
        buf.copy(buf, 0, pos, filled);
        filled -= pos;
        base += pos;
        pos = 0;
      }
      while (!eof && filled < buf.length) {
        const { bytesRead } = await fh.read(buf, filled, buf.length - filled, null);
        if (bytesRead === 0) eof = true;
        filled += bytesRead;
      }
    };

    await fill();
    if (filled < 24) {
      if (filled >= 4 && buf.readUInt32LE(0) === 0x0a0d0d0a) throw pcapngError(file);
      throw new PcapFormatError(file, `not a pcap file: ${filled} bytes, a pcap header needs 24`);
    }
    const magic = buf.readUInt32LE(0);
    let le: boolean;
    let nanosecond = false;
    if (magic === 0xa1b2c3d4) le = true;
    else if (magic === 0xd4c3b2a1) le = false;
    else if (magic === 0xa1b23c4d) { le = true; nanosecond = true; }
    else if (magic === 0x4d3cb2a1) { le = false; nanosecond = true; }
    else if (magic === 0x0a0d0d0a) throw pcapngError(file);
    else throw new PcapFormatError(file, `not a pcap file: magic 0x${magic.toString(16).padStart(8, '0')}`);
    const u32 = (o: number): number => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
    const major = le ? buf.readUInt16LE(4) : buf.readUInt16BE(4);
    if (major !== 2) throw new PcapFormatError(file, `unsupported pcap version ${major}; expected 2.4`);
    const snaplen = u32(16);
    const linkType = u32(20) & 0x0fffffff; // upper bits carry FCS flags (pcap-savefile(5))
    if (!DECODED_LINK_TYPES.has(linkType)) {
      const name = LINK_TYPE_NAMES[linkType];
      throw new PcapFormatError(file, `link type ${linkType}${name ? ` (${name})` : ''} is not decoded, so its packets cannot be analysed`);
    }
    pos = 24;

    const info: PcapFileInfo = {
      linkType, snaplen, nanosecond, packets: 0, firstTsMicros: 0, lastTsMicros: 0, truncated: false,
    };
    const p: PcapPacket = {
      buf, tsMicros: 0, linkType, offset: 0, capLen: 0, origLen: 0, ethertype: -1, payloadOffset: 0,
      srcMacOffset: -1, dstMacOffset: -1, sllPacketType: -1, ifindex: -1,
    };
    const fracDiv = nanosecond ? 1000 : 1;

    for (;;) {
      if (filled - pos < 16) {
        if (eof) { info.truncated = filled - pos > 0; break; }
        await fill();
        continue;
      }
      const sec = u32(pos);
      const frac = u32(pos + 4);
      const capLen = u32(pos + 8);
      const origLen = u32(pos + 12);
      if (capLen > MAX_RECORD_BYTES) {
        throw new PcapFormatError(file, `corrupt record ${info.packets + 1}: captured length ${capLen} exceeds ${MAX_RECORD_BYTES}`);
      }
      const impossible = origLen === 0 ? 'original length 0'
        : capLen > origLen ? `captured length ${capLen} above original length ${origLen}`
          : frac >= 1e6 * fracDiv ? `sub-second field ${frac}` : undefined;
      if (impossible) {
        const offset = base + pos;
        info.trailing = { offset, bytes: (await fh.stat()).size - offset, reason: impossible };
        break;
      }
      if (filled - pos < 16 + capLen) {
        if (eof) { info.truncated = true; break; }
        await fill();
        continue;
      }
      const start = pos + 16;
      p.tsMicros = sec * 1e6 + (fracDiv === 1 ? frac : Math.floor(frac / fracDiv));
      p.offset = start;
      p.capLen = capLen;
      p.origLen = origLen;
      decodeLinkLayer(p, start, capLen);
      if (info.packets === 0) info.firstTsMicros = p.tsMicros;
      info.lastTsMicros = p.tsMicros;
      info.packets++;
      onPacket(p);
      pos = start + capLen;
    }
    return info;
  } finally {
    await fh.close();
  }
}

function pcapngError(file: string): PcapFormatError {
  return new PcapFormatError(file, 'is pcapng, not pcap: convert it with `tcpdump -r IN -w OUT.pcap` (or `editcap -F pcap`)');
}

/** Fill ethertype, payload and MAC offsets from the record's link-layer header. */
function decodeLinkLayer(p: PcapPacket, start: number, capLen: number): void {
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

/** "52:54:00:12:34:56" from 6 bytes at `offset`. */
export function formatMac(buf: Buffer, offset: number): string {
  let s = '';
  for (let i = 0; i < 6; i++) {
    const v = buf[offset + i]!;
    s += (i ? ':' : '') + (v < 16 ? '0' : '') + v.toString(16);
  }
  return s;
}
