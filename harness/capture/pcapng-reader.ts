// pcapng, streamed like the classic reader (pcap-reader.ts) on the same chunks (capture-file.ts): Wireshark's and dumpcap's format,
// the only one that carries several interfaces, with their names, in one file.
// Layout from draft-ietf-opsawg-pcapng (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-03.html):
// every block is type(4) length(4) body length(4), in the byte order of its section.
//
// - Section header (SHB): its byte-order magic sets the order of the section; a new SHB starts a
//   new section, with its own byte order and interfaces.
// - Interface description (IDB): link type, snaplen, and the options if_name, if_description,
//   if_tsresol (10^-N or 2^-N s, default µs) and if_tsoffset (seconds added to every timestamp).
// - Enhanced (EPB), obsolete (OPB) and simple (SPB) packet blocks. A simple packet block has no
//   timestamp and belongs to the section's first interface: it gets the previous packet's time.
// - Interface statistics (ISB): isb_ifdrop is the interface's kernel drops.
// - Every other block (name resolution, decryption secrets, custom...) is skipped unread.
//
// As in the classic reader, a block length no writer produces (below 12, not a multiple of 4, or
// a trailer that disagrees) ends the blocks and is reported in `trailing`; a last block cut short
// is `truncated`.
import {
  decodeLinkLayer, isDecodedLinkType, linkTypeName, packetView, PcapFormatError, PCAPNG_BLOCK_SHB, MAX_RECORD_BYTES,
  type CaptureInterface, type Chunks, type PcapFileInfo, type PcapPacket,
} from './capture-file.js';

const BLOCK_IDB = 1;
const BLOCK_OPB = 2;
const BLOCK_SPB = 3;
const BLOCK_ISB = 5;
const BLOCK_EPB = 6;
const BYTE_ORDER_MAGIC = 0x1a2b3c4d;

const OPT_END = 0;
const IF_NAME = 2;
const IF_DESCRIPTION = 3;
const IF_TSRESOL = 9;
const IF_TSOFFSET = 14;
const ISB_IFDROP = 5;

/** A packet block holds one record and its options; anything bigger is corrupt. */
const MAX_PACKET_BLOCK = MAX_RECORD_BYTES + 64 * 1024;
const TWO_32 = 0x1_0000_0000;

/** An interface as the reader converts its timestamps: µs = hi * mulHi + floor((hi * mulRem + lo) / div) + offset. */
interface IfaceClock {
  info: CaptureInterface;
  index: number;
  snaplen: number;
  /** Units per µs, when they are a power of ten at or below 10^6 (exact integer arithmetic). */
  div: number;
  mulHi: number;
  mulRem: number;
  /** Otherwise µs per unit (coarser than µs, or a binary fraction): floating point. */
  scale: number;
  offsetMicros: number;
}

function clockOf(info: CaptureInterface, index: number, tsresol: number, tsoffsetS: number): IfaceClock {
  const c: IfaceClock = { info, index, snaplen: info.snaplen, div: 0, mulHi: 0, mulRem: 0, scale: 0, offsetMicros: tsoffsetS * 1e6 };
  const binary = (tsresol & 0x80) !== 0;
  const n = tsresol & 0x7f;
  if (!binary && n >= 6 && n <= 12) {
    // 2^32 = div * mulHi + mulRem: splits hi * 2^32 so that no product leaves 2^53.
    c.div = 10 ** (n - 6);
    c.mulHi = Math.floor(TWO_32 / c.div);
    c.mulRem = TWO_32 - c.mulHi * c.div;
  } else {
    c.scale = binary ? 1e6 / 2 ** n : 10 ** (6 - n);
  }
  info.tsUnit = binary ? `2^-${n} s` : n === 6 ? 'µs' : n === 9 ? 'ns' : `10^-${n} s`;
  return c;
}

function micros(c: IfaceClock, hi: number, lo: number): number {
  if (c.div === 1) return hi * TWO_32 + lo + c.offsetMicros;
  if (c.div > 0) return hi * c.mulHi + Math.floor((hi * c.mulRem + lo) / c.div) + c.offsetMicros;
  return Math.floor((hi * TWO_32 + lo) * c.scale) + c.offsetMicros;
}

export function readPcapng(file: string, c: Chunks, onPacket: (p: PcapPacket) => void): PcapFileInfo {
  const buf = c.buf;
  const info: PcapFileInfo = {
    format: 'pcapng', linkType: -1, snaplen: 0, nanosecond: false, interfaces: [], packets: 0, firstTsMicros: 0, lastTsMicros: 0, truncated: false,
  };
  const p = packetView(buf, -1);
  const dv = p.view;
  let le = true;
  let section: IfaceClock[] = [];
  let blocks = 0;
  let lastTs = 0;
  // Reassigned per section, so each call site sees one function (the per-packet path).
  const readersOf = (little: boolean): [(o: number) => number, (o: number) => number] => (little
    ? [(o) => buf.readUInt32LE(o), (o) => buf.readUInt16LE(o)]
    : [(o) => buf.readUInt32BE(o), (o) => buf.readUInt16BE(o)]);
  let [u32, u16] = readersOf(le);
  const corrupt = (what: string): PcapFormatError => new PcapFormatError(file, `corrupt pcapng block ${blocks + 1} at offset ${c.offset}: ${what}`);

  const deliver = (clock: IfaceClock, ts: number, dataAt: number, capLen: number, origLen: number): void => {
    clock.info.packets++;
    if (!clock.info.decoded) return;
    p.linkType = clock.info.linkType;
    p.iface = clock.index;
    p.tsMicros = ts;
    p.offset = dataAt;
    p.capLen = capLen;
    p.origLen = origLen;
    decodeLinkLayer(p, dataAt, capLen);
    if (info.packets === 0) info.firstTsMicros = ts;
    info.lastTsMicros = ts;
    info.packets++;
    onPacket(p);
  };

  for (;;) {
    if (c.avail < 12) {
      if (c.eof) { info.truncated = c.avail > 0; break; }
      c.fill();
      continue;
    }
    const pos = c.pos;
    // The per-packet reads go through the DataView, which takes the byte order as an argument:
    // a call per field through u32 costs, Buffer's read methods too.
    const type = dv.getUint32(pos, le);
    if (type === PCAPNG_BLOCK_SHB) {
      const bom = buf.readUInt32LE(pos + 8);
      if (bom === BYTE_ORDER_MAGIC || bom === 0x4d3c2b1a) [u32, u16] = readersOf((le = bom === BYTE_ORDER_MAGIC));
      else if (blocks === 0) throw new PcapFormatError(file, `not a pcapng file: byte-order magic 0x${bom.toString(16).padStart(8, '0')}, expected 1a2b3c4d`);
      else throw corrupt(`section header with byte-order magic 0x${bom.toString(16).padStart(8, '0')}`);
    }
    const len = dv.getUint32(pos + 4, le);
    if (len < 12 || len % 4 !== 0) {
      info.trailing = { offset: c.offset, bytes: c.size - c.offset, reason: `block length ${len}` };
      break;
    }
    const isPacket = type === BLOCK_EPB || type === BLOCK_OPB || type === BLOCK_SPB;
    if (isPacket && len > MAX_PACKET_BLOCK) throw corrupt(`packet block of ${len} bytes; no record exceeds ${MAX_RECORD_BYTES}`);
    if (c.avail < len) {
      // After a fill the block is whole, or the file ends: `eof` is what stops a file cut short.
      if (c.eof || c.offset + len > c.size) { info.truncated = true; break; }
      if (len > buf.length) { c.skip(len); blocks++; continue; } // a big block we do not read
      c.fill();
      continue;
    }
    if (dv.getUint32(pos + len - 4, le) !== len) {
      info.trailing = { offset: c.offset, bytes: c.size - c.offset, reason: `block length ${len} with a trailer of ${u32(pos + len - 4)}` };
      break;
    }
    const end = pos + len - 4;
    switch (type) {
      case PCAPNG_BLOCK_SHB: {
        if (len < 28) throw corrupt(`section header of ${len} bytes`);
        const major = u16(pos + 12);
        if (major !== 1) throw new PcapFormatError(file, `unsupported pcapng version ${major}.${u16(pos + 14)}; expected 1.0`);
        section = [];
        break;
      }
      case BLOCK_IDB: {
        if (len < 20) throw corrupt(`interface description of ${len} bytes`);
        const linkType = u16(pos + 8);
        const iface: CaptureInterface = { linkType, snaplen: u32(pos + 12), tsUnit: 'µs', packets: 0, decoded: isDecodedLinkType(linkType) };
        let tsresol = 6;
        let tsoffset = 0;
        forEachOption(pos + 16, end, u16, (code, at, n) => {
          if (code === IF_NAME) iface.name = optionString(buf, at, n);
          else if (code === IF_DESCRIPTION) iface.description = optionString(buf, at, n);
          else if (code === IF_TSRESOL && n >= 1) tsresol = buf[at]!;
          else if (code === IF_TSOFFSET && n >= 8) tsoffset = Number(le ? buf.readBigInt64LE(at) : buf.readBigInt64BE(at));
        });
        const clock = clockOf(iface, info.interfaces.length, tsresol, tsoffset);
        if (clock.div > 1 || (clock.scale > 0 && clock.scale < 1)) info.nanosecond = true;
        info.interfaces.push(iface);
        section.push(clock);
        if (info.linkType < 0 && iface.decoded) { info.linkType = linkType; info.snaplen = iface.snaplen; }
        break;
      }
      case BLOCK_EPB:
      case BLOCK_OPB: {
        if (len < 32) throw corrupt(`packet block of ${len} bytes`);
        const id = type === BLOCK_EPB ? dv.getUint32(pos + 8, le) : dv.getUint16(pos + 8, le);
        const clock = section[id];
        if (!clock) throw corrupt(`packet on interface ${id}, but the section describes ${section.length}`);
        const capLen = dv.getUint32(pos + 20, le);
        if (28 + capLen > len - 4) throw corrupt(`captured length ${capLen} does not fit a block of ${len} bytes`);
        const ts = micros(clock, dv.getUint32(pos + 12, le), dv.getUint32(pos + 16, le));
        lastTs = ts;
        deliver(clock, ts, pos + 28, capLen, dv.getUint32(pos + 24, le));
        break;
      }
      case BLOCK_SPB: {
        const clock = section[0];
        if (!clock) throw corrupt('simple packet block, but the section describes no interface');
        const origLen = u32(pos + 8);
        const capLen = Math.min(origLen, clock.snaplen > 0 ? clock.snaplen : Infinity, len - 16);
        deliver(clock, lastTs, pos + 12, capLen, origLen);
        break;
      }
      case BLOCK_ISB: {
        const clock = section[u32(pos + 8)];
        if (clock && len >= 24) {
          forEachOption(pos + 20, end, u16, (code, at, n) => {
            if (code === ISB_IFDROP && n >= 8) clock.info.droppedByKernel = Number(le ? buf.readBigUInt64LE(at) : buf.readBigUInt64BE(at));
          });
        }
        break;
      }
      default:
        break;
    }
    blocks++;
    c.pos = pos + len;
  }
  if (info.linkType < 0 && info.interfaces.length > 0) {
    const types = [...new Set(info.interfaces.map((i) => linkTypeName(i.linkType)))].join(', ');
    throw new PcapFormatError(file, `${types} is not decoded, so its packets cannot be analysed`);
  }
  return info;
}

/** Options: code(2) length(2) value padded to 4, until opt_endofopt or the block's end. */
function forEachOption(from: number, end: number, u16: (o: number) => number, fn: (code: number, at: number, n: number) => void): void {
  let at = from;
  while (at + 4 <= end) {
    const code = u16(at);
    const n = u16(at + 2);
    if (code === OPT_END || at + 4 + n > end) return;
    fn(code, at + 4, n);
    at += 4 + ((n + 3) & ~3);
  }
}

/** A UTF-8 option value; writers may or may not end it with NUL. */
function optionString(buf: Buffer, at: number, n: number): string {
  const nul = buf.indexOf(0, at);
  return buf.toString('utf8', at, nul >= 0 && nul < at + n ? nul : at + n);
}
