// A batch UDP (IPv4) socket outside libuv, through koffi: sendmmsg(2) of up to `batch`
// datagrams to one destination and non-blocking recvmmsg(2) of up to `batch` datagrams, one
// FFI call per batch. Node's dgram costs a libuv request and a JS callback per datagram,
// which is what kept the traffic generator from 20,000 datagrams/s on two cores.
//
// All native memory (mmsghdr, iovec and sockaddr arrays, the datagram slots) is one koffi
// allocation made in open() and freed in close(); JS reads and writes it through Buffer views,
// so no call allocates per datagram. The socket is non-blocking and never registered with the
// event loop: the caller polls receive() from its own timer.
//
// Struct layouts are the LP64 Linux ones (x86_64 and arm64 share them): sockaddr_in 16 bytes,
// iovec 16, msghdr 56, mmsghdr 64 (msghdr + unsigned msg_len + padding).
import { fstatSync, readFileSync } from 'node:fs';
import koffi from 'koffi';
import { EAGAIN, EINTR, lastErrno, libc, LibcError } from './libc.js';
import { ipToInt } from './net-addr.js';

// Pointers are passed as uintptr_t addresses into the one allocation, so that a batch can
// start at any slot without a koffi pointer object per call.
const cSocket = libc.func('int socket(int domain, int type, int protocol)');
const cSetsockopt = libc.func('int setsockopt(int fd, int level, int name, uintptr_t value, uint32_t len)');
const cGetsockopt = libc.func('int getsockopt(int fd, int level, int name, uintptr_t value, uintptr_t len)');
const cBind = libc.func('int bind(int fd, uintptr_t addr, uint32_t len)');
const cGetsockname = libc.func('int getsockname(int fd, uintptr_t addr, uintptr_t len)');
const cSendmmsg = libc.func('int sendmmsg(int fd, uintptr_t msgvec, unsigned int vlen, int flags)');
const cRecvmmsg = libc.func('int recvmmsg(int fd, uintptr_t msgvec, unsigned int vlen, int flags, uintptr_t timeout)');
const cClose = libc.func('int close(int fd)');

// Linux ABI constants (bits/socket.h, asm-generic/socket.h, asm-generic/errno.h).
const AF_INET = 2;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_SNDBUF = 7;
const SO_RCVBUF = 8;
const MSG_DONTWAIT = 0x40;
const ENOBUFS = 105;

const SOCKADDR_IN = 16;
const IOVEC = 16;
const MMSGHDR = 64;
// Offsets inside struct mmsghdr.
const MSG_NAME = 0, MSG_NAMELEN = 8, MSG_IOV = 16, MSG_IOVLEN = 24, MSG_LEN = 56;

/** The default and the bounds of the two sizes a socket is opened with. */
export const DEFAULT_BATCH = 64;
export const MAX_BATCH = 1024; // UIO_MAXIOV: the kernel caps vlen there
export const DEFAULT_MAX_DATAGRAM = 2048;
export const MAX_DATAGRAM = 65_507;

/** A failed socket call, named with its errno text. */
export class UdpSocketError extends LibcError {
  constructor(call: string, errno: number, what: string) {
    super(call, errno, what);
    this.name = 'UdpSocketError';
  }
}

/** A sendmmsg that failed after the kernel had taken `taken` datagrams of the batch. */
export class UdpSendError extends UdpSocketError {
  constructor(errno: number, what: string, readonly taken: number) {
    super('sendmmsg', errno, what);
    this.name = 'UdpSendError';
  }
}

export interface UdpSocketOptions {
  /** Datagrams per sendmmsg/recvmmsg call, 1 to MAX_BATCH (default DEFAULT_BATCH). */
  batch?: number;
  /** Bytes per datagram slot; longer received datagrams are cut to it (default 2048). */
  maxDatagram?: number;
}

export class UdpSocket {
  /** Payload memory of each send slot (maxDatagram bytes): fill slots, then send(). */
  readonly sendSlots: Buffer[] = [];
  /** Payload memory of each receive slot, valid until the next receive(). */
  readonly recvSlots: Buffer[] = [];

  private readonly mem: unknown;
  private readonly view: Buffer;
  private readonly base: number;
  // Byte offsets of the regions inside the allocation.
  private readonly sendMsgs: number;
  private readonly sendIovs: number;
  private readonly recvMsgs: number;
  private readonly recvNames: number;
  private readonly dest: number;
  private readonly scratch: number;
  /** The destination as text for errors; undefined until setDestination. */
  private destText: string | undefined;
  /** Receive slots the last receive() filled: their msg_namelen needs resetting. */
  private lastReceived = 0;
  private closed = false;

  private constructor(readonly fd: number, readonly batch: number, readonly maxDatagram: number) {
    let at = 0;
    const region = (bytes: number): number => { const o = at; at += (bytes + 15) & ~15; return o; };
    this.sendMsgs = region(batch * MMSGHDR);
    this.sendIovs = region(batch * IOVEC);
    this.recvMsgs = region(batch * MMSGHDR);
    const recvIovs = region(batch * IOVEC);
    this.recvNames = region(batch * SOCKADDR_IN);
    this.dest = region(SOCKADDR_IN);
    this.scratch = region(SOCKADDR_IN + 16); // a sockaddr_in, then a socklen_t and an int
    const sendData = region(batch * maxDatagram);
    const recvData = region(batch * maxDatagram);
    this.mem = koffi.alloc('uint8_t', at);
    this.base = Number(koffi.address(this.mem));
    this.view = Buffer.from(koffi.view(this.mem, at));
    this.view.fill(0);
    const v = this.view;
    for (let i = 0; i < batch; i++) {
      const sm = this.sendMsgs + i * MMSGHDR, siov = this.sendIovs + i * IOVEC;
      v.writeBigUInt64LE(BigInt(this.base + this.dest), sm + MSG_NAME);
      v.writeUInt32LE(SOCKADDR_IN, sm + MSG_NAMELEN);
      v.writeBigUInt64LE(BigInt(this.base + siov), sm + MSG_IOV);
      v.writeBigUInt64LE(1n, sm + MSG_IOVLEN);
      v.writeBigUInt64LE(BigInt(this.base + sendData + i * maxDatagram), siov);
      this.sendSlots.push(v.subarray(sendData + i * maxDatagram, sendData + (i + 1) * maxDatagram));

      const rm = this.recvMsgs + i * MMSGHDR, riov = recvIovs + i * IOVEC;
      v.writeBigUInt64LE(BigInt(this.base + this.recvNames + i * SOCKADDR_IN), rm + MSG_NAME);
      v.writeUInt32LE(SOCKADDR_IN, rm + MSG_NAMELEN);
      v.writeBigUInt64LE(BigInt(this.base + riov), rm + MSG_IOV);
      v.writeBigUInt64LE(1n, rm + MSG_IOVLEN);
      v.writeBigUInt64LE(BigInt(this.base + recvData + i * maxDatagram), riov);
      v.writeBigUInt64LE(BigInt(maxDatagram), riov + 8);
      this.recvSlots.push(v.subarray(recvData + i * maxDatagram, recvData + (i + 1) * maxDatagram));
    }
  }

  /** socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC) with its native buffers. */
  static open(opts: UdpSocketOptions = {}): UdpSocket {
    if (process.platform !== 'linux' || !['x64', 'arm64'].includes(process.arch)) {
      throw new Error(`UdpSocket needs 64-bit Linux (x64 or arm64); this is ${process.platform}/${process.arch}`);
    }
    const batch = opts.batch ?? DEFAULT_BATCH;
    const maxDatagram = opts.maxDatagram ?? DEFAULT_MAX_DATAGRAM;
    if (!Number.isInteger(batch) || batch < 1 || batch > MAX_BATCH) throw new RangeError(`UdpSocket batch must be an integer from 1 to ${MAX_BATCH}, got ${batch}`);
    if (!Number.isInteger(maxDatagram) || maxDatagram < 1 || maxDatagram > MAX_DATAGRAM) {
      throw new RangeError(`UdpSocket maxDatagram must be an integer from 1 to ${MAX_DATAGRAM}, got ${maxDatagram}`);
    }
    const fd = cSocket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) as number;
    if (fd < 0) throw new UdpSocketError('socket', lastErrno(), 'a UDP socket (AF_INET, SOCK_DGRAM)');
    return new UdpSocket(fd, batch, maxDatagram);
  }

  /** SO_RCVBUF; returns what the kernel gave: the request capped at net.core.rmem_max, doubled. */
  setReceiveBuffer(bytes: number): number {
    return this.setBuffer(SO_RCVBUF, 'SO_RCVBUF', bytes);
  }

  /** SO_SNDBUF; returns what the kernel gave: capped at net.core.wmem_max, doubled. */
  setSendBuffer(bytes: number): number {
    return this.setBuffer(SO_SNDBUF, 'SO_SNDBUF', bytes);
  }

  /** bind(2) to address:port (port 0: the kernel picks one); returns the bound port. */
  bind(port = 0, address = '0.0.0.0'): number {
    this.check();
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`bind port must be an integer from 0 to 65535, got ${port}`);
    this.writeSockaddr(this.scratch, ipToInt(address), port);
    if ((cBind(this.fd, this.base + this.scratch, SOCKADDR_IN) as number) < 0) {
      throw new UdpSocketError('bind', lastErrno(), `UDP ${address}:${port} (is the port in use?)`);
    }
    return this.localPort();
  }

  /** The bound local port, from getsockname(2). */
  localPort(): number {
    this.check();
    this.view.writeUInt32LE(SOCKADDR_IN, this.scratch + SOCKADDR_IN);
    if ((cGetsockname(this.fd, this.base + this.scratch, this.base + this.scratch + SOCKADDR_IN) as number) < 0) {
      throw new UdpSocketError('getsockname', lastErrno(), `UDP socket fd ${this.fd}`);
    }
    return this.view.readUInt16BE(this.scratch + 2);
  }

  /** Where every send() goes from now on. */
  setDestination(address: string, port: number): void {
    this.check();
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`destination port must be an integer from 1 to 65535, got ${port}`);
    this.writeSockaddr(this.dest, ipToInt(address), port);
    this.destText = `UDP to ${address}:${port}`;
  }

  /**
   * sendmmsg(2) of send slots [first, first+count), `length` bytes each, to the destination.
   * Returns how many the kernel took; fewer than count means the socket was full (EAGAIN or
   * ENOBUFS) and the rest were not sent. Any other error throws UdpSendError, which says how
   * many of the batch the kernel had taken before it.
   */
  send(first: number, count: number, length: number): number {
    this.check();
    if (!(first >= 0 && count >= 0 && first + count <= this.batch) || !(length >= 0 && length <= this.maxDatagram)) {
      throw new RangeError(`send(${first}, ${count}, ${length}) is outside the ${this.batch} slots of ${this.maxDatagram} bytes`);
    }
    if (this.destText === undefined) throw new Error('UdpSocket.send: call setDestination(address, port) first');
    const v = this.view;
    for (let i = first; i < first + count; i++) v.writeUInt32LE(length, this.sendIovs + i * IOVEC + 8);
    let taken = 0;
    while (taken < count) {
      const n = cSendmmsg(this.fd, this.base + this.sendMsgs + (first + taken) * MMSGHDR, count - taken, 0) as number;
      if (n > 0) { taken += n; continue; }
      const e = lastErrno();
      if (e === EINTR) continue;
      if (e === EAGAIN || e === ENOBUFS) break;
      throw new UdpSendError(e, this.destText, taken);
    }
    return taken;
  }

  /** recvmmsg(2) with MSG_DONTWAIT into the receive slots; the count, 0 when nothing waits. */
  receive(): number {
    this.check();
    const v = this.view;
    for (let i = 0; i < this.lastReceived; i++) v.writeUInt32LE(SOCKADDR_IN, this.recvMsgs + i * MMSGHDR + MSG_NAMELEN);
    this.lastReceived = 0;
    const n = cRecvmmsg(this.fd, this.base + this.recvMsgs, this.batch, MSG_DONTWAIT, 0) as number;
    if (n < 0) {
      const e = lastErrno();
      if (e === EAGAIN || e === EINTR) return 0;
      throw new UdpSocketError('recvmmsg', e, `UDP socket fd ${this.fd}`);
    }
    this.lastReceived = n;
    return n;
  }

  /** Bytes of received datagram i (at most maxDatagram). */
  recvLength(i: number): number {
    return this.view.readUInt32LE(this.recvMsgs + i * MMSGHDR + MSG_LEN);
  }

  /** Source address of received datagram i, as a u32 (lib/net-addr.ts intToIp turns it into text). */
  recvAddress(i: number): number {
    return this.view.readUInt32BE(this.recvNames + i * SOCKADDR_IN + 4);
  }

  recvPort(i: number): number {
    return this.view.readUInt16BE(this.recvNames + i * SOCKADDR_IN + 2);
  }

  /**
   * Datagrams the kernel dropped at this socket since it was opened (receive buffer full,
   * bad checksum): the `drops` column of its line in /proc/self/net/udp, found by inode.
   */
  drops(): number {
    this.check();
    const inode = String(fstatSync(this.fd).ino);
    // Fields as udp4_format_sock (net/ipv4/udp.c) prints them: sl local rem st tx:rx tr:when
    // retrnsmt uid timeout inode ref pointer drops.
    for (const line of readFileSync('/proc/self/net/udp', 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[9] === inode) return Number(f[12]);
    }
    throw new Error(`UDP socket fd ${this.fd} (inode ${inode}) has no line in /proc/self/net/udp; is /proc mounted for this network namespace?`);
  }

  /** close(2) and free the native buffers; the slot views must not be used after this. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    cClose(this.fd);
    koffi.free(this.mem);
  }

  private check(): void {
    if (this.closed) throw new Error(`UdpSocket fd ${this.fd} is closed`);
  }

  private writeSockaddr(at: number, address: number, port: number): void {
    this.view.fill(0, at, at + SOCKADDR_IN);
    this.view.writeUInt16LE(AF_INET, at);
    this.view.writeUInt16BE(port, at + 2);
    this.view.writeUInt32BE(address, at + 4);
  }

  private setBuffer(opt: number, name: string, bytes: number): number {
    this.check();
    if (!Number.isInteger(bytes) || bytes < 1 || bytes > 0x7fff_ffff) throw new RangeError(`${name} must be an integer from 1 to 2^31-1 bytes, got ${bytes}`);
    const val = this.scratch + SOCKADDR_IN + 4, len = this.scratch + SOCKADDR_IN;
    this.view.writeInt32LE(bytes, val);
    if ((cSetsockopt(this.fd, SOL_SOCKET, opt, this.base + val, 4) as number) < 0) {
      throw new UdpSocketError('setsockopt', lastErrno(), `${name}=${bytes} on UDP socket fd ${this.fd}`);
    }
    this.view.writeUInt32LE(4, len);
    if ((cGetsockopt(this.fd, SOL_SOCKET, opt, this.base + val, this.base + len) as number) < 0) {
      throw new UdpSocketError('getsockopt', lastErrno(), `${name} on UDP socket fd ${this.fd}`);
    }
    return this.view.readInt32LE(val);
  }
}
