// A TAP queue: one file descriptor attached to a TAP interface, read through libuv's epoll
// and written with one write(2) per frame, as QEMU's net/tap.c does (tap_send/tap_write_packet).
//
// Reading: the fd is wrapped in a libuv pipe handle so readiness arrives on the event loop
// without the threadpool or polling. A TAP read(2) returns exactly one frame, and libuv stops
// reading after such a short read, so one `onread` callback alone would give one frame per
// loop turn. Each callback therefore drains the queue with non-blocking reads until EAGAIN,
// bounded, as QEMU's tap_send (net/tap.c) does. pause() stops reading (uv_read_stop): frames
// then queue in the kernel, which is what happens while a QEMU guest is paused.
// Writing: fs.writeSync on the fd, never the socket's writable side, which may coalesce
// several frames into one writev(2) and so one frame on the wire.
import { writeSync } from 'node:fs';
import net from 'node:net';
import { readNonBlocking } from '../../lib/libc.js';
import { openTap } from '../../lib/tun.js';

/** Frames read per readiness event, at most (the first by libuv, the rest here): about 1 ms of
 * guest work, so timers, QMP and the other queues get their turn. */
export const TAP_BURST = 64;

/** Called once per received frame. `buf` is reused after the call: copy what you keep. */
export type FrameHandler = (buf: Buffer, len: number) => void;

interface PipeHandle { open(fd: number): number }
const { Pipe, constants: pipeConstants } = (process as unknown as {
  binding(name: 'pipe_wrap'): { Pipe: new (type: number) => PipeHandle; constants: { SOCKET: number } };
}).binding('pipe_wrap');

function pipeFromFd(fd: number): PipeHandle {
  const h = new Pipe(pipeConstants.SOCKET);
  const rc = h.open(fd);
  if (rc !== 0) throw new Error(`cannot watch TAP fd ${fd} with libuv (uv_pipe_open returned ${rc})`);
  return h;
}

export class TapQueue {
  private readonly sock: net.Socket;
  private handler: FrameHandler | null = null;
  private reading = false;
  private closed = false;
  /** Frames that write(2) refused (EAGAIN: the kernel queue toward the host is full). */
  txDropped = 0;
  /** Frames read by the drain after libuv's one read per event (tests check bursts happen). */
  drained = 0;

  /** Wrap an fd that is already attached to a TAP (opened by name with lib/tun.ts, passed on the command line, or received over SCM_RIGHTS). */
  constructor(readonly fd: number) {
    const rx = Buffer.allocUnsafe(65536);
    this.sock = new net.Socket({
      handle: pipeFromFd(fd),
      onread: {
        buffer: rx,
        callback: (nread: number, buf: Buffer) => {
          if (nread > 0 && this.handler) {
            this.handler(buf, nread);
            this.drain(rx);
          }
          return this.reading;
        },
      },
    } as unknown as net.SocketConstructorOpts);
    // Reading starts only when start() is called; the socket must not flow on its own.
    this.sock.pause();
    this.sock.on('error', () => { /* a TAP read error (e.g. interface deleted) ends reading; nothing to recover */ });
  }

  /** The frames after the one libuv read, until the queue is empty or the burst is used. */
  private drain(rx: Buffer): void {
    for (let i = 1; i < TAP_BURST && this.reading && this.handler; i++) {
      let n: number;
      try {
        n = readNonBlocking(this.fd, rx, 'TAP queue');
      } catch {
        return; // the interface went away: libuv's next read reports it and reading ends
      }
      if (n <= 0) return;
      this.drained++;
      this.handler(rx, n);
    }
  }

  static open(ifname: string, multiQueue: boolean): TapQueue {
    return new TapQueue(openTap(ifname, { multiQueue }));
  }

  /** Deliver frames to `handler` from now on (and resume reading). */
  start(handler: FrameHandler): void {
    this.handler = handler;
    this.resume();
  }

  /** Stop reading: the kernel queues frames until resume(). */
  pause(): void {
    if (!this.reading) return;
    this.reading = false;
    this.sock.pause();
  }

  resume(): void {
    if (this.reading || this.closed) return;
    this.reading = true;
    this.sock.resume();
  }

  get isReading(): boolean { return this.reading; }

  /** Send one frame to the host side of the TAP; false when the kernel refused it. */
  write(frame: Buffer, len = frame.length): boolean {
    if (this.closed) return false;
    try {
      writeSync(this.fd, frame, 0, len);
      return true;
    } catch {
      this.txDropped++;
      return false;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.reading = false;
    this.sock.destroy();
  }
}
