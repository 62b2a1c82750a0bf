// Guest RAM as 4 KiB pages: sparse (a zero page owns no memory), with a dirty bitmap that
// migration syncs once per pass, and a vCPU model that dirties pages at a set rate.
// Follows QEMU's RAM migration model: migration/ram.c (migration_bitmap_sync, the
// zero-page check of save_zero_page) and the dirty bitmap of system/physmem.c.
import { createHash } from 'node:crypto';

export const PAGE_SIZE = 4096;

/** A shared all-zero page returned by read() for pages that own no memory. Never write to it. */
export const ZERO_PAGE: Buffer = Buffer.alloc(PAGE_SIZE);

// Page buffers come from 1 MiB slabs so a guest with many non-zero pages is a few large
// allocations rather than one ArrayBuffer per page. Freed pages (written back to zero)
// return to a free list.
const SLAB_PAGES = 256;

/** Parses a QEMU `-m` size: plain number = MiB (QEMU's default suffix), or K/M/G/T suffix. */
export function parseRamSize(text: string): number {
  const m = /^(\d+)([KMGT]?)i?B?$/i.exec(text.trim());
  if (!m) throw new Error(`invalid memory size '${text}': use a number with an optional K, M, G or T suffix (e.g. 256M)`);
  const unit = { '': 2 ** 20, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G' | 'T'];
  const bytes = Number(m[1]) * unit;
  if (bytes < PAGE_SIZE || bytes % PAGE_SIZE !== 0) {
    throw new Error(`invalid memory size '${text}': must be a non-zero multiple of ${PAGE_SIZE} bytes`);
  }
  return bytes;
}

/** xorshift32: a small seeded PRNG so filled guests and dirtying are reproducible. */
export function xorshift32(seed: number): () => number {
  let s = (seed >>> 0) || 0x9e3779b9;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s;
  };
}

export class GuestRam {
  readonly size: number;
  readonly pageCount: number;
  private readonly pages = new Map<number, Buffer>();
  private readonly dirty: Uint32Array;
  private dirtyPages = 0;
  private readonly free: Buffer[] = [];

  constructor(sizeBytes: number) {
    if (!Number.isInteger(sizeBytes) || sizeBytes < PAGE_SIZE || sizeBytes % PAGE_SIZE !== 0) {
      throw new Error(`guest RAM size ${sizeBytes} is not a non-zero multiple of ${PAGE_SIZE} bytes`);
    }
    this.size = sizeBytes;
    this.pageCount = sizeBytes / PAGE_SIZE;
    this.dirty = new Uint32Array(Math.ceil(this.pageCount / 32));
  }

  /** Pages that own memory (non-zero content). */
  get nonZeroPages(): number { return this.pages.size; }

  /** Pages marked dirty since the last syncDirty(). */
  get dirtyCount(): number { return this.dirtyPages; }

  /** The page's content; the shared ZERO_PAGE for a zero page. Read-only: use write() to change it. */
  read(page: number): Buffer {
    this.check(page);
    return this.pages.get(page) ?? ZERO_PAGE;
  }

  isZero(page: number): boolean {
    this.check(page);
    return !this.pages.has(page);
  }

  /** Replaces a whole page and marks it dirty. An all-zero page releases its memory. */
  write(page: number, data: Uint8Array): void {
    this.check(page);
    if (data.length !== PAGE_SIZE) throw new Error(`page write of ${data.length} bytes: a page is ${PAGE_SIZE} bytes`);
    const zero = ZERO_PAGE.equals(data);
    const cur = this.pages.get(page);
    if (zero) {
      if (cur) { this.pages.delete(page); cur.fill(0); this.free.push(cur); }
    } else {
      (cur ?? this.allocate(page)).set(data);
    }
    this.markDirty(page);
  }

  /** Writes bytes inside a page (what a vCPU store does) and marks it dirty. */
  writeAt(page: number, offset: number, data: Uint8Array): void {
    this.check(page);
    if (offset < 0 || offset + data.length > PAGE_SIZE) {
      throw new Error(`write of ${data.length} bytes at offset ${offset} crosses the end of page ${page}`);
    }
    const buf = this.pages.get(page) ?? this.allocate(page);
    buf.set(data, offset);
    if (ZERO_PAGE.equals(buf)) { this.pages.delete(page); this.free.push(buf); }
    this.markDirty(page);
  }

  /** Makes a page zero (a zero-page marker on the destination) without marking it dirty. */
  clear(page: number): void {
    this.check(page);
    const cur = this.pages.get(page);
    if (cur) { this.pages.delete(page); cur.fill(0); this.free.push(cur); }
  }

  markDirty(page: number): void {
    const w = page >>> 5, bit = 1 << (page & 31);
    if ((this.dirty[w]! & bit) === 0) { this.dirty[w]! |= bit; this.dirtyPages++; }
  }

  /** Marks every page dirty: the state at the start of migration (QEMU's ram_list_init_bitmaps). */
  markAllDirty(): void {
    this.dirty.fill(0xffffffff);
    const tail = this.pageCount & 31;
    if (tail) this.dirty[this.dirty.length - 1] = (2 ** tail - 1) >>> 0;
    this.dirtyPages = this.pageCount;
  }

  /**
   * Returns the dirty pages in ascending order and clears the bitmap, as QEMU's
   * migration_bitmap_sync hands the dirty log to the migration thread.
   */
  syncDirty(): Uint32Array {
    const out = new Uint32Array(this.dirtyPages);
    let n = 0;
    for (let w = 0; w < this.dirty.length; w++) {
      let word = this.dirty[w]!;
      if (word === 0) continue;
      this.dirty[w] = 0;
      while (word !== 0) {
        const low = word & -word;
        out[n++] = w * 32 + (31 - Math.clz32(low));
        word = (word ^ low) >>> 0;
      }
    }
    this.dirtyPages = 0;
    return n === out.length ? out : out.subarray(0, n);
  }

  /**
   * Makes round(fraction * pageCount) pages non-zero with pseudo-random content, chosen
   * and filled from `seed`, so a test or benchmark gets a reproducible guest.
   */
  fill(fraction: number, seed = 1): void {
    if (!(fraction >= 0 && fraction <= 1)) throw new Error(`fill fraction ${fraction} is not in [0, 1]`);
    const want = Math.round(fraction * this.pageCount);
    const rand = xorshift32(seed);
    // Spread the pages evenly with a seeded offset inside each stride.
    const stride = want ? this.pageCount / want : 0;
    const page = Buffer.alloc(PAGE_SIZE);
    const words = new Uint32Array(page.buffer, page.byteOffset, PAGE_SIZE / 4);
    for (let i = 0; i < want; i++) {
      const p = Math.min(this.pageCount - 1, Math.floor(i * stride + (rand() / 2 ** 32) * (stride - 1)));
      for (let k = 0; k < words.length; k++) words[k] = rand();
      words[0] = (p + 1) >>> 0; // never all zero
      this.write(p, page);
    }
  }

  /** sha256 over (size, then index and content of each non-zero page in index order). */
  digest(): string {
    const h = createHash('sha256');
    const head = Buffer.alloc(8);
    head.writeBigUInt64LE(BigInt(this.size));
    h.update(head);
    const idx = Buffer.alloc(4);
    for (const p of [...this.pages.keys()].sort((a, b) => a - b)) {
      idx.writeUInt32LE(p);
      h.update(idx);
      h.update(this.pages.get(p)!);
    }
    return h.digest('hex');
  }

  private allocate(page: number): Buffer {
    let buf = this.free.pop();
    if (!buf) {
      const slab = Buffer.alloc(SLAB_PAGES * PAGE_SIZE);
      for (let i = SLAB_PAGES - 1; i > 0; i--) this.free.push(slab.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
      buf = slab.subarray(0, PAGE_SIZE);
    }
    this.pages.set(page, buf);
    return buf;
  }

  private check(page: number): void {
    if (!(page >= 0 && page < this.pageCount && Number.isInteger(page))) {
      throw new Error(`page ${page} is outside guest RAM (0..${this.pageCount - 1})`);
    }
  }
}

export interface VcpuOptions {
  /** Pages dirtied per second while running (the engine's `-guest dirty-rate=`). */
  dirtyRate: number;
  seed?: number;
  /** Timer tick; each tick does the work of the time that really passed. Default 10 ms. */
  tickMs?: number;
  /**
   * Pages the guest writes to, counted from page 0. A real workload dirties a working set,
   * and bounding it keeps a sparse guest sparse. Default: min(pageCount, 32768) (128 MiB).
   */
  workingSetPages?: number;
}

/**
 * The vCPU as migration sees it: while running it stores to pseudo-random pages of its
 * working set at `dirtyRate` pages/s (a 16-byte store per page at a pseudo-random offset),
 * which sets their dirty bits. Catch-up after a late tick is capped at 10 ticks of work.
 */
export class VcpuModel {
  readonly dirtyRate: number;
  private readonly ram: GuestRam;
  private readonly rand: () => number;
  private readonly tickMs: number;
  private readonly workingSet: number;
  private timer: NodeJS.Timeout | undefined;
  private last = 0;
  private carry = 0;
  private counter = 0;
  private readonly store = Buffer.alloc(16);
  /** Total page stores since creation. */
  written = 0;

  constructor(ram: GuestRam, opts: VcpuOptions) {
    if (!(opts.dirtyRate >= 0 && Number.isFinite(opts.dirtyRate))) throw new Error(`dirty rate ${opts.dirtyRate} is not a finite number >= 0`);
    this.ram = ram;
    this.dirtyRate = opts.dirtyRate;
    this.rand = xorshift32(opts.seed ?? 0x5eed);
    this.tickMs = opts.tickMs ?? 10;
    this.workingSet = Math.max(1, Math.min(ram.pageCount, opts.workingSetPages ?? 32768));
  }

  get running(): boolean { return this.timer !== undefined; }

  start(): void {
    if (this.timer || this.dirtyRate === 0) return;
    this.last = performance.now();
    this.carry = 0;
    this.timer = setInterval(() => this.tick(), this.tickMs);
    this.timer.unref();
  }

  /** Stops at once: no store happens after stop() returns (the switchover stop point). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Dirties `n` pages now; the tick uses it, tests call it directly. */
  dirtyPages(n: number): void {
    for (let i = 0; i < n; i++) {
      const page = this.rand() % this.workingSet;
      this.store.writeUInt32LE(++this.counter >>> 0, 0);
      this.store.writeUInt32LE(this.rand(), 4);
      this.store.writeUInt32LE(this.rand(), 8);
      this.store.writeUInt32LE((this.rand() | 1) >>> 0, 12);
      this.ram.writeAt(page, (this.rand() % (PAGE_SIZE / 16)) * 16, this.store);
    }
    this.written += n;
  }

  private tick(): void {
    const now = performance.now();
    const due = Math.min((now - this.last) / 1000, (10 * this.tickMs) / 1000) * this.dirtyRate + this.carry;
    this.last = now;
    const n = Math.floor(due);
    this.carry = due - n;
    this.dirtyPages(n);
  }
}
