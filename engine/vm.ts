// One engine VM: guest RAM and vCPU, the guest network stack on a virtio-net NIC over a TAP,
// and QEMU's run states (qapi/run-state.json). Starting and stopping follow softmmu/cpus.c:
// vm_stop() only acts on a running VM and sends STOP; vm_start() sends RESUME.
// A stopped VM does nothing: the vCPU dirties no page, the NIC reads no frame, the guest
// sends nothing.
// Netdevs and the NIC come from the command line or from QMP (netdev_add, device_add and their
// _del), through the same addNetdev/addNic; QMP may change them only before the guest has run
// (main.ts checks when), because the guest model has no hotplug: the guest network stack is
// built on the NIC's MAC and transmit path.
import { DEFAULT_MAC, type NicConfig, type TapNetdevConfig, type VmConfig } from './cmdline.js';
import { GuestNet } from './guest/net.js';
import { Nic, TapNetdev } from './guest/nic.js';
import type { RunState, StatusInfo } from '../lib/qmp-protocol.js';
import { GuestRam, VcpuModel } from './guest/ram.js';
import type { EventSink } from './qmp/server.js';

/** A netdev or device change refused, with the QMP error class QEMU uses for it. */
export class VmConfigError extends Error {
  constructor(readonly errorClass: 'GenericError' | 'DeviceNotFound', message: string) {
    super(message);
    this.name = 'VmConfigError';
  }
}

export class Vm {
  runState: RunState;
  /** Start the guest when an incoming migration completes (false with -S or after `stop`). */
  autostart: boolean;
  readonly ram: GuestRam;
  readonly vcpu: VcpuModel;
  private guestNet!: GuestNet;
  private nicDev: Nic | null = null;
  readonly netdevs: TapNetdev[] = [];
  /** Called after every run-state change (migration listens to notice `cont` on a destination). */
  onRunState: ((s: RunState) => void) | null = null;

  constructor(readonly config: VmConfig, readonly emit: EventSink) {
    this.ram = new GuestRam(config.memBytes);
    if (config.guest.fill > 0) this.ram.fill(config.guest.fill);
    this.vcpu = new VcpuModel(this.ram, { dirtyRate: config.guest.dirtyRate });
    try {
      for (const n of config.netdevs) this.addNetdev(n);
    } catch (e) {
      for (const n of this.netdevs) n.close();
      throw e;
    }
    this.buildGuest();
    for (const d of config.nics) this.addNic(d);
    this.autostart = !config.startPaused;
    this.runState = config.incoming ? 'inmigrate' : 'prelaunch';
    if (!config.incoming && !config.startPaused) this.start();
  }

  get running(): boolean { return this.runState === 'running'; }

  get guest(): GuestNet { return this.guestNet; }
  get nic(): Nic | null { return this.nicDev; }

  /** The guest network stack on the NIC's MAC and transmit path (none: the default MAC, nowhere to send). */
  private buildGuest(): void {
    const g = this.config.guest;
    const nic = this.nicDev;
    this.guestNet = new GuestNet({
      mac: nic?.mac ?? DEFAULT_MAC, prefix: g.prefix, ...(g.ip ? { ip: g.ip } : {}), ...(g.gw ? { gw: g.gw } : {}),
    }, nic ? nic.guestTransmit : () => {});
    nic?.attachGuest(this.guestNet);
  }

  /** Opens a TAP netdev (-netdev tap or netdev_add). Throws VmConfigError when the id is taken. */
  addNetdev(cfg: TapNetdevConfig): TapNetdev {
    if (this.netdevs.some((n) => n.config.id === cfg.id)) throw new VmConfigError('GenericError', `Duplicate ID '${cfg.id}' for netdev`);
    const n = TapNetdev.open(cfg);
    this.netdevs.push(n);
    return n;
  }

  /** Closes a netdev the NIC does not use (netdev_del). */
  delNetdev(id: string): void {
    const i = this.netdevs.findIndex((n) => n.config.id === id);
    if (i < 0) throw new VmConfigError('DeviceNotFound', `Device '${id}' not found`);
    // QEMU would leave the NIC with a dead link; the engine's guest has no link state to show it.
    if (this.nicDev?.netdev === this.netdevs[i]) throw new VmConfigError('GenericError', `netdev '${id}' is in use by device '${this.nicDev.config.id}': device_del it first`);
    this.netdevs[i]!.close();
    this.netdevs.splice(i, 1);
  }

  /** Plugs the virtio-net-pci NIC on its netdev (-device or device_add); the guest stack is rebuilt on its MAC. */
  addNic(cfg: NicConfig): void {
    if (this.nicDev?.config.id === cfg.id) throw new VmConfigError('GenericError', `Duplicate device ID '${cfg.id}'`);
    const netdev = this.netdevs.find((n) => n.config.id === cfg.netdev);
    if (!netdev) throw new VmConfigError('GenericError', `Property 'virtio-net-pci.netdev' can't find value '${cfg.netdev}'`);
    if (this.nicDev) throw new VmConfigError('GenericError', `the engine guest has one NIC ('${this.nicDev.config.id}' is plugged)`);
    this.nicDev = new Nic(cfg, netdev);
    this.buildGuest();
  }

  /** Unplugs the NIC (device_del); its netdev stays, as in QEMU. */
  delNic(id: string): void {
    if (this.nicDev?.config.id !== id) throw new VmConfigError('DeviceNotFound', `Device '${id}' not found`);
    this.nicDev.stopRx();
    this.nicDev = null;
    this.buildGuest();
  }

  status(): StatusInfo {
    return { running: this.running, singlestep: false, status: this.runState };
  }

  setRunState(s: RunState): void {
    this.runState = s;
    this.onRunState?.(s);
  }

  /** vm_start: runs the vCPU and the NIC from any stopped state; RESUME. */
  start(): void {
    if (this.running) return;
    this.setRunState('running');
    this.vcpu.start();
    this.guest.setRunning(true);
    this.nic?.startRx();
    this.nic?.flushHeld();
    this.emit('RESUME');
  }

  /** vm_stop(state): stops a running VM (vCPU, NIC reading, guest timers); STOP. */
  stopTo(state: RunState): void {
    if (!this.running) {
      if (state !== 'paused') this.setRunState(state);
      return;
    }
    this.vcpu.stop();
    this.guest.setRunning(false);
    this.nic?.stopRx();
    this.setRunState(state);
    this.emit('STOP');
  }

  /** QMP `stop` (qmp_stop): on an incoming VM it only cancels autostart. */
  qmpStop(): void {
    if (this.runState === 'inmigrate') { this.autostart = false; return; }
    this.stopTo('paused');
  }

  /** QMP `cont` (qmp_cont): on an incoming VM it sets autostart, as QEMU does. */
  qmpCont(): void {
    if (this.runState === 'inmigrate') { this.autostart = true; return; }
    if (this.runState === 'shutdown' || this.runState === 'internal-error') {
      throw new Error('Resetting the Virtual Machine is required');
    }
    this.start();
  }

  close(): void {
    this.vcpu.stop();
    this.guest.setRunning(false);
    for (const n of this.netdevs) n.close();
  }
}
