// The netpass frame cache: frames that reach the source after it stopped for switchover are
// kept, in arrival order, until the destination reports VM_STARTED; then they are forwarded
// through the migration channel (or, if the migration fails, delivered to the source's own
// guest). Bounded in frames and bytes; on overflow the newest frame is dropped and counted.
// With x-netpass-max-age-ms (switchover's variant, not in the series), a frame older than the
// limit when its turn to be forwarded comes is dropped and counted apart (`x-expired`).
// Follows "migration: Pass network packets received during switchover to dest VM" (the
// netpass series on qemu-devel), where a net filter holds the frames. Pure: no I/O, no timers.
import type { NetpassStats } from '../../lib/qmp-protocol.js';

/**
 * Defaults of the migration parameters `netpass-max-packets` and `netpass-max-bytes`
 * (lib/qmp-protocol.ts). 4 MiB holds ~2800 full-size frames; 8192 frames covers
 * ~0.8 s of a 10,000 packets/s stream of small frames.
 */
export const NETPASS_DEFAULTS = { maxPackets: 8192, maxBytes: 4 * 1024 * 1024 } as const;

export interface CachedFrame {
  frame: Buffer;
  /** When the source received it (the caller's clock, e.g. Date.now()). */
  tMs: number;
}

export interface NetpassLimits { maxPackets?: number; maxBytes?: number }

export class NetpassCache {
  readonly maxPackets: number;
  readonly maxBytes: number;
  private frames: CachedFrame[] = [];
  private head = 0;
  private bytes = 0;
  private cachedTotal = 0;
  private cachedBytesTotal = 0;
  private forwardedTotal = 0;
  private droppedTotal = 0;
  private expiredTotal = 0;

  constructor(limits: NetpassLimits = {}) {
    this.maxPackets = limits.maxPackets ?? NETPASS_DEFAULTS.maxPackets;
    this.maxBytes = limits.maxBytes ?? NETPASS_DEFAULTS.maxBytes;
    // 0 is allowed: every frame is dropped and counted (nothing is cached).
    if (!(Number.isInteger(this.maxPackets) && this.maxPackets >= 0)) {
      throw new Error(`Parameter 'netpass-max-packets' expects a non-negative integer (got ${this.maxPackets})`);
    }
    if (!(Number.isInteger(this.maxBytes) && this.maxBytes >= 0)) {
      throw new Error(`Parameter 'netpass-max-bytes' expects a non-negative integer (got ${this.maxBytes})`);
    }
  }

  /** Frames held now (cached and not yet drained or taken). */
  get held(): number { return this.frames.length - this.head; }
  /** Bytes held now. */
  get heldBytes(): number { return this.bytes; }

  /**
   * Copies and stores a frame. Returns false when it did not fit (the cache is full in
   * frames or bytes): it is dropped and counted, the frames already held stay.
   */
  push(frame: Uint8Array, tMs: number): boolean {
    if (this.held + 1 > this.maxPackets || this.bytes + frame.length > this.maxBytes) {
      this.droppedTotal++;
      return false;
    }
    this.frames.push({ frame: Buffer.from(frame), tMs });
    this.bytes += frame.length;
    this.cachedTotal++;
    this.cachedBytesTotal += frame.length;
    return true;
  }

  /**
   * Yields the held frames in arrival order, each counted as forwarded when it is yielded.
   * Frames pushed while draining are yielded too, so the source keeps caching until it
   * sends the end marker. With `maxAge`, a frame whose age at its turn (`now()` minus its
   * tMs) is above maxAge.ms is removed and counted as expired instead; one exactly at the
   * limit is forwarded.
   */
  *drain(maxAge?: { ms: number; now: () => number }): IterableIterator<CachedFrame> {
    while (this.head < this.frames.length) {
      const f = this.frames[this.head]!;
      this.frames[this.head++] = undefined as unknown as CachedFrame;
      this.bytes -= f.frame.length;
      this.compact();
      if (maxAge && maxAge.now() - f.tMs > maxAge.ms) { this.expiredTotal++; continue; }
      this.forwardedTotal++;
      yield f;
    }
  }

  /** Removes and returns every held frame, not counted as forwarded (the failure path). */
  takeAll(): CachedFrame[] {
    const out = this.frames.slice(this.head);
    this.frames = [];
    this.head = 0;
    this.bytes = 0;
    return out;
  }

  /**
   * The QMP `netpass` object of query-migrate: frames and bytes cached since the cache was
   * created (cumulative), frames forwarded, frames dropped on overflow; `x-expired` only
   * when the max-age variant expired some.
   */
  get stats(): NetpassStats {
    return {
      cached: this.cachedTotal, 'cached-bytes': this.cachedBytesTotal, forwarded: this.forwardedTotal, dropped: this.droppedTotal,
      ...(this.expiredTotal ? { 'x-expired': this.expiredTotal } : {}),
    };
  }

  private compact(): void {
    if (this.head === this.frames.length) { this.frames = []; this.head = 0; }
    else if (this.head > 1024 && this.head * 2 > this.frames.length) { this.frames = this.frames.slice(this.head); this.head = 0; }
  }
}
