// The destination side of a live migration (QEMU's process_incoming_migration_co and _bh):
// accept one channel, load the stream, adopt local TAP fds, start the guest (or wait for
// `cont` with -S), VM_STARTED and announce, netpass frames into the guest; a stream it
// cannot load makes the process print why and exit 1. The overview is in migration.ts.
import { closeFd, recvFd, socketFd, startReading, stopReading } from '../../lib/fd-passing.js';
import type { Announcer } from './announce.js';
import type { GuestNetState } from '../guest/net.js';
import type { Migration } from './migration.js';
import { IncomingListener, type MigrationChannel } from './channel.js';
import { StreamDecoder, StreamError, type DeviceState, type StreamSection } from './stream.js';
import type { MigrationInfo, MigrationStatus } from '../../lib/qmp-protocol.js';
import { ReturnPathWriter } from './return-path.js';
import { FrameHold, isArp, type HoldStats } from './netpass-hold.js';
import type { Vm } from '../vm.js';

/** Longest run of netpass injection before the event loop reads the TAP queues again. */
const INJECT_SLICE_MS = 1;
/** Queued sections at which the channel stops reading (backpressure on the source), and resumes. */
const QUEUE_HIGH = 4096;
const QUEUE_LOW = 1024;

export class MigrationDestination {
  status: MigrationStatus = 'none';
  private listener: IncomingListener | null = null;
  private channel: MigrationChannel | null = null;
  private rp: ReturnPathWriter | null = null;
  /** Return-path writer for FDS_READY, which local migration needs even without the capability. */
  private fdRp: ReturnPathWriter | null = null;
  private readonly startTime = performance.now();
  private endTime = 0;
  private loaded = false;
  private guestStarted = false;
  private shutSent = false;
  private decoder: StreamDecoder | null = null;
  private announcer: Announcer | null = null;
  /**
   * Sections waiting for their turn once netpass frames arrive: injection runs in slices
   * between TAP reads, as QEMU's net queue delivers, and what follows a frame in the stream
   * waits behind it, so order holds.
   */
  private queue: StreamSection[] = [];
  private queueHead = 0;
  private injecting = false;
  private channelPaused = false;
  /** backlog-first: frames the destination's own TAP delivered, held until the backlog is in. */
  private rxHold: FrameHold | null = null;
  /** first-tx: the guest's frames, from its first, held until the backlog is in. */
  private txHold: FrameHold | null = null;
  private netpassDone = false;

  constructor(private readonly mig: Migration) {}

  private get vm(): Vm { return this.mig.vm; }

  private setStatus(s: MigrationStatus): void {
    this.status = s;
    this.mig.statusEvent(s);
  }

  info(): MigrationInfo {
    const info: MigrationInfo = { status: this.status };
    if (this.status === 'completed' || this.status === 'failed') info['total-time'] = Math.round(this.endTime - this.startTime);
    if (this.rxHold || this.txHold) {
      const none: HoldStats = { held: 0, dropped: 0, 'max-ms': 0 };
      info['x-netpass-held'] = { rx: this.rxHold?.stats ?? none, tx: this.txHold?.stats ?? none };
    }
    return info;
  }

  async listen(uri: string): Promise<void> {
    // QEMU 7.2's destination stays `none` while listening; `active` comes with the connection
    // (process_incoming_migration_co).
    this.listener = await IncomingListener.listen(uri, (ch) => this.accept(ch));
  }

  private accept(ch: MigrationChannel): void {
    this.listener = null;
    this.channel = ch;
    this.setStatus('active');
    const netdev = this.vm.nic?.netdev;
    const waitsForFds = !!netdev?.config.incomingFds;
    this.decoder = new StreamDecoder({ ramSize: this.vm.ram.size, queues: netdev?.config.queues ?? 1, local: waitsForFds });
    if (waitsForFds && !this.mig.params.local) {
      queueMicrotask(() => this.fail(new Error(`netdev '${netdev!.config.id}' waits for TAP fds (incoming-fds=on) but the migration parameter local is off: set it with migrate-set-parameters before the source connects`)));
    }
    ch.onData((chunk) => {
      if (this.status === 'failed') return;
      try {
        for (const s of this.decoder!.push(chunk)) {
          if (this.queue.length > this.queueHead || s.type === 'netpass-frame') this.enqueue(s);
          else this.section(s);
        }
      } catch (e) {
        this.fail(e as Error);
      }
    });
    ch.onClose(() => {
      if (this.status === 'failed' || (this.decoder!.done && this.loaded)) return;
      if (this.loaded) {
        // The guest already runs here: a source that goes away during netpass costs frames, not the VM.
        process.stderr.write('switchover-vm: netpass: the migration channel closed before the end marker\n');
        this.releaseHolds();
        return;
      }
      try {
        this.decoder!.end();
        if (!this.loaded) throw new StreamError('channel closed before the VM state was complete');
      } catch (e) {
        this.fail(e as Error);
      }
    });
    this.vm.onRunState = (s) => { if (s === 'running' && this.loaded && !this.guestStarted) this.guestRuns(); };
  }

  private section(s: StreamSection): void {
    const ram = this.vm.ram;
    switch (s.type) {
      case 'header':
        if (s.header.returnPath || s.header.local) this.fdRp = new ReturnPathWriter(this.channel!);
        if (s.header.returnPath) this.rp = this.fdRp;
        break;
      case 'tap-local': void this.receiveTapFds(s.queues.length); break;
      case 'page': ram.write(s.index, s.data); break;
      case 'zero': for (let p = s.index; p < s.index + s.count; p++) ram.clear(p); break;
      case 'ping': this.rp?.send({ type: 'pong', id: s.id }); break;
      case 'device': this.loadDevice(s.state); break;
      case 'eof': this.finishLoad(); break;
      case 'netpass-frame':
        // Injected into the guest's receive path in stream order (the guest runs: VM_STARTED went first).
        this.vm.guest.receive(s.frame, s.frame.length);
        this.vm.guest.recordNetpassInjected(Date.now() - s.timeMs);
        break;
      case 'netpass-end':
        if (s.dropped) process.stderr.write(`switchover-vm: netpass: the source dropped ${s.dropped} frame(s) on cache overflow\n`);
        this.releaseHolds();
        break;
      case 'pass-start': case 'pass-end': case 'fds-sent': break;
    }
    if (this.decoder!.done) this.maybeShut();
  }

  private enqueue(s: StreamSection): void {
    this.queue.push(s);
    if (!this.channelPaused && this.queue.length - this.queueHead >= QUEUE_HIGH) {
      this.channelPaused = true;
      this.channel!.socket.pause();
    }
    if (!this.injecting) {
      this.injecting = true;
      setImmediate(() => this.injectSlice());
    }
  }

  /** Handles queued sections for at most INJECT_SLICE_MS, then yields to the event loop. */
  private injectSlice(): void {
    const start = performance.now();
    try {
      let n = 0;
      while (this.queueHead < this.queue.length && this.status !== 'failed') {
        const s = this.queue[this.queueHead]!;
        this.queue[this.queueHead++] = undefined as unknown as StreamSection;
        this.section(s);
        if ((++n & 15) === 0 && performance.now() - start >= INJECT_SLICE_MS) break;
      }
    } catch (e) {
      this.fail(e as Error);
    }
    const left = this.queue.length - this.queueHead;
    if (left === 0) { this.queue = []; this.queueHead = 0; }
    else if (this.queueHead > 4096) { this.queue = this.queue.slice(this.queueHead); this.queueHead = 0; }
    if (this.channelPaused && left <= QUEUE_LOW) {
      this.channelPaused = false;
      this.channel!.socket.resume();
    }
    if (left > 0 && this.status !== 'failed') setImmediate(() => this.injectSlice());
    else this.injecting = false;
  }

  /**
   * The decoder has stopped after the tap-local section: stop the socket reader (a read(2)
   * would swallow the fds), ask for the fds, receive one per byte, adopt them, read on.
   */
  private async receiveTapFds(count: number): Promise<void> {
    const sock = this.channel!.socket;
    const fds: number[] = [];
    try {
      stopReading(sock);
      this.fdRp!.send({ type: 'fds-ready', count });
      for (let i = 0; i < count; i++) {
        const r = await recvFd(socketFd(sock), { timeoutMs: 15000 });
        if (r.extraClosed) process.stderr.write(`switchover-vm: closed ${r.extraClosed} unclaimed fd(s) that came with TAP fd ${i + 1}\n`);
        if (r.fd === null) throw new StreamError(`expected TAP fd ${i + 1} of ${count}, got a byte without an fd`);
        fds.push(r.fd);
      }
      this.decoder!.fdsReceived(count);
      this.vm.nic!.adoptQueues(fds.splice(0));
      startReading(sock);
    } catch (e) {
      for (const fd of fds) closeFd(fd);
      this.fail(e as Error);
    }
  }

  private loadDevice(d: DeviceState): void {
    if (d.nic.mac.toLowerCase() !== this.vm.guest.macText) {
      throw new StreamError(`source NIC MAC ${d.nic.mac} differs from this VM's ${this.vm.guest.macText}: start the destination with the same -device mac=`);
    }
    const net = (d.guest.extra as { net?: GuestNetState } | undefined)?.net;
    this.vm.guest.load(net ?? {
      ip: d.guest.ip || null, prefix: d.guest.prefixLength, gw: null,
      arp: d.guest.arpCache.map((e) => [e.ip, e.mac] as [string, string]),
      udp: d.guest.udp.map((u) => ({ port: u.port, received: u.received, missing: u.missing, duplicates: u.duplicates, reordered: u.reordered, highest: u['highest-seq'], gaps: [] })),
      sender: null,
    });
  }

  /** EOF: the state is in; start the guest unless -S (or `stop`) said otherwise (process_incoming_migration_bh). */
  private finishLoad(): void {
    this.loaded = true;
    this.endTime = performance.now();
    this.setStatus('completed');
    // QEMU's process_incoming_migration_bh starts the announce timer before it decides whether
    // to autostart: a -S destination's rounds wait in the net queue and leave together at `cont`.
    this.announcer = this.mig.announce(this.mig.announceParams());
    if (this.vm.autostart) {
      this.vm.start();
    } else {
      this.vm.setRunState('paused');
    }
  }

  /**
   * The guest runs: VM_STARTED (the announce began at completion, see finishLoad). Called
   * from the run-state change, before the NIC reads its TAP, so the holds below see the first
   * frame either way.
   */
  private guestRuns(): void {
    this.guestStarted = true;
    this.rp?.send({ type: 'vm-started' });
    const h = this.decoder?.header;
    const nic = this.vm.nic;
    if (h?.netpass && nic && !this.netpassDone) {
      // ARP passes both holds: it belongs to no flow's order, and holding it leaves a routed
      // host's neighbour queue dropping what it queued for the guest meanwhile (issue 17: 292
      // of 10,000/s lost with backlog-first in the routed layout while ARP was held).
      if (h.netpassOrder === 'backlog-first') {
        const hold = this.rxHold = new FrameHold('received', (f) => this.vm.guest.receive(f, f.length), () => this.releaseHolds());
        nic.rxHook = (buf, len) => { if (isArp(buf, len)) this.vm.guest.receive(buf, len); else hold.push(buf, len); };
        hold.onEmpty = () => { if (nic.rxHook) nic.rxHook = null; };
      }
      if (h.netpassTrigger === 'first-tx') {
        const hold = this.txHold = new FrameHold('guest', (f) => nic.transmit(f, f.length), () => this.releaseHolds());
        let go = false;
        nic.guestTxHook = (buf, len) => {
          // Any first frame is the trigger, an ARP reply included.
          if (!go) { go = true; this.rp?.send({ type: 'netpass-go' }); }
          if (isArp(buf, len)) nic.transmit(buf, len); else hold.push(buf, len);
        };
        hold.onEmpty = () => { nic.guestTxHook = null; };
      }
    }
    this.maybeShut();
  }

  /**
   * The backlog is in (end marker), or will not come: the guest gets what its TAP delivered
   * meanwhile, oldest first, and its held frames go out, oldest first; both paced like the
   * injection (netpass-hold.ts).
   */
  private releaseHolds(): void {
    this.netpassDone = true;
    this.rxHold?.release();
    this.txHold?.release();
  }

  private maybeShut(): void {
    if (this.shutSent || !this.guestStarted || !this.decoder?.done || this.queueHead < this.queue.length) return;
    this.shutSent = true;
    this.rp?.send({ type: 'shut', status: 0 });
    this.channel?.socket.end();
    this.vm.onRunState = null;
  }

  /** A stream that cannot be loaded: report it and exit 1, as QEMU does. */
  private fail(e: Error): void {
    if (this.status === 'failed') return;
    const msg = e instanceof StreamError ? e.message : `${e.name}: ${e.message}`;
    if (this.loaded) {
      // After EOF the VM state is complete and the guest is ours: only the netpass tail is bad.
      process.stderr.write(`switchover-vm: netpass: bad data after the VM state, closing the channel: ${msg}\n`);
      this.channel?.destroy();
      return;
    }
    process.stderr.write(`switchover-vm: load of migration failed: ${msg}\n`);
    this.endTime = performance.now();
    this.setStatus('failed');
    this.announcer?.cancel();
    this.rp?.send({ type: 'fail', reason: msg });
    this.channel?.socket.end();
    this.vm.onRunState = null;
    setTimeout(() => this.mig.exit(1), 50);
  }

  close(): void {
    this.rxHold?.cancel();
    this.txHold?.cancel();
    this.listener?.close();
    this.channel?.destroy();
    this.announcer?.cancel();
  }
}
