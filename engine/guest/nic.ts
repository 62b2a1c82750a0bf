// The guest NIC (virtio-net-pci) on its TAP netdev: frames from any TAP queue go to the
// guest, frames from the guest go out on the queue the last frame came in on (one queue per
// flow, like virtio-net's multiqueue steering from the host side).
//
// Hooks for migration:
// - stopRx()/startRx(): a paused VM does not read its TAP, so frames queue in the kernel.
// - rxHook: while set, received frames go to the hook instead of the guest. Netpass sets it on
//   the source after stop (and calls startRx()) to cache what arrives during switchover.
// - guestTxHook: while set, the guest's own frames (not the backend's announce) go to the hook
//   instead of the TAP (a netpass variant on the destination holds them, issue 17).
// - queues are TapQueue objects that can be built from an existing fd, so a destination can
//   take over TAP fds received over SCM_RIGHTS (local migration: a netdev with
//   incoming-fds=on starts without queues and adopts the fds; the NIC then reads them).
import type { NicConfig, TapNetdevConfig } from '../cmdline.js';
import type { GuestNet } from './net.js';
import { TapQueue, type FrameHandler } from './tap.js';

export class TapNetdev {
  private constructor(readonly config: TapNetdevConfig, readonly queues: TapQueue[]) {}

  /**
   * Opens the TAP by name (queues>1: IFF_MULTI_QUEUE, one fd per queue) or wraps the given
   * fds; with incoming-fds=on opens nothing until adopt().
   */
  static open(config: TapNetdevConfig): TapNetdev {
    const queues: TapQueue[] = [];
    try {
      if (config.incomingFds) return new TapNetdev(config, queues);
      if (config.fds.length) for (const fd of config.fds) queues.push(new TapQueue(fd));
      else for (let i = 0; i < config.queues; i++) queues.push(TapQueue.open(config.ifname!, config.queues > 1));
    } catch (e) {
      for (const q of queues) q.close();
      throw new Error(`-netdev tap,id=${config.id}: could not configure /dev/net/tun (${config.ifname ?? `fds ${config.fds.join(':')}`}): ${(e as Error).message}`, { cause: e });
    }
    return new TapNetdev(config, queues);
  }

  /** Takes over TAP fds received from the source of a local migration, queue 0 first. */
  adopt(fds: number[]): TapQueue[] {
    if (this.queues.length) throw new Error(`netdev '${this.config.id}' already has its TAP queues`);
    for (const fd of fds) this.queues.push(new TapQueue(fd));
    return this.queues;
  }

  close(): void {
    for (const q of this.queues) q.close();
  }
}

/** QEMU's net queue length (net/queue.c: qemu_new_net_queue, nq_maxlen = 10000): the most frames
 * the NIC (and a netpass hold, netpass-hold.ts) keeps back. */
export const NET_QUEUE_MAX = 10_000;

export class Nic {
  readonly mac: string;
  private guest: GuestNet | null = null;
  private txQueue: TapQueue | null;
  private rx = false;
  /** While set, received frames go here instead of the guest (netpass on a stopped source). */
  rxHook: FrameHandler | null = null;
  /** While set, frames the guest transmits go here instead of the TAP. */
  guestTxHook: FrameHandler | null = null;
  /** Frames delivered to the guest or the hook, for tests and stats. */
  rxFrames = 0;
  txFrames = 0;
  /** Frames sent while the VM was stopped, waiting for it to run (see hold()). */
  private held: Buffer[] = [];

  constructor(readonly config: NicConfig, readonly netdev: TapNetdev) {
    this.mac = config.mac;
    this.txQueue = netdev.queues[0] ?? null;
    for (const q of netdev.queues) this.wire(q);
  }

  private wire(q: TapQueue): void {
    q.start((buf, len) => {
      this.txQueue = q;
      this.rxFrames++;
      if (this.rxHook) this.rxHook(buf, len);
      else if (this.guest) this.guest.receive(buf, len);
    });
    if (!this.rx) q.pause();
  }

  /** The netdev adopted TAP fds (local migration): read them like the others. */
  adoptQueues(fds: number[]): void {
    for (const q of this.netdev.adopt(fds)) this.wire(q);
    this.txQueue = this.netdev.queues[0] ?? null;
  }

  attachGuest(guest: GuestNet): void { this.guest = guest; }

  /** Starts reading the TAP queues (the VM runs, or netpass caches). */
  startRx(): void {
    this.rx = true;
    for (const q of this.netdev.queues) q.resume();
  }

  /** Stops reading: frames wait in the kernel's TAP queue. */
  stopRx(): void {
    this.rx = false;
    for (const q of this.netdev.queues) q.pause();
  }

  get receiving(): boolean { return this.rx; }

  /** Sends one frame to the host side (the backend's path: announce, held frames). */
  readonly transmit = (buf: Buffer, len: number): void => {
    this.txFrames++;
    this.txQueue?.write(buf, len);
  };

  /** The guest's transmit path: the TAP, or guestTxHook while one is set. */
  readonly guestTransmit = (buf: Buffer, len: number): void => {
    if (this.guestTxHook) this.guestTxHook(buf, len);
    else this.transmit(buf, len);
  };

  /**
   * A frame the NIC's backend sends while the VM is stopped (the announce of a `-S`
   * destination) waits in a queue flushed when the VM starts, as QEMU's net queue does:
   * qemu_can_send_packet() is false while the VM is not running, qemu_net_queue_send() queues,
   * and the run-state change handler flushes (net/net.c). QEMU bounds it at 10,000 packets.
   */
  hold(frame: Buffer): void {
    if (this.held.length < NET_QUEUE_MAX) this.held.push(frame);
  }

  /** The VM runs: the held frames go out, oldest first. */
  flushHeld(): void {
    const frames = this.held;
    this.held = [];
    for (const f of frames) this.transmit(f, f.length);
  }

  /** Frames the kernel refused on write (all queues). */
  get txDropped(): number {
    return this.netdev.queues.reduce((n, q) => n + q.txDropped, 0);
  }
}
