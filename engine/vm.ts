// One engine VM: guest RAM and vCPU, the guest network stack on a virtio-net NIC over a TAP,
// and QEMU's run states (qapi/run-state.json). Starting and stopping follow softmmu/cpus.c:
// vm_stop() only acts on a running VM and sends STOP; vm_start() sends RESUME.
// A stopped VM does nothing: the vCPU dirties no page, the NIC reads no frame, the guest
// sends nothing.
import type { VmConfig } from './cmdline.js';
import { GuestNet } from './guest/net.js';
import { Nic, TapNetdev } from './guest/nic.js';
import type { RunState, StatusInfo } from '../lib/qmp-protocol.js';
import { GuestRam, VcpuModel } from './guest/ram.js';
import type { EventSink } from './qmp/server.js';

export class Vm {
  runState: RunState;
  /** Start the guest when an incoming migration completes (false with -S or after `stop`). */
  autostart: boolean;
  readonly ram: GuestRam;
  readonly vcpu: VcpuModel;
  readonly guest: GuestNet;
  readonly nic: Nic | null;
  readonly netdevs: TapNetdev[];
  /** Called after every run-state change (migration listens to notice `cont` on a destination). */
  onRunState: ((s: RunState) => void) | null = null;

  constructor(readonly config: VmConfig, readonly emit: EventSink) {
    this.ram = new GuestRam(config.memBytes);
    if (config.guest.fill > 0) this.ram.fill(config.guest.fill);
    this.vcpu = new VcpuModel(this.ram, { dirtyRate: config.guest.dirtyRate });
    this.netdevs = [];
    try {
      for (const n of config.netdevs) this.netdevs.push(TapNetdev.open(n));
    } catch (e) {
      for (const n of this.netdevs) n.close();
      throw e;
    }
    const nicCfg = config.nics[0];
    this.nic = nicCfg ? new Nic(nicCfg, this.netdevs.find((n) => n.config.id === nicCfg.netdev)!) : null;
    const g = config.guest;
    this.guest = new GuestNet({
      mac: nicCfg?.mac ?? '52:54:00:12:34:56', prefix: g.prefix,
      ...(g.ip ? { ip: g.ip } : {}), ...(g.gw ? { gw: g.gw } : {}),
    }, this.nic ? this.nic.transmit : () => {});
    this.nic?.attachGuest(this.guest);
    this.autostart = !config.startPaused;
    this.runState = config.incoming ? 'inmigrate' : 'prelaunch';
    if (!config.incoming && !config.startPaused) this.start();
  }

  get running(): boolean { return this.runState === 'running'; }

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
