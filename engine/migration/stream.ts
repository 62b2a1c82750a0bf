// The switchover migration stream: a versioned binary format, documented byte by byte in
// engine/migration/STREAM.md. Both wires are typed here once: the main stream (source -> destination)
// and the return path (destination -> source on the same socket).
//
// Models: QEMU's migration stream (migration/savevm.c: a header, then sections each with a
// type byte; QEMU_VM_EOF; RAM as RAM_SAVE_FLAG_PAGE / RAM_SAVE_FLAG_ZERO records) and its
// return path (migration/migration.c: MIG_RP_MSG_SHUT, MIG_RP_MSG_PONG; u16 type + u16 length).
// Foreign and byte-swapped streams are told apart as passt's migrate.c does with its
// MIGRATE_MAGIC: a magic that is not its own byte swap.
import { validateDeviceState } from './device-state.js';
import type { GuestUdpCounters, NetpassOrder, NetpassTrigger } from '../../lib/qmp-protocol.js';
import { PAGE_SIZE } from '../guest/ram.js';

/** The 8 bytes 'SWOVRMIG' read as a little-endian u64. */
export const STREAM_MAGIC = 0x47494d52564f5753n;
export const STREAM_VERSION = 1;
export const HEADER_SIZE = 32;
export const SECTION_HEADER_SIZE = 5;
export const RP_HEADER_SIZE = 4;

const MAGIC_SWAPPED = 0x53574f56524d4947n;

/** Section type bytes. Gaps are deliberate: groups by subsystem. */
export const SectionType = {
  PassStart: 0x01,
  Page: 0x02,
  Zero: 0x03,
  PassEnd: 0x04,
  Ping: 0x05,
  Device: 0x10,
  TapLocal: 0x20,
  FdsSent: 0x21,
  NetpassFrame: 0x30,
  NetpassEnd: 0x31,
  Eof: 0x7f,
} as const;

const SECTION_NAMES: Record<number, string> = {
  [SectionType.PassStart]: 'RAM pass start', [SectionType.Page]: 'RAM page', [SectionType.Zero]: 'zero-page',
  [SectionType.PassEnd]: 'RAM pass end', [SectionType.Ping]: 'ping', [SectionType.Device]: 'device state',
  [SectionType.TapLocal]: 'local-migration TAP', [SectionType.FdsSent]: 'fds-sent',
  [SectionType.NetpassFrame]: 'netpass frame', [SectionType.NetpassEnd]: 'netpass end', [SectionType.Eof]: 'EOF',
};

/** Largest Ethernet frame a netpass section carries (a TAP frame with a 64 KiB GSO payload). */
export const MAX_NETPASS_FRAME = 65_536 + 14 + 4;
/** Largest device-state JSON payload. */
export const MAX_DEVICE_STATE = 1 << 20;
export const MAX_QUEUES = 256;
const TAP_QUEUE_SIZE = 8;

/** Allowed payload length per section type: exact, or [min, max]. */
const LENGTHS: Record<number, number | [number, number]> = {
  [SectionType.PassStart]: 4,
  [SectionType.Page]: 4 + PAGE_SIZE,
  [SectionType.Zero]: 8,
  [SectionType.PassEnd]: 8,
  [SectionType.Ping]: 4,
  [SectionType.Device]: [2, MAX_DEVICE_STATE],
  [SectionType.TapLocal]: [2 + TAP_QUEUE_SIZE, 2 + TAP_QUEUE_SIZE * MAX_QUEUES],
  [SectionType.FdsSent]: 2,
  [SectionType.NetpassFrame]: [8 + 14, 8 + MAX_NETPASS_FRAME],
  [SectionType.NetpassEnd]: 8,
  [SectionType.Eof]: 0,
};

/** NetpassFirstTx and NetpassBacklogFirst carry the source's x-netpass-trigger and x-netpass-order (issue 17). */
export const HeaderFlag = { Local: 1, Netpass: 2, ReturnPath: 4, NetpassFirstTx: 8, NetpassBacklogFirst: 16 } as const;
const KNOWN_FLAGS = HeaderFlag.Local | HeaderFlag.Netpass | HeaderFlag.ReturnPath | HeaderFlag.NetpassFirstTx | HeaderFlag.NetpassBacklogFirst;
const NETPASS_VARIANT_FLAGS = HeaderFlag.NetpassFirstTx | HeaderFlag.NetpassBacklogFirst;

export interface StreamHeader {
  version: number;
  pageSize: number;
  ramSize: number;
  /** Local migration: TAP fds travel in a tap-local section (QEMU's `local` parameter). */
  local: boolean;
  /** netpass frames follow EOF, after the destination's VM_STARTED. */
  netpass: boolean;
  returnPath: boolean;
  /** netpass variants (switchover's, not the series'); the defaults without netpass. */
  netpassTrigger: NetpassTrigger;
  netpassOrder: NetpassOrder;
  queues: number;
}

/** virtio-net NIC state that migrates. */
export interface NicState {
  mac: string;
  /** The receive side was enabled (link up, driver ready) when the source stopped. */
  rxEnabled: boolean;
  queues: number;
}

/** Guest network-stack state that migrates. `extra` carries model internals opaque to the stream. */
export interface GuestState {
  ip: string;
  prefixLength: number;
  arpCache: Array<{ ip: string; mac: string }>;
  udp: GuestUdpCounters[];
  extra?: Record<string, unknown>;
}

export interface DeviceState { nic: NicState; guest: GuestState }

/** Per TAP queue, the state local migration carries next to the fd (QEMU's live-TAP series). */
export interface TapQueueState {
  /** The TAP was opened with IFF_VNET_HDR. */
  vnetHdr: boolean;
  /** TUNSETOFFLOAD flags in effect. */
  offloadFlags: number;
  /** The queue is attached (TUNSETQUEUE IFF_ATTACH_QUEUE) and used. */
  enabled: boolean;
  /** TUNSETVNETHDRSZ value (0 without vnet_hdr). */
  vnetHdrLen: number;
}

export type StreamSection =
  | { type: 'header'; header: StreamHeader }
  | { type: 'pass-start'; pass: number }
  /** `data` views the pushed chunk: copy it if you keep it beyond the call. */
  | { type: 'page'; index: number; data: Buffer }
  | { type: 'zero'; index: number; count: number }
  | { type: 'pass-end'; pass: number; pages: number }
  | { type: 'ping'; id: number }
  | { type: 'device'; state: DeviceState }
  | { type: 'tap-local'; queues: TapQueueState[] }
  | { type: 'fds-sent'; count: number }
  | { type: 'eof' }
  /** `timeMs`: wall-clock time (Date.now()) the source received the frame. */
  | { type: 'netpass-frame'; timeMs: number; frame: Buffer }
  | { type: 'netpass-end'; frames: number; dropped: number };

/** A malformed, foreign or truncated stream. The message names the problem. */
export class StreamError extends Error {
  constructor(message: string, readonly offset?: number) {
    super(message);
    this.name = 'StreamError';
  }
}

const hex = (n: number | bigint, width: number): string => `0x${n.toString(16).padStart(width, '0')}`;

// ---------------------------------------------------------------------------------------
// Encoder

/**
 * Builds the source side of the stream into large buffers. Call the section methods, then
 * flush() to take the bytes (at least whenever `pending` reaches the write size you want).
 * Consecutive zero pages coalesce into one zero-page run.
 */
export class StreamEncoder {
  private slab: Buffer;
  private pos = 0;
  private done: Buffer[] = [];
  private doneBytes = 0;
  private zeroStart = -1;
  private zeroCount = 0;
  private readonly slabSize: number;

  constructor(slabSize = 1 << 20) {
    this.slabSize = slabSize;
    this.slab = Buffer.allocUnsafe(slabSize);
  }

  /** Bytes encoded and not yet flushed. */
  get pending(): number { return this.doneBytes + this.pos + (this.zeroCount ? SECTION_HEADER_SIZE + 8 : 0); }

  /** The netpass variants default to the series' (vm-started, as-series). */
  header(h: Omit<StreamHeader, 'version' | 'pageSize' | 'netpassTrigger' | 'netpassOrder'> & Partial<Pick<StreamHeader, 'netpassTrigger' | 'netpassOrder'>>): this {
    const b = this.reserve(HEADER_SIZE);
    b.writeBigUInt64LE(STREAM_MAGIC, 0);
    b.writeUInt32LE(STREAM_VERSION, 8);
    b.writeUInt32LE(PAGE_SIZE, 12);
    b.writeBigUInt64LE(BigInt(h.ramSize), 16);
    b.writeUInt32LE((h.local ? HeaderFlag.Local : 0) | (h.netpass ? HeaderFlag.Netpass : 0) | (h.returnPath ? HeaderFlag.ReturnPath : 0)
      | (h.netpass && h.netpassTrigger === 'first-tx' ? HeaderFlag.NetpassFirstTx : 0)
      | (h.netpass && h.netpassOrder === 'backlog-first' ? HeaderFlag.NetpassBacklogFirst : 0), 24);
    b.writeUInt16LE(h.queues, 28);
    b.writeUInt16LE(0, 30);
    return this;
  }

  passStart(pass: number): this { this.section(SectionType.PassStart, 4).writeUInt32LE(pass, 0); return this; }

  page(index: number, data: Uint8Array): this {
    if (data.length !== PAGE_SIZE) throw new Error(`page ${index}: ${data.length} bytes, a page is ${PAGE_SIZE}`);
    const b = this.section(SectionType.Page, 4 + PAGE_SIZE);
    b.writeUInt32LE(index, 0);
    b.set(data, 4);
    return this;
  }

  zeroPage(index: number): this {
    if (this.zeroCount && this.zeroStart + this.zeroCount === index) { this.zeroCount++; return this; }
    this.flushZero();
    this.zeroStart = index;
    this.zeroCount = 1;
    return this;
  }

  passEnd(pass: number, pages: number): this {
    const b = this.section(SectionType.PassEnd, 8);
    b.writeUInt32LE(pass, 0);
    b.writeUInt32LE(pages, 4);
    return this;
  }

  ping(id: number): this { this.section(SectionType.Ping, 4).writeUInt32LE(id, 0); return this; }

  device(state: DeviceState): this {
    const json = Buffer.from(JSON.stringify(state));
    this.section(SectionType.Device, json.length).set(json, 0);
    return this;
  }

  /** The TAP state; the fds follow out of band after the destination's FDS_READY (STREAM.md). */
  tapLocal(queues: TapQueueState[]): this {
    const b = this.section(SectionType.TapLocal, 2 + TAP_QUEUE_SIZE * queues.length);
    b.writeUInt16LE(queues.length, 0);
    queues.forEach((q, i) => {
      const o = 2 + i * TAP_QUEUE_SIZE;
      b.writeUInt8(q.vnetHdr ? 1 : 0, o);
      b.writeUInt8(q.enabled ? 1 : 0, o + 1);
      b.writeUInt16LE(q.vnetHdrLen, o + 2);
      b.writeUInt32LE(q.offloadFlags >>> 0, o + 4);
    });
    return this;
  }

  fdsSent(count: number): this { this.section(SectionType.FdsSent, 2).writeUInt16LE(count, 0); return this; }

  eof(): this { this.section(SectionType.Eof, 0); return this; }

  netpassFrame(timeMs: number, frame: Uint8Array): this {
    const b = this.section(SectionType.NetpassFrame, 8 + frame.length);
    b.writeDoubleLE(timeMs, 0);
    b.set(frame, 8);
    return this;
  }

  netpassEnd(frames: number, dropped: number): this {
    const b = this.section(SectionType.NetpassEnd, 8);
    b.writeUInt32LE(frames, 0);
    b.writeUInt32LE(dropped, 4);
    return this;
  }

  /** Takes every encoded byte (one Buffer, empty when nothing is pending). */
  flush(): Buffer {
    this.flushZero();
    if (this.pos) {
      this.done.push(this.slab.subarray(0, this.pos));
      this.doneBytes += this.pos;
      this.slab = this.slab.length - this.pos >= 4096 ? this.slab.subarray(this.pos) : Buffer.allocUnsafe(this.slabSize);
      this.pos = 0;
    }
    const out = this.done.length === 1 ? this.done[0]! : Buffer.concat(this.done, this.doneBytes);
    this.done = [];
    this.doneBytes = 0;
    return out;
  }

  private flushZero(): void {
    if (!this.zeroCount) return;
    const count = this.zeroCount;
    this.zeroCount = 0;
    const b = this.section(SectionType.Zero, 8);
    b.writeUInt32LE(this.zeroStart, 0);
    b.writeUInt32LE(count, 4);
  }

  private section(type: number, len: number): Buffer {
    if (type !== SectionType.Zero) this.flushZero();
    const b = this.reserve(SECTION_HEADER_SIZE + len);
    b.writeUInt8(type, 0);
    b.writeUInt32LE(len, 1);
    return b.subarray(SECTION_HEADER_SIZE);
  }

  private reserve(n: number): Buffer {
    if (this.pos + n > this.slab.length) {
      if (this.pos) {
        this.done.push(this.slab.subarray(0, this.pos));
        this.doneBytes += this.pos;
      }
      this.slab = Buffer.allocUnsafe(Math.max(this.slabSize, n));
      this.pos = 0;
    }
    const b = this.slab.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
}

// ---------------------------------------------------------------------------------------
// Decoder

/** What the destination knows about itself; a mismatch fails the stream with a message. */
export interface StreamExpectation {
  ramSize?: number;
  local?: boolean;
  queues?: number;
}

type Phase = 'header' | 'body' | 'pass' | 'awaiting-fds' | 'after-fds' | 'after-eof' | 'done';

/**
 * Incremental destination-side parser: push() each chunk as it arrives (any split) and
 * get the complete sections; end() when the channel closes. Every malformed input throws
 * StreamError naming the problem and its byte offset.
 *
 * Local migration: after a tap-local section the decoder waits for the caller to receive
 * the fds out of band and call fdsReceived(n); bytes pushed meanwhile are an error, because
 * they would be the fd-carrying bytes read as stream data (their fds are then lost).
 */
export class StreamDecoder {
  private carry: Buffer | null = null;
  private offset = 0;
  private phase: Phase = 'header';
  private pass = -1;
  private pageCount = 0;
  private fdQueues = 0;
  private deviceSeen = false;
  private fdsSentSeen = false;
  private netpassFrames = 0;
  header: StreamHeader | undefined;

  constructor(private readonly expect: StreamExpectation = {}) {}

  /** The EOF section (and, with netpass, the netpass end marker) has been read. */
  get done(): boolean { return this.phase === 'done'; }
  /** EOF of the VM state has been read: the destination can start the guest. */
  get stateComplete(): boolean { return this.phase === 'after-eof' || this.phase === 'done'; }
  /** A tap-local section was read and its fds have not been reported yet. */
  get awaitingFds(): number { return this.phase === 'awaiting-fds' ? this.fdQueues : 0; }
  /** Bytes consumed so far. */
  get position(): number { return this.offset + (this.carry?.length ?? 0); }

  push(chunk: Buffer): StreamSection[] {
    const out: StreamSection[] = [];
    if (!chunk.length) return out;
    if (this.phase === 'awaiting-fds') {
      throw new StreamError(`stream data at offset ${this.position} while waiting for the ${this.fdQueues} TAP fd(s): the source must wait for FDS_READY before sending them`, this.position);
    }
    if (this.phase === 'done') throw new StreamError(`data after the end of the stream at offset ${this.position}`, this.position);
    let off = 0;
    // Complete a unit split across chunks by copying only the bytes it needs.
    while (this.carry && off < chunk.length) {
      const need = this.unitSize(this.carry, 0, this.carry.length);
      const take = Math.min(need - this.carry.length, chunk.length - off);
      this.carry = Buffer.concat([this.carry, chunk.subarray(off, off + take)]);
      off += take;
      if (this.carry.length === this.unitSize(this.carry, 0, this.carry.length)) {
        const unit = this.carry;
        this.carry = null;
        out.push(this.parse(unit, 0, unit.length));
        this.offset += unit.length;
        if (this.stopped()) return this.stopAt(out, chunk, off);
      }
    }
    while (off < chunk.length) {
      const avail = chunk.length - off;
      const size = this.unitSize(chunk, off, avail);
      if (size > avail) {
        this.carry = Buffer.from(chunk.subarray(off));
        return out;
      }
      out.push(this.parse(chunk, off, size));
      off += size;
      this.offset += size;
      if (this.stopped()) return this.stopAt(out, chunk, off);
    }
    return out;
  }

  /** The caller received `count` fds for the tap-local section; stream parsing resumes. */
  fdsReceived(count: number): void {
    if (this.phase !== 'awaiting-fds') throw new StreamError('fdsReceived() without a pending tap-local section');
    if (count !== this.fdQueues) {
      throw new StreamError(`received ${count} TAP fd(s) but the tap-local section announced ${this.fdQueues}`);
    }
    this.phase = 'after-fds';
  }

  /** The channel closed: throws unless the stream ended where it may end. */
  end(): void {
    if (this.carry) {
      const what = this.phase === 'header' ? 'the header' : `${SECTION_NAMES[this.carry[0]!] ?? 'a'} section`;
      throw new StreamError(`truncated stream: EOF inside ${what} at offset ${this.offset} (${this.carry.length} of ${this.unitSize(this.carry, 0, this.carry.length)} bytes)`, this.offset);
    }
    if (this.phase === 'done' || (this.phase === 'after-eof' && !this.header?.netpass)) return;
    if (this.phase === 'after-eof') {
      throw new StreamError(`truncated stream: channel closed after EOF before the netpass end marker (${this.netpassFrames} frames read)`, this.offset);
    }
    throw new StreamError(`truncated stream: channel closed after ${this.offset} bytes, before the EOF section`, this.offset);
  }

  /** Parsing pauses for the fds, or the stream is over. */
  private stopped(): boolean { return this.phase === 'awaiting-fds' || this.phase === 'done'; }

  private stopAt(out: StreamSection[], chunk: Buffer, off: number): StreamSection[] {
    if (off < chunk.length) {
      const where = this.phase === 'done' ? 'after the end of the stream' : `after the tap-local section, before FDS_READY (the fd-carrying bytes must not be read as stream data)`;
      throw new StreamError(`${chunk.length - off} byte(s) of data ${where} at offset ${this.offset}`, this.offset);
    }
    return out;
  }

  /** Bytes the next unit occupies, validating as much as `avail` bytes allow. */
  private unitSize(b: Buffer, off: number, avail: number): number {
    if (this.phase === 'header') {
      if (avail >= 8) this.checkMagic(b.readBigUInt64LE(off));
      return HEADER_SIZE;
    }
    if (avail < SECTION_HEADER_SIZE) return SECTION_HEADER_SIZE;
    const type = b[off]!;
    const len = b.readUInt32LE(off + 1);
    const allowed = LENGTHS[type];
    if (allowed === undefined) {
      throw new StreamError(`unknown section type ${hex(type, 2)} at offset ${this.offset}`, this.offset);
    }
    const [min, max] = typeof allowed === 'number' ? [allowed, allowed] : allowed;
    if (len < min || len > max) {
      const want = min === max ? `${min}` : `${min}..${max}`;
      throw new StreamError(`bad length ${len} for ${SECTION_NAMES[type]} section at offset ${this.offset} (expected ${want})`, this.offset);
    }
    return SECTION_HEADER_SIZE + len;
  }

  private checkMagic(magic: bigint): void {
    if (magic === STREAM_MAGIC) return;
    if (magic === MAGIC_SWAPPED) {
      throw new StreamError('byte-swapped stream: produced on a host of the other endianness', 0);
    }
    throw new StreamError(`not a switchover migration stream (magic ${hex(magic, 16)}, expected ${hex(STREAM_MAGIC, 16)})`, 0);
  }

  private parse(b: Buffer, off: number, size: number): StreamSection {
    if (this.phase === 'header') return this.parseHeader(b, off);
    const type = b[off]!;
    const p = b.subarray(off + SECTION_HEADER_SIZE, off + size);
    const at = this.offset;
    const name = SECTION_NAMES[type]!;
    const fail = (why: string): never => { throw new StreamError(`${name} section at offset ${at}: ${why}`, at); };
    const allow = (...phases: Phase[]): void => {
      if (!phases.includes(this.phase)) fail(`not allowed here (${this.describePhase()})`);
    };
    switch (type) {
      case SectionType.PassStart: {
        allow('body');
        const pass = p.readUInt32LE(0);
        if (pass <= this.pass) fail(`pass ${pass} after pass ${this.pass}`);
        this.pass = pass;
        this.phase = 'pass';
        return { type: 'pass-start', pass };
      }
      case SectionType.Page: {
        allow('pass');
        const index = p.readUInt32LE(0);
        if (index >= this.pageCount) fail(`page ${index} is outside guest RAM (${this.pageCount} pages)`);
        return { type: 'page', index, data: p.subarray(4) };
      }
      case SectionType.Zero: {
        allow('pass');
        const index = p.readUInt32LE(0), count = p.readUInt32LE(4);
        if (count === 0 || index + count > this.pageCount) fail(`pages ${index}+${count} are outside guest RAM (${this.pageCount} pages)`);
        return { type: 'zero', index, count };
      }
      case SectionType.PassEnd: {
        allow('pass');
        const pass = p.readUInt32LE(0);
        if (pass !== this.pass) fail(`ends pass ${pass} but pass ${this.pass} is open`);
        this.phase = 'body';
        return { type: 'pass-end', pass, pages: p.readUInt32LE(4) };
      }
      case SectionType.Ping:
        allow('body', 'pass', 'after-fds');
        return { type: 'ping', id: p.readUInt32LE(0) };
      case SectionType.Device: {
        allow('body', 'after-fds');
        if (this.deviceSeen) fail('device state sent twice');
        if (this.header!.local && !this.fdsSentSeen) fail('local migration stream without its tap-local and fds-sent sections before the device state');
        this.deviceSeen = true;
        return { type: 'device', state: parseDeviceState(p, fail) };
      }
      case SectionType.TapLocal: {
        allow('body');
        if (!this.header!.local) fail('the stream header does not announce local migration');
        const n = p.readUInt16LE(0);
        if (p.length !== 2 + n * TAP_QUEUE_SIZE) fail(`length ${p.length} does not match ${n} queue(s)`);
        if (n !== this.header!.queues) fail(`${n} queue(s) but the header announces ${this.header!.queues}`);
        const queues: TapQueueState[] = [];
        for (let i = 0; i < n; i++) {
          const o = 2 + i * TAP_QUEUE_SIZE;
          queues.push({ vnetHdr: p[o] === 1, enabled: p[o + 1] === 1, vnetHdrLen: p.readUInt16LE(o + 2), offloadFlags: p.readUInt32LE(o + 4) });
        }
        this.fdQueues = n;
        this.phase = 'awaiting-fds';
        return { type: 'tap-local', queues };
      }
      case SectionType.FdsSent: {
        allow('after-fds');
        const count = p.readUInt16LE(0);
        if (this.fdsSentSeen) fail('sent twice');
        if (count !== this.fdQueues) fail(`source sent ${count} fd(s), the destination received ${this.fdQueues}`);
        this.fdsSentSeen = true;
        return { type: 'fds-sent', count };
      }
      case SectionType.Eof:
        allow('body', 'after-fds');
        if (!this.deviceSeen) fail('EOF before the device state');
        this.phase = this.header!.netpass ? 'after-eof' : 'done';
        return { type: 'eof' };
      case SectionType.NetpassFrame:
        if (this.phase !== 'after-eof') fail(this.header!.netpass ? 'netpass frames come only after EOF (after VM_STARTED)' : 'the stream header does not announce netpass');
        this.netpassFrames++;
        return { type: 'netpass-frame', timeMs: p.readDoubleLE(0), frame: p.subarray(8) };
      case SectionType.NetpassEnd: {
        if (this.phase !== 'after-eof') fail(this.header!.netpass ? 'netpass end marker before EOF' : 'the stream header does not announce netpass');
        const frames = p.readUInt32LE(0);
        if (frames !== this.netpassFrames) fail(`announces ${frames} frames but ${this.netpassFrames} were sent`);
        this.phase = 'done';
        return { type: 'netpass-end', frames, dropped: p.readUInt32LE(4) };
      }
      default:
        throw new StreamError(`unknown section type ${hex(type, 2)} at offset ${at}`, at);
    }
  }

  private parseHeader(b: Buffer, off: number): StreamSection {
    const version = b.readUInt32LE(off + 8);
    if (version !== STREAM_VERSION) {
      throw new StreamError(`unsupported stream version ${version} (this engine speaks ${STREAM_VERSION})`, 8);
    }
    const pageSize = b.readUInt32LE(off + 12);
    if (pageSize !== PAGE_SIZE) throw new StreamError(`stream page size ${pageSize} differs from this engine's ${PAGE_SIZE}`, 12);
    const ramSize = Number(b.readBigUInt64LE(off + 16));
    if (ramSize < PAGE_SIZE || ramSize % PAGE_SIZE !== 0 || ramSize / PAGE_SIZE > 2 ** 32) {
      throw new StreamError(`stream RAM size ${ramSize} is not a multiple of the page size within 16 TiB`, 16);
    }
    const flags = b.readUInt32LE(off + 24);
    if (flags & ~KNOWN_FLAGS) throw new StreamError(`unknown header flags ${hex(flags & ~KNOWN_FLAGS, 8)}: produced by a newer engine?`, 24);
    if ((flags & NETPASS_VARIANT_FLAGS) && !(flags & HeaderFlag.Netpass)) {
      throw new StreamError(`header flags ${hex(flags, 8)} set a netpass variant without the netpass flag`, 24);
    }
    const queues = b.readUInt16LE(off + 28);
    if (queues < 1 || queues > MAX_QUEUES) throw new StreamError(`stream queue count ${queues} is not in 1..${MAX_QUEUES}`, 28);
    const header: StreamHeader = {
      version, pageSize, ramSize, queues,
      local: (flags & HeaderFlag.Local) !== 0,
      netpass: (flags & HeaderFlag.Netpass) !== 0,
      returnPath: (flags & HeaderFlag.ReturnPath) !== 0,
      netpassTrigger: flags & HeaderFlag.NetpassFirstTx ? 'first-tx' : 'vm-started',
      netpassOrder: flags & HeaderFlag.NetpassBacklogFirst ? 'backlog-first' : 'as-series',
    };
    const e = this.expect;
    if (e.ramSize !== undefined && e.ramSize !== ramSize) {
      throw new StreamError(`source guest RAM is ${ramSize} bytes but this VM has ${e.ramSize}: start the destination with the same -m`, 16);
    }
    if (e.local !== undefined && e.local !== header.local) {
      throw new StreamError(e.local
        ? 'this destination expects local migration (local=on, incoming-fds) but the source did not enable the local parameter'
        : 'the source migrates locally (passes TAP fds) but this destination does not have local enabled', 24);
    }
    if (e.queues !== undefined && e.queues !== queues) {
      throw new StreamError(`source NIC has ${queues} queue(s) but this VM has ${e.queues}: the netdev queues= must match`, 28);
    }
    this.header = header;
    this.pageCount = ramSize / PAGE_SIZE;
    this.phase = 'body';
    return { type: 'header', header };
  }

  private describePhase(): string {
    switch (this.phase) {
      case 'pass': return `inside RAM pass ${this.pass}`;
      case 'after-fds': return 'after the TAP fds';
      case 'after-eof': return 'after EOF';
      default: return 'outside a RAM pass';
    }
  }
}

function parseDeviceState(p: Buffer, fail: (why: string) => never): DeviceState {
  let v: unknown;
  try {
    v = JSON.parse(p.toString('utf8'));
  } catch (e) {
    return fail(`payload is not JSON (${(e as Error).message})`);
  }
  try {
    return validateDeviceState(v);
  } catch (e) {
    return fail((e as Error).message);
  }
}

// ---------------------------------------------------------------------------------------
// Return path: destination -> source, u16 type + u16 length + payload (little-endian).

export const RpType = { Shut: 1, Pong: 2, VmStarted: 3, FdsReady: 4, Fail: 5, NetpassGo: 6 } as const;
export const MAX_FAIL_REASON = 4096;

export type RpMessage =
  /** The destination sends nothing more; status 0 = success (QEMU's MIG_RP_MSG_SHUT). */
  | { type: 'shut'; status: number }
  | { type: 'pong'; id: number }
  /** The destination guest runs now (the netpass series' RP_VM_STARTED). */
  | { type: 'vm-started' }
  /** The destination stopped reading the stream and will receive `count` fds. */
  | { type: 'fds-ready'; count: number }
  | { type: 'fail'; reason: string }
  /** x-netpass-trigger=first-tx: the destination guest sent its first frame; forward the cache now. */
  | { type: 'netpass-go' };

export function encodeRp(m: RpMessage): Buffer {
  let payload: Buffer;
  let type: number;
  switch (m.type) {
    case 'shut': type = RpType.Shut; payload = Buffer.alloc(4); payload.writeUInt32LE(m.status >>> 0); break;
    case 'pong': type = RpType.Pong; payload = Buffer.alloc(4); payload.writeUInt32LE(m.id >>> 0); break;
    case 'vm-started': type = RpType.VmStarted; payload = Buffer.alloc(0); break;
    case 'netpass-go': type = RpType.NetpassGo; payload = Buffer.alloc(0); break;
    case 'fds-ready': type = RpType.FdsReady; payload = Buffer.alloc(2); payload.writeUInt16LE(m.count); break;
    case 'fail': {
      type = RpType.Fail;
      payload = Buffer.from(m.reason, 'utf8');
      if (payload.length > MAX_FAIL_REASON) payload = payload.subarray(0, MAX_FAIL_REASON);
      break;
    }
  }
  const out = Buffer.alloc(RP_HEADER_SIZE + payload.length);
  out.writeUInt16LE(type, 0);
  out.writeUInt16LE(payload.length, 2);
  payload.copy(out, RP_HEADER_SIZE);
  return out;
}

const RP_LENGTHS: Record<number, [number, number]> = {
  [RpType.Shut]: [4, 4], [RpType.Pong]: [4, 4], [RpType.VmStarted]: [0, 0], [RpType.FdsReady]: [2, 2],
  [RpType.Fail]: [0, MAX_FAIL_REASON], [RpType.NetpassGo]: [0, 0],
};

/** Incremental source-side parser of return-path messages. */
export class RpDecoder {
  private buf: Buffer = Buffer.alloc(0);
  private offset = 0;

  push(chunk: Buffer): RpMessage[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: RpMessage[] = [];
    while (this.buf.length >= RP_HEADER_SIZE) {
      const type = this.buf.readUInt16LE(0), len = this.buf.readUInt16LE(2);
      const allowed = RP_LENGTHS[type];
      if (!allowed) throw new StreamError(`unknown return-path message type ${type} at offset ${this.offset}`, this.offset);
      if (len < allowed[0] || len > allowed[1]) {
        throw new StreamError(`bad length ${len} for return-path message type ${type} at offset ${this.offset}`, this.offset);
      }
      if (this.buf.length < RP_HEADER_SIZE + len) break;
      const p = this.buf.subarray(RP_HEADER_SIZE, RP_HEADER_SIZE + len);
      switch (type) {
        case RpType.Shut: out.push({ type: 'shut', status: p.readUInt32LE(0) }); break;
        case RpType.Pong: out.push({ type: 'pong', id: p.readUInt32LE(0) }); break;
        case RpType.VmStarted: out.push({ type: 'vm-started' }); break;
        case RpType.FdsReady: out.push({ type: 'fds-ready', count: p.readUInt16LE(0) }); break;
        case RpType.NetpassGo: out.push({ type: 'netpass-go' }); break;
        default: out.push({ type: 'fail', reason: p.toString('utf8') }); break;
      }
      this.buf = this.buf.subarray(RP_HEADER_SIZE + len);
      this.offset += RP_HEADER_SIZE + len;
    }
    if (this.buf.length) this.buf = Buffer.from(this.buf);
    return out;
  }

  /** The return path closed: throws if it closed inside a message. */
  end(): void {
    if (this.buf.length) {
      throw new StreamError(`truncated return path: closed inside a message at offset ${this.offset} (${this.buf.length} bytes)`, this.offset);
    }
  }
}
