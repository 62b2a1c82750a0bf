// Passing open file descriptors over a UNIX socket (SCM_RIGHTS), which Node does not
// expose for stream sockets. One dummy byte carries one fd, as QEMU's qemu_file_put_fd /
// qemu_file_get_fd do for local migration, and as libvirt hands a TAP fd to QEMU before
// QMP `getfd` (monitor/fds.c). Used by the engine (TAP fds to the destination) and by the
// harness (TAP fds to a real QEMU); it knows nothing of either.
//
// QMP `getfd`: send the fd on the QMP socket with byte 0x20 (a space, which QEMU's JSON
// parser skips), then the `getfd` command; QEMU's chardev keeps the fd until the command
// claims it. This is what QEMU's python/qemu/qmp send_fd_scm does.
//
// Node sockets and SCM_RIGHTS: libuv reads a non-IPC stream with read(2), and a read(2)
// that consumes an fd-carrying byte makes the kernel close the fd. So the receiving side
// must stop its Node reader (stopReading) before such a byte can arrive, and the sending
// side must have flushed Node's write queue before sendFd. engine/migration/STREAM.md shows the
// handshake that guarantees both.
import { closeSync } from 'node:fs';
import type net from 'node:net';
import koffi from 'koffi';
import { EAGAIN, EINTR, errnoText, lastErrno, libc } from './libc.js';

const cSendmsg = libc.func('intptr_t sendmsg(int fd, void *msg, int flags)');
const cRecvmsg = libc.func('intptr_t recvmsg(int fd, void *msg, int flags)');

// x86_64 Linux ABI (bits/socket.h, asm-generic/socket.h).
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSG_CTRUNC = 0x8;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const MSG_CMSG_CLOEXEC = 0x40000000;
/** sizeof(struct cmsghdr): size_t cmsg_len, int cmsg_level, int cmsg_type. */
const CMSG_HDR = 16;
const cmsgSpace = (n: number): number => CMSG_HDR + ((n * 4 + 7) & ~7);
/** Room for this many fds on one received byte, so extras are seen and closed, not truncated. */
const RECV_MAX_FDS = 16;

const Iovec = koffi.struct('switchover_iovec', { iov_base: 'void *', iov_len: 'size_t' });
const Msghdr = koffi.struct('switchover_msghdr', {
  msg_name: 'void *', msg_namelen: 'uint32_t', msg_iov: 'void *', msg_iovlen: 'size_t',
  msg_control: 'void *', msg_controllen: 'size_t', msg_flags: 'int',
});

// Native buffers, allocated once: the calls below are synchronous, so they are never shared.
const CTRL_SIZE = cmsgSpace(RECV_MAX_FDS);
const byteMem = koffi.alloc('uint8_t', 1);
const ctrlMem = koffi.alloc('uint8_t', CTRL_SIZE);
const iovMem = koffi.alloc(Iovec, 1);
const msgMem = koffi.alloc(Msghdr, 1);
koffi.encode(iovMem, Iovec, { iov_base: byteMem, iov_len: 1 });

/** A failed fd-passing call, with the errno and the usual text. */
export class FdPassingError extends Error {
  constructor(message: string, readonly errno?: number) {
    super(message);
    this.name = 'FdPassingError';
  }
}


export interface WaitOptions {
  /** Give up after this long when the socket keeps returning EAGAIN. Default 5000 ms. */
  timeoutMs?: number;
}

const AGAIN = Symbol('EAGAIN');

/** Retries `attempt` while it reports EAGAIN/EINTR, sleeping 1, 2, 4 … 20 ms, up to timeoutMs. */
async function retrying<T>(what: string, opts: WaitOptions, attempt: () => T | typeof AGAIN): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 5000);
  let delay = 1;
  for (;;) {
    const r = attempt();
    if (r !== AGAIN) return r;
    if (Date.now() >= deadline) {
      throw new FdPassingError(`${what}: the socket was not ready within ${opts.timeoutMs ?? 5000} ms (EAGAIN); is the peer alive and reading?`, EAGAIN);
    }
    await new Promise((res) => setTimeout(res, delay));
    delay = Math.min(delay * 2, 20);
  }
}

function setMsg(controlLen: number): void {
  koffi.encode(msgMem, Msghdr, {
    msg_name: null, msg_namelen: 0, msg_iov: iovMem, msg_iovlen: 1,
    msg_control: ctrlMem, msg_controllen: controlLen, msg_flags: 0,
  });
}

/** One sendmsg(2) of one byte carrying `fd`; AGAIN when the socket is full. */
function sendOnce(sockFd: number, fd: number, byte: number): true | typeof AGAIN {
  koffi.encode(byteMem, 'uint8_t', byte & 0xff);
  koffi.encode(ctrlMem, 0, 'uint64_t', CMSG_HDR + 4);
  koffi.encode(ctrlMem, 8, 'int', SOL_SOCKET);
  koffi.encode(ctrlMem, 12, 'int', SCM_RIGHTS);
  koffi.encode(ctrlMem, CMSG_HDR, 'int', fd);
  setMsg(cmsgSpace(1));
  const n = Number(cSendmsg(sockFd, msgMem, MSG_DONTWAIT | MSG_NOSIGNAL));
  if (n === 1) return true;
  const e = lastErrno();
  if (n < 0 && (e === EAGAIN || e === EINTR)) return AGAIN;
  throw new FdPassingError(`sendmsg of fd ${fd} on socket fd ${sockFd} failed: ${n < 0 ? errnoText(e) : `wrote ${n} bytes`}`, n < 0 ? e : undefined);
}

/**
 * Sends one byte with `fd` attached (SCM_RIGHTS), as qemu_file_put_fd does. The fd stays
 * open here: the peer gets a new fd for the same open file description.
 */
export function sendFd(sockFd: number, fd: number, byte = 0, opts: WaitOptions = {}): Promise<void> {
  return retrying(`sending fd ${fd}`, opts, () => sendOnce(sockFd, fd, byte)).then(() => undefined);
}

/** Sends each fd as its own byte, in order (one per TAP queue in local migration). */
export async function sendFds(sockFd: number, fds: number[], opts: WaitOptions = {}): Promise<void> {
  for (const fd of fds) await sendFd(sockFd, fd, 0, opts);
}

export interface ReceivedFd {
  /** The data byte that carried the fd. */
  byte: number;
  /** The received fd (close-on-exec), or null when the byte carried none. */
  fd: number | null;
  /** Further fds that arrived on the same byte; already closed, reported so the caller can say so. */
  extraClosed: number;
  /** The kernel truncated the fd list (MSG_CTRUNC): some fds were dropped by the kernel. */
  truncated: boolean;
}

/**
 * Receives exactly one byte and the fds attached to it (MSG_CMSG_CLOEXEC). Keeps the first
 * fd, closes and counts any others. Waits (bounded) while no byte is there yet; a peer that
 * closed the socket is an error.
 */
export function recvFd(sockFd: number, opts: WaitOptions = {}): Promise<ReceivedFd> {
  return retrying('receiving an fd', opts, () => recvOnce(sockFd));
}

function recvOnce(sockFd: number): ReceivedFd | typeof AGAIN {
  setMsg(CTRL_SIZE);
  const n = Number(cRecvmsg(sockFd, msgMem, MSG_DONTWAIT | MSG_CMSG_CLOEXEC));
  if (n < 0) {
    const e = lastErrno();
    if (e === EAGAIN || e === EINTR) return AGAIN;
    throw new FdPassingError(`recvmsg on socket fd ${sockFd} failed: ${errnoText(e)}`, e);
  }
  if (n === 0) throw new FdPassingError(`peer closed socket fd ${sockFd} while an fd was expected`);
  const msg = koffi.decode(msgMem, Msghdr) as { msg_controllen: number | bigint; msg_flags: number };
  const controlLen = Number(msg.msg_controllen);
  const fds: number[] = [];
  // Walk the cmsg list (CMSG_FIRSTHDR / CMSG_NXTHDR).
  for (let off = 0; off + CMSG_HDR <= controlLen;) {
    const len = Number(koffi.decode(ctrlMem, off, 'uint64_t'));
    if (len < CMSG_HDR) break;
    const level = koffi.decode(ctrlMem, off + 8, 'int') as number;
    const type = koffi.decode(ctrlMem, off + 12, 'int') as number;
    if (level === SOL_SOCKET && type === SCM_RIGHTS) {
      for (let i = 0; i < (len - CMSG_HDR) / 4; i++) fds.push(koffi.decode(ctrlMem, off + CMSG_HDR + 4 * i, 'int') as number);
    }
    off += (len + 7) & ~7;
  }
  for (const extra of fds.slice(1)) closeFd(extra);
  return {
    byte: koffi.decode(byteMem, 'uint8_t') as number,
    fd: fds[0] ?? null,
    extraClosed: Math.max(0, fds.length - 1),
    truncated: (msg.msg_flags & MSG_CTRUNC) !== 0,
  };
}

export function closeFd(fd: number): void {
  closeSync(fd);
}

interface StreamHandle { fd?: number; reading?: boolean; readStop(): number; readStart(): number }

function handleOf(socket: net.Socket): StreamHandle {
  const h = (socket as unknown as { _handle: StreamHandle | null })._handle;
  if (!h) throw new FdPassingError('the socket has no handle (closed or not connected yet)');
  return h;
}

/** The OS fd of a connected Node socket (its libuv handle's fd). */
export function socketFd(socket: net.Socket): number {
  const fd = handleOf(socket).fd;
  if (typeof fd !== 'number' || fd < 0) throw new FdPassingError('the socket has no OS fd (closed, or not a UNIX/TCP stream socket)');
  return fd;
}

/** A socket whose Node-level `_read` can be shadowed on the instance. */
type ReadableSocket = net.Socket & { _read: (n: number) => void };

/**
 * Stops libuv reading the socket at once, and keeps it stopped. socket.pause() alone is
 * not enough: a paused Node stream still calls `_read` to fill its buffer, and net.Socket's
 * `_read` restarts the libuv reader, whose next read(2) would swallow fd-carrying bytes.
 * So `_read` is shadowed on this instance until startReading.
 */
export function stopReading(socket: net.Socket): void {
  socket.pause();
  (socket as ReadableSocket)._read = () => {};
  const h = handleOf(socket);
  if (h.reading !== false) {
    h.reading = false;
    const rc = h.readStop();
    if (rc) throw new FdPassingError(`cannot stop reading the socket (uv_read_stop returned ${rc})`);
  }
}

/**
 * Undoes stopReading. The libuv reader is restarted directly: Node's stream may still
 * count a read as pending from the stopped period and would then never restart it.
 */
export function startReading(socket: net.Socket): void {
  delete (socket as Partial<ReadableSocket>)._read;
  const h = handleOf(socket);
  if (!h.reading) {
    h.reading = true;
    const rc = h.readStart();
    if (rc) throw new FdPassingError(`cannot restart reading the socket (uv_read_start returned ${rc})`);
  }
  socket.resume();
}
