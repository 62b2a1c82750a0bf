// The few libc calls Node does not expose, through koffi, and the one errno reading that all
// of lib/ uses: open(2), ioctl(2) with a pointer (TUNSETIFF, lib/tun.ts), setns(2) (a TAP in
// another netns), and a non-blocking read(2) for draining a TAP queue. fd-passing.ts (sendmsg,
// recvmsg) and udp-socket.ts (sendmmsg, recvmmsg) declare their calls on the same `libc`.
// Writes and close go through Node's own fs on the fd.
import koffi from 'koffi';

export const libc = koffi.load('libc.so.6');
const cOpen = libc.func('int open(const char *path, int flags, ...)');
const cIoctl = libc.func('int ioctl(int fd, unsigned long request, ...)');
const cSetns = libc.func('int setns(int fd, int nstype)');
const cStrerror = libc.func('const char *strerror(int errnum)');
// `void *`: koffi hands the Buffer's own memory to read(2), no copy (about 0.4 µs a call here).
const cRead = libc.func('long read(int fd, void *buf, unsigned long count)');

// asm-generic/fcntl.h, asm-generic/errno-base.h, linux/sched.h
export const O_RDONLY = 0;
export const O_RDWR = 0o2;
export const O_CLOEXEC = 0o2000000;
export const EINTR = 4;
export const EAGAIN = 11;
export const CLONE_NEWNET = 0x40000000;

/** The errno of the last failed libc call, as koffi saved it right after the call. */
export const lastErrno = (): number => koffi.errno();

/** strerror(3) text with the number, for error messages. */
export const errnoText = (e: number): string => `${cStrerror(e) as string} (errno ${e})`;

/** An Error carrying the errno name and message of the failed call, like Node's fs errors. */
export class LibcError extends Error {
  constructor(readonly call: string, readonly errno: number, what: string) {
    super(`${call} failed for ${what}: ${errnoText(errno)}`);
    this.name = 'LibcError';
  }
}

/** open(2); throws LibcError with errno on failure. */
export function open(path: string, flags: number): number {
  const fd = cOpen(path, flags, 'int', 0) as number;
  if (fd < 0) throw new LibcError('open', lastErrno(), path);
  return fd;
}

/** ioctl(2) with a pointer argument (the buffer is read and written by the kernel). */
export function ioctlPtr(fd: number, request: number, arg: Buffer, what: string): void {
  const rc = cIoctl(fd, request, 'uint8_t *', arg) as number;
  if (rc < 0) throw new LibcError('ioctl', lastErrno(), what);
}

/** setns(2): moves the calling thread into the namespace `fd` refers to. */
export function setns(fd: number, nstype: number, what: string): void {
  if ((cSetns(fd, nstype) as number) < 0) throw new LibcError('setns', lastErrno(), what);
}

/**
 * read(2) on a non-blocking fd into `buf`: the byte count, or -1 when nothing is there
 * (EAGAIN). Other errors throw LibcError.
 */
export function readNonBlocking(fd: number, buf: Buffer, what: string): number {
  for (;;) {
    const n = cRead(fd, buf, buf.length) as number;
    if (n >= 0) return n;
    const e = lastErrno();
    if (e === EAGAIN) return -1;
    if (e !== EINTR) throw new LibcError('read', e, what);
  }
}
