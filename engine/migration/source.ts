// The source side of a live migration (QEMU's migration/migration.c and ram.c): precopy
// passes under max-bandwidth until the remaining bytes fit downtime-limit, stop-and-copy,
// local TAP fds, device state, EOF, the return path, netpass forwarding, and the cleanup
// that restarts the guest after a failure. The overview is in migration.ts.
import { sendFds, socketFd } from '../../lib/fd-passing.js';
import type { Migration } from './migration.js';
import { MigrationChannel } from './channel.js';
import { StreamEncoder, type DeviceState } from './stream.js';
import { NetpassCache } from './netpass.js';
import type { MigrationInfo, MigrationStatus } from '../../lib/qmp-protocol.js';
import { PAGE_SIZE } from '../guest/ram.js';
import { parseMac } from '../../lib/net-addr.js';
import { ReturnPathReader } from './return-path.js';
import type { Vm } from '../vm.js';

/** Bandwidth-measurement window (QEMU's BUFFER_DELAY). */
const WINDOW_MS = 100;
/** Bytes encoded before handing them to the channel. */
const CHUNK_BYTES = 1024 * 1024;
/**
 * Longest run of RAM encoding or netpass forwarding before the event loop gets a turn. QEMU
 * copies RAM on its own migration thread while the vCPUs and the NIC run; here they share one
 * event loop, and a TAP queue (txqueuelen 1000 here: 50 ms at 20,000 frames/s, read it with
 * `ip link`) overflows if the NIC is not read for long.
 */
const SLICE_MS = 1;
/**
 * After VM_STARTED the source keeps forwarding until its TAP has been quiet this long: frames
 * the bridge sent before the destination's announce moved the MAC may still sit in the kernel
 * queue of the source TAP, not yet read.
 */
const NETPASS_QUIET_MS = 50;
/** ...but not longer than this after VM_STARTED (broadcasts keep reaching the old port). */
const NETPASS_MAX_TAIL_MS = 1000;
/**
 * x-netpass-trigger=first-tx: a destination guest that transmits nothing within this long of
 * VM_STARTED (a guest that only receives) still gets the cache, later; the source says so.
 */
const NETPASS_FIRST_TX_WAIT_MS = 1000;
/** Ping id of the section the source sends after the device state: its PONG means "all state received". */
const FINAL_PING_ID = 0xffffffff;

/** One event-loop turn: pending I/O (the TAP queues, QMP) runs before the caller goes on. */
const yieldToLoop = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));

class Cancelled extends Error {
  constructor() { super('migration cancelled'); this.name = 'Cancelled'; }
}

function deviceState(vm: Vm): DeviceState {
  const g = vm.guest.save();
  return {
    nic: { mac: vm.guest.macText, rxEnabled: true, queues: vm.nic?.netdev.queues.length ?? 1 },
    guest: {
      ip: g.ip ?? '', prefixLength: g.prefix,
      arpCache: g.arp.map(([ip, mac]) => ({ ip, mac })),
      udp: [vm.guest.echo.info(), vm.guest.sink.info()],
      extra: { net: g },
    },
  };
}

export class MigrationSource {
  status: MigrationStatus = 'none';
  private readonly startTime = performance.now();
  private setupTime = 0;
  private endTime = 0;
  private stopTime = 0;
  private downtime: number | undefined;
  private expectedDowntime = 0;
  private errorDesc: string | undefined;
  private channel: MigrationChannel | null = null;
  private cancelled = false;
  private stoppedGuest = false;
  private readonly enc = new StreamEncoder();
  // RAM statistics (query-migrate `ram`).
  private duplicate = 0;
  private normal = 0;
  private passes = 0;
  private pagesLeftInPass = 0;
  private dirtyPagesRate = 0;
  private lastSyncTime = performance.now();
  private bandwidth = 0; // bytes per ms, last complete window
  private pagesPerSecond = 0;
  private windowStart = 0;
  private windowBytes = 0;
  private windowPages = 0;
  private limit = 0;
  private limitStart = 0;
  private limitBytes = 0;
  private unpause: ((ok: boolean) => void) | null = null;
  private pongWaiter: ((id: number) => void) | null = null;
  private rpFailure: Error | null = null;
  private failureWaiters: Array<(e: Error) => void> = [];
  /** Frames received after the stop, with the netpass capability. */
  private netpass: NetpassCache | null = null;
  private netpassSending = false;
  /** Resolves when netpass forwarding ended (end marker sent, or it failed). */
  private netpassEnded: Promise<void> = Promise.resolve();
  private endNetpass: () => void = () => undefined;
  private netpassLastFrame = 0;
  private netpassGoTimer: NodeJS.Timeout | undefined;
  private fdsReadyWaiter: ((count: number) => void) | null = null;

  constructor(private readonly mig: Migration) {}

  private get vm(): Vm { return this.mig.vm; }

  private setStatus(s: MigrationStatus): void {
    this.status = s;
    this.mig.statusEvent(s);
  }

  info(): MigrationInfo {
    const now = performance.now();
    const info: MigrationInfo = { status: this.status };
    if (this.status === 'setup') return info;
    info['setup-time'] = Math.round(this.setupTime);
    const ended = this.status === 'completed' || this.status === 'failed' || this.status === 'cancelled';
    info['total-time'] = Math.round((ended ? this.endTime : now) - this.startTime);
    if (this.status === 'completed' && this.downtime !== undefined) info.downtime = Math.round(this.downtime);
    const remainingPages = this.status === 'completed' ? 0 : this.pagesLeftInPass + this.vm.ram.dirtyCount;
    if (this.status === 'active') {
      // What stopping now would cost at the measured bandwidth (QEMU's expected_downtime).
      info['expected-downtime'] = this.bandwidth > 0 ? Math.round((remainingPages * PAGE_SIZE) / this.bandwidth) : Math.round(this.expectedDowntime);
    }
    const transferred = this.channel?.bytesSent ?? 0;
    info.ram = {
      total: this.vm.ram.size, transferred, remaining: remainingPages * PAGE_SIZE,
      duplicate: this.duplicate, normal: this.normal, 'normal-bytes': this.normal * PAGE_SIZE,
      'dirty-sync-count': this.passes, 'dirty-pages-rate': Math.round(this.dirtyPagesRate),
      mbps: Math.round(((this.bandwidth * 1000 * 8) / 1e6) * 1000) / 1000,
      'pages-per-second': Math.round(this.pagesPerSecond),
    };
    if (this.netpass) info.netpass = this.netpass.stats;
    if (this.errorDesc) info['error-desc'] = this.errorDesc;
    return info;
  }

  /** migrate_cancel: cancelling, then cancelled once the channel is torn down. */
  cancel(): void {
    if (this.status === 'completed' || this.status === 'failed' || this.status === 'cancelled' || this.status === 'cancelling' || this.status === 'none') return;
    this.cancelled = true;
    this.setStatus('cancelling');
    this.unpause?.(false);
    this.channel?.destroy();
    this.failAll(new Cancelled());
  }

  /** migrate-continue from pre-switchover. */
  continueFromPause(): void {
    this.unpause?.(true);
  }

  async run(uri: string): Promise<void> {
    this.setStatus('setup');
    try {
      this.channel = await MigrationChannel.connect(uri);
      if (this.cancelled) { this.channel.destroy(); throw new Cancelled(); }
      const ch = this.channel;
      ch.onClose(() => this.failAll(ch.error ?? new Error('migration channel closed')));
      const returnPath = this.mig.cap('return-path');
      const nic = this.vm.nic;
      // Both the parameter and the device property, as in the series; the URI was checked by `migrate`.
      const local = this.mig.params.local && !!nic?.config.localMigration && uri.startsWith('unix:');
      // FDS_READY comes back on the return path, so local migration reads it even without the capability.
      if (returnPath || local) this.readReturnPath(ch);
      const ram = this.vm.ram;
      const netpass = returnPath && this.mig.cap('netpass') && !local;
      const p = this.mig.params;
      this.enc.header({
        ramSize: ram.size, local, netpass, returnPath, queues: nic?.netdev.queues.length ?? 1,
        netpassTrigger: p['x-netpass-trigger'], netpassOrder: p['x-netpass-order'],
      });
      await this.send(this.enc.flush(), false);
      this.setupTime = performance.now() - this.startTime;
      this.setStatus('active');
      ram.markAllDirty();
      this.windowStart = performance.now();
      for (;;) {
        await this.pass(true);
        const remaining = ram.dirtyCount * PAGE_SIZE;
        const bw = this.bandwidth > 0 ? this.bandwidth : Infinity;
        this.expectedDowntime = remaining / bw;
        if (this.expectedDowntime <= this.mig.params['downtime-limit']) break;
      }
      await this.complete(returnPath, netpass, local);
    } catch (e) {
      this.fail(e as Error);
    }
  }

  /** Stop-and-copy: stop the guest, last pass, device state, EOF; completed. */
  private async complete(returnPath: boolean, netpass: boolean, local: boolean): Promise<void> {
    // Only a guest that migration itself stopped is restarted on failure (migrate_fd_cleanup).
    this.stoppedGuest = this.vm.running;
    this.vm.stopTo('finish-migrate');
    this.stopTime = performance.now();
    if (netpass) this.startNetpass();
    if (this.mig.cap('pause-before-switchover')) {
      this.setStatus('pre-switchover');
      // As QEMU's migration_maybe_pause: only migrate-continue or cancel end the wait; a
      // channel that failed meanwhile fails the next write, in `device`.
      const go = await new Promise<boolean>((resolve) => { this.unpause = resolve; });
      this.unpause = null;
      if (!go) throw new Cancelled();
      this.setStatus('device');
    }
    await this.pass(false);
    if (local) await this.passTapFds();
    this.enc.device(deviceState(this.vm));
    this.enc.ping(FINAL_PING_ID);
    this.enc.eof();
    await this.send(this.enc.flush(), false);
    await this.waitChannel(this.channel!.flushed());
    if (returnPath) {
      // The destination has every section when it answers the final ping.
      await this.waitChannel(new Promise<void>((resolve) => {
        this.pongWaiter = (id) => { if (id === FINAL_PING_ID) { this.pongWaiter = null; resolve(); } };
      }));
    }
    this.endTime = performance.now();
    // Classic downtime (QEMU's migration_completion); replaced by VM_STARTED when it arrives.
    this.downtime ??= this.endTime - this.stopTime;
    this.vm.setRunState('postmigrate');
    this.setStatus('completed');
    this.failureWaiters = [];
    if (!returnPath) this.channel!.socket.end();
  }

  /** tap-local section, FDS_READY from the destination, the fds (one byte each), fds-sent. */
  private async passTapFds(): Promise<void> {
    const queues = this.vm.nic!.netdev.queues;
    this.enc.tapLocal(queues.map(() => ({ vnetHdr: false, offloadFlags: 0, enabled: true, vnetHdrLen: 0 })));
    const ready = new Promise<number>((resolve) => { this.fdsReadyWaiter = resolve; });
    await this.send(this.enc.flush(), false);
    // Node's write queue must be empty before an fd-carrying byte goes out (fd-passing.ts).
    await this.waitChannel(this.channel!.flushed());
    const count = await this.waitChannel(ready);
    this.fdsReadyWaiter = null;
    if (count !== queues.length) throw new Error(`the destination is ready for ${count} TAP fd(s), this NIC has ${queues.length} queue(s)`);
    await this.waitChannel(sendFds(socketFd(this.channel!.socket), queues.map((q) => q.fd)));
    this.enc.fdsSent(queues.length);
  }

  /** One RAM pass: sync the dirty bitmap, send those pages (rate-limited during precopy). */
  private async pass(limited: boolean): Promise<void> {
    const ram = this.vm.ram;
    const now = performance.now();
    const pages = ram.syncDirty();
    const sinceSync = (now - this.lastSyncTime) / 1000;
    if (this.passes > 0 && sinceSync > 0) this.dirtyPagesRate = pages.length / sinceSync;
    this.lastSyncTime = now;
    const pass = ++this.passes;
    if (this.mig.cap('events')) this.mig.emit('MIGRATION_PASS', { pass });
    this.enc.passStart(pass);
    this.pagesLeftInPass = pages.length;
    // Under a bandwidth limit, writes of a tenth of a second's allowance keep the rate smooth.
    const limit = this.mig.params['max-bandwidth'];
    const chunk = limited && limit > 0 ? Math.max(64 * 1024, Math.min(CHUNK_BYTES, limit / 10)) : CHUNK_BYTES;
    let lastYield = performance.now();
    for (let i = 0; i < pages.length; i++) {
      if ((i & 63) === 0 && performance.now() - lastYield > SLICE_MS) {
        await yieldToLoop();
        lastYield = performance.now();
      }
      const p = pages[i]!;
      if (ram.isZero(p)) { this.enc.zeroPage(p); this.duplicate++; }
      else { this.enc.page(p, ram.read(p)); this.normal++; }
      this.windowPages++;
      if (this.enc.pending >= chunk) {
        this.pagesLeftInPass = pages.length - i - 1;
        await this.send(this.enc.flush(), limited);
      }
    }
    this.pagesLeftInPass = 0;
    this.enc.passEnd(pass, pages.length);
    await this.send(this.enc.flush(), limited);
  }

  /** Hands bytes to the channel; honours max-bandwidth per 100 ms window and measures bandwidth. */
  private async send(buf: Buffer, limited: boolean): Promise<void> {
    if (this.cancelled) throw new Cancelled();
    if (buf.length) await this.waitChannel(this.channel!.send(buf));
    this.windowBytes += buf.length;
    const limit = this.mig.params['max-bandwidth'];
    let now = performance.now();
    if (limited && limit > 0) {
      // Average rate since the limit took effect (a change of max-bandwidth restarts it).
      if (limit !== this.limit) { this.limit = limit; this.limitStart = now; this.limitBytes = 0; }
      this.limitBytes += buf.length;
      const wait = this.limitStart + (this.limitBytes / limit) * 1000 - now;
      if (wait > 0) await this.waitChannel(new Promise<void>((r) => setTimeout(r, wait)));
      now = performance.now();
    } else if (!limited) {
      this.limit = 0;
    }
    const elapsed = now - this.windowStart;
    if (elapsed >= WINDOW_MS) {
      this.bandwidth = this.windowBytes / elapsed;
      this.pagesPerSecond = (this.windowPages * 1000) / elapsed;
      this.windowStart = now;
      this.windowBytes = 0;
      this.windowPages = 0;
    } else if (this.bandwidth === 0 && elapsed > 0 && this.windowBytes > 0) {
      // Before the first full window, the best estimate is what was seen so far.
      this.bandwidth = this.windowBytes / elapsed;
    }
    if (this.cancelled) throw new Cancelled();
  }

  /** Races `p` against a channel failure, a return-path FAIL or cancel. */
  private waitChannel<T>(p: Promise<T>): Promise<T> {
    if (this.rpFailure) {
      p.catch(() => undefined); // `p` may reject too (a send on the closed channel): not unhandled
      return Promise.reject(this.rpFailure);
    }
    return new Promise<T>((resolve, reject) => {
      const onFail = (e: Error): void => reject(e);
      this.failureWaiters.push(onFail);
      p.then((v) => { this.dropWaiter(onFail); resolve(v); }, (e: Error) => { this.dropWaiter(onFail); reject(e); });
    });
  }

  private dropWaiter(w: (e: Error) => void): void {
    const i = this.failureWaiters.indexOf(w);
    if (i >= 0) this.failureWaiters.splice(i, 1);
  }

  private failAll(e: Error): void {
    this.rpFailure ??= e;
    for (const w of this.failureWaiters.splice(0)) w(e);
  }

  private readReturnPath(ch: MigrationChannel): void {
    new ReturnPathReader(ch, {
      shut: () => ch.socket.end(),
      pong: (id) => this.pongWaiter?.(id),
      vmStarted: () => {
        if (this.stopTime) this.downtime = performance.now() - this.stopTime;
        if (!this.netpass) return;
        if (this.mig.params['x-netpass-trigger'] === 'vm-started') { void this.forwardNetpass(); return; }
        this.netpassGoTimer = setTimeout(() => {
          process.stderr.write(`switchover-vm: netpass: the destination guest sent nothing within ${NETPASS_FIRST_TX_WAIT_MS} ms of VM_STARTED (x-netpass-trigger=first-tx); forwarding the cache now\n`);
          void this.forwardNetpass();
        }, NETPASS_FIRST_TX_WAIT_MS);
      },
      netpassGo: () => {
        if (!this.netpass || this.mig.params['x-netpass-trigger'] !== 'first-tx') {
          this.failAll(new Error('the destination sent NETPASS_GO but this source does not wait for it (x-netpass-trigger is not first-tx)'));
          return;
        }
        void this.forwardNetpass();
      },
      fdsReady: (count) => {
        if (this.fdsReadyWaiter) this.fdsReadyWaiter(count);
        else this.failAll(new Error('the destination asked for TAP fds at a point where none are due'));
      },
      fail: (reason) => this.failAll(new Error(`destination failed to load the migration: ${reason}`)),
      invalid: (err) => this.failAll(new Error(`invalid return-path message: ${err.message}`, { cause: err })),
    });
  }

  /** The guest has stopped: keep reading the TAP, into the cache instead of the guest. */
  private startNetpass(): void {
    const nic = this.vm.nic;
    if (!nic) return;
    const cache = new NetpassCache({ maxPackets: this.mig.params['netpass-max-packets'], maxBytes: this.mig.params['netpass-max-bytes'] });
    this.netpass = cache;
    this.netpassEnded = new Promise<void>((resolve) => { this.endNetpass = resolve; });
    const ownMac = parseMac(nic.mac);
    nic.rxHook = (buf, len) => {
      // The destination's announces (from this NIC's MAC) flood back here through the bridge:
      // cached like any frame, as the series' filter would, but they are not traffic still
      // arriving, so they do not hold the end of forwarding back (NETPASS_QUIET_MS).
      if (len < 12 || buf.compare(ownMac, 0, 6, 6, 12) !== 0) this.netpassLastFrame = performance.now();
      cache.push(buf.subarray(0, len), Date.now());
    };
    nic.startRx();
  }

  /**
   * VM_STARTED: stream the cached frames in arrival order, and those that still arrive, until
   * the TAP is quiet; then the end marker, and the source NIC stops reading (postmigrate).
   */
  private async forwardNetpass(): Promise<void> {
    const cache = this.netpass!;
    if (this.netpassSending) return;
    this.netpassSending = true;
    clearTimeout(this.netpassGoTimer);
    const maxAgeMs = this.mig.params['x-netpass-max-age-ms'];
    const maxAge = maxAgeMs > 0 ? { ms: maxAgeMs, now: Date.now } : undefined;
    let sent = 0;
    const started = performance.now();
    try {
      for (;;) {
        // One slice: encode for at most SLICE_MS, hand it to the channel (which waits while
        // the socket is full), then let the event loop read the TAP queues before the next.
        const sliceStart = performance.now();
        for (const f of cache.drain(maxAge)) {
          this.enc.netpassFrame(f.tMs, f.frame);
          sent++;
          if ((sent & 31) === 0 && performance.now() - sliceStart >= SLICE_MS) break;
        }
        if (this.enc.pending) await this.waitChannel(this.channel!.send(this.enc.flush()));
        if (cache.held > 0) { await yieldToLoop(); continue; }
        const now = performance.now();
        if (now - Math.max(this.netpassLastFrame, started) >= NETPASS_QUIET_MS || now - started >= NETPASS_MAX_TAIL_MS) break;
        await this.waitChannel(new Promise<void>((r) => setTimeout(r, 5)));
      }
      // Nothing is awaited between the last look at the cache and the end marker.
      this.stopNetpassRx();
      this.enc.netpassEnd(sent, cache.stats.dropped);
      await this.waitChannel(this.channel!.send(this.enc.flush()));
    } catch (e) {
      this.stopNetpassRx();
      process.stderr.write(`switchover-vm: netpass: forwarding to the destination failed after ${sent} frame(s): ${(e as Error).message}\n`);
    } finally {
      this.endNetpass();
    }
  }

  /**
   * `quit` on a completed source: the frames cached at switchover are still being passed to
   * the destination (they follow VM_STARTED), so let that finish first, bounded; quitting at
   * once would lose them, which is what netpass is for.
   */
  async finishNetpass(maxMs: number): Promise<void> {
    if (this.status !== 'completed' || !this.netpass) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.netpassEnded, new Promise<void>((r) => { timer = setTimeout(r, maxMs); })]);
    clearTimeout(timer);
  }

  private stopNetpassRx(): void {
    const nic = this.vm.nic;
    if (!nic || !nic.rxHook) return;
    nic.rxHook = null;
    if (!this.vm.running) nic.stopRx();
  }

  /** failed or cancelled; the guest runs again if migration had stopped it. */
  private fail(e: Error): void {
    if (this.status === 'completed') return;
    this.endTime = performance.now();
    this.channel?.destroy();
    this.unpause = null;
    if (this.cancelled || e instanceof Cancelled) {
      if (this.status !== 'cancelling') this.setStatus('cancelling');
      this.errorDesc = undefined;
    } else {
      this.errorDesc = e.message;
      process.stderr.write(`switchover-vm: migration failed: ${e.message}\n`);
    }
    // Frames cached during the failed switchover go to the guest that now runs again, in order,
    // before anything newer is read from the TAP.
    clearTimeout(this.netpassGoTimer);
    const cached = this.netpass?.takeAll() ?? [];
    if (this.vm.nic) this.vm.nic.rxHook = null;
    if (this.stoppedGuest) {
      this.vm.start();
      for (const f of cached) this.vm.guest.receive(f.frame, f.frame.length);
    } else if (this.netpass && !this.vm.running) {
      this.vm.nic?.stopRx();
    }
    this.setStatus(this.cancelled || e instanceof Cancelled ? 'cancelled' : 'failed');
  }
}
