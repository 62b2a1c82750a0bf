// Frames a netpass variant keeps back on the destination until the forwarded backlog has been
// injected (issue 17; not in the series): x-netpass-order=backlog-first holds what the
// destination's own TAP delivers, x-netpass-trigger=first-tx holds the guest's frames from its
// first. ARP passes both (destination.ts). Bounded as QEMU's net queue is (net/queue.c: 10,000 packets), and in time: a source
// that never sends its end marker releases them after HOLD_MAX_MS, and the log says so.
//
// Release is paced like the netpass injection (destination.ts INJECT_SLICE_MS): a slice of at
// most 1 ms, then the event loop reads the TAP queues again. While frames are being released,
// new ones still queue behind them, so order holds; `onEmpty` runs when the hold has emptied
// after release, and the caller unhooks it then.
import type { HoldStats } from '../../lib/qmp-protocol.js';
import { ETHERTYPE_ARP } from '../../lib/net-addr.js';
import { NET_QUEUE_MAX } from '../guest/nic.js';

export type { HoldStats } from '../../lib/qmp-protocol.js';

/** ARP is not held (destination.ts says why). */
export const isArp = (buf: Buffer, len: number): boolean => len >= 14 && buf.readUInt16BE(12) === ETHERTYPE_ARP;

const HOLD_MAX_FRAMES = NET_QUEUE_MAX;
const HOLD_MAX_MS = 3000;
const RELEASE_SLICE_MS = 1;

export class FrameHold {
  private frames: Array<{ frame: Buffer; t: number }> = [];
  private head = 0;
  private releasing = false;
  private done = false;
  private timer: NodeJS.Timeout | undefined;
  private total = 0;
  private dropped = 0;
  private maxMs = 0;
  onEmpty: () => void = () => undefined;

  constructor(readonly what: string, private readonly deliver: (frame: Buffer) => void, timeout: () => void) {
    this.timer = setTimeout(() => {
      process.stderr.write(`switchover-vm: netpass: no end marker within ${HOLD_MAX_MS} ms; releasing the ${this.frames.length - this.head} ${what} frame(s) held\n`);
      timeout();
    }, HOLD_MAX_MS);
  }

  /** Keeps a copy of the frame (the caller reuses its buffer). */
  push(buf: Buffer, len: number): void {
    if (this.frames.length - this.head >= HOLD_MAX_FRAMES) { this.dropped++; return; }
    this.frames.push({ frame: Buffer.from(buf.subarray(0, len)), t: performance.now() });
    this.total++;
  }

  /** Frames held so far, dropped beyond the bound, and the longest any waited (ms). */
  get stats(): HoldStats {
    return { held: this.total, dropped: this.dropped, 'max-ms': Math.round(this.maxMs) };
  }

  /** Starts handing the frames on, oldest first (idempotent). */
  release(): void {
    if (this.releasing || this.done) return;
    clearTimeout(this.timer);
    if (this.dropped) process.stderr.write(`switchover-vm: netpass: dropped ${this.dropped} ${this.what} frame(s) beyond the hold bound of ${HOLD_MAX_FRAMES}\n`);
    this.releasing = true;
    this.slice();
  }

  /** The VM goes away: nothing more is delivered. */
  cancel(): void {
    clearTimeout(this.timer);
    this.done = true;
    this.frames = [];
    this.head = 0;
  }

  private slice(): void {
    if (this.done) return;
    const start = performance.now();
    let n = 0;
    while (this.head < this.frames.length) {
      const f = this.frames[this.head]!;
      this.frames[this.head++] = undefined as unknown as { frame: Buffer; t: number };
      const waited = performance.now() - f.t;
      if (waited > this.maxMs) this.maxMs = waited;
      this.deliver(f.frame);
      if ((++n & 15) === 0 && performance.now() - start >= RELEASE_SLICE_MS) break;
    }
    if (this.head < this.frames.length) { setImmediate(() => this.slice()); return; }
    this.frames = [];
    this.head = 0;
    this.done = true;
    this.onEmpty();
  }
}
