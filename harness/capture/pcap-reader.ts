// Streaming reader for capture files: classic libpcap (what tcpdump -w writes), and pcapng (what
// Wireshark and dumpcap write; pcapng-reader.ts), told apart by their first bytes.
//
// It reads the file in fixed-size chunks and hands each packet to a callback as a view into the
// current chunk: one mutable PcapPacket object is reused for every packet, so a 1,000,000-packet
// capture costs neither a per-packet allocation nor the whole file in memory. pcap-parser emits
// two objects and re-concatenates buffers per packet, which is several times slower than
// `tcpdump -r` on large captures; the format is small enough to parse here
// (https://www.tcpdump.org/manpages/pcap-savefile.5.html).
//
// A classic file of a link type that is not decoded (capture-file.ts) is refused by name. A
// record header that no writer produces (original length 0, a fraction of a second past one
// second, more captured than on the wire) ends the records: what follows, such as zeros a crash
// left at the end of the file, is reported in `trailing` rather than read as packets at 1970.
import { open } from 'node:fs/promises';
import {
  Chunks, decodeLinkLayer, isDecodedLinkType, linkTypeName, MAX_RECORD_BYTES, packetView, PCAPNG_BLOCK_SHB, PcapFormatError,
  type CaptureInterface, type PcapFileInfo, type PcapPacket,
} from './capture-file.js';
import { readPcapng } from './pcapng-reader.js';

/** Stream every packet of `file` (pcap or pcapng) to `onPacket`; resolves with the file's summary. */
export async function readPcap(file: string, onPacket: (p: PcapPacket) => void): Promise<PcapFileInfo> {
  const fh = await open(file, 'r');
  try {
    const c = new Chunks(fh.fd, (await fh.stat()).size);
    c.fill();
    if (c.filled === 0) {
      throw new PcapFormatError(file, 'is empty (0 bytes): the capture wrote no header; was tcpdump stopped before it started?');
    }
    if (c.filled >= 4 && c.buf.readUInt32LE(0) === PCAPNG_BLOCK_SHB) return readPcapng(file, c, onPacket);
    return readClassic(file, c, onPacket);
  } finally {
    await fh.close();
  }
}

function readClassic(file: string, c: Chunks, onPacket: (p: PcapPacket) => void): PcapFileInfo {
  const buf = c.buf;
  if (c.filled >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    throw new PcapFormatError(file, 'is gzip-compressed: decompress it first (gunzip, or zcat FILE > OUT.pcap)');
  }
  if (c.filled < 24) {
    throw new PcapFormatError(file, `not a capture file: ${c.filled} bytes, a pcap header needs 24`);
  }
  const magic = buf.readUInt32LE(0);
  let le: boolean;
  let nanosecond = false;
  if (magic === 0xa1b2c3d4) le = true;
  else if (magic === 0xd4c3b2a1) le = false;
  else if (magic === 0xa1b23c4d) { le = true; nanosecond = true; }
  else if (magic === 0x4d3cb2a1) { le = false; nanosecond = true; }
  else {
    throw new PcapFormatError(file, `not a capture file: magic 0x${buf.readUInt32BE(0).toString(16).padStart(8, '0')} is neither pcap (a1b2c3d4, a1b23c4d) nor pcapng (0a0d0d0a)`);
  }
  const u32 = (o: number): number => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const major = le ? buf.readUInt16LE(4) : buf.readUInt16BE(4);
  if (major !== 2) throw new PcapFormatError(file, `unsupported pcap version ${major}; expected 2.4`);
  const snaplen = u32(16);
  const linkType = u32(20) & 0x0fffffff; // upper bits carry FCS flags (pcap-savefile(5))
  if (!isDecodedLinkType(linkType)) {
    throw new PcapFormatError(file, `${linkTypeName(linkType)} is not decoded, so its packets cannot be analysed`);
  }
  c.pos = 24;

  const iface: CaptureInterface = { linkType, snaplen, tsUnit: nanosecond ? 'ns' : 'µs', packets: 0, decoded: true };
  const info: PcapFileInfo = {
    format: 'pcap', linkType, snaplen, nanosecond, interfaces: [iface], packets: 0, firstTsMicros: 0, lastTsMicros: 0, truncated: false,
  };
  const p = packetView(buf, linkType);
  const dv = p.view;
  const fracDiv = nanosecond ? 1000 : 1;

  for (;;) {
    const pos = c.pos;
    if (c.filled - pos < 16) {
      if (c.eof) { info.truncated = c.filled - pos > 0; break; }
      c.fill();
      continue;
    }
    const sec = dv.getUint32(pos, le);
    const frac = dv.getUint32(pos + 4, le);
    const capLen = dv.getUint32(pos + 8, le);
    const origLen = dv.getUint32(pos + 12, le);
    if (capLen > MAX_RECORD_BYTES) {
      throw new PcapFormatError(file, `corrupt record ${info.packets + 1}: captured length ${capLen} exceeds ${MAX_RECORD_BYTES}`);
    }
    const impossible = origLen === 0 ? 'original length 0'
      : capLen > origLen ? `captured length ${capLen} above original length ${origLen}`
        : frac >= 1e6 * fracDiv ? `sub-second field ${frac}` : undefined;
    if (impossible) {
      info.trailing = { offset: c.offset, bytes: c.size - c.offset, reason: impossible };
      break;
    }
    if (c.filled - pos < 16 + capLen) {
      if (c.eof) { info.truncated = true; break; }
      c.fill();
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
    c.pos = start + capLen;
  }
  iface.packets = info.packets;
  return info;
}
