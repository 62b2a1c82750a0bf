// The state of one scenario run that every step shares: the scenario, the topology, the VMs
// it started, the captures, the timeline of QMP events and harness marks. Teardown releases
// what is recorded here.
import type { Capture } from '../capture/tcpdump.js';
import type { ChannelRelay } from './channel-relay.js';
import type { VmLife } from '../capture/loss-causes.js';
import type { Progress } from '../cli/progress.js';
import { nowMs, type RecordedEvent } from '../../lib/qmp-client.js';
import type { FdbMonitor, Topology } from '../net/topology.js';
import type { Scenario, TimelineEvent, VmBackend, VmHandle, VmSpec } from '../scenario/types.js';

export const GUEST_MAC = '52:54:00:12:34:56';
export const MIGRATION_TIMEOUT_MS = 120_000;

export interface RunOptions {
  backend: VmBackend;
  /** Copy the run's pcaps here (per scenario subfolder). */
  keepPcapsDir?: string;
  progress?: Progress;
}

export class Run {
  t0 = 0;                                       // ms epoch: first `migrate` issued
  readonly timeline: TimelineEvent[] = [];
  vms: VmHandle[] = [];
  /** Every VM ever launched, with when (ms epoch): the loss attribution's who-read-which-TAP. */
  readonly launched: Array<{ vm: VmHandle; atMs: number }> = [];
  readonly captures: Capture[] = [];
  fdb?: FdbMonitor;
  relay?: ChannelRelay;
  /** Fault steps that never fired, with why. */
  readonly unfired: string[] = [];

  constructor(readonly s: Scenario, readonly opts: RunOptions, readonly topo: Topology) {}

  /** Start a VM of the scenario on `tap`; its QMP events go to the timeline. */
  async launch(name: string, tap: string, extra: Partial<VmSpec>): Promise<VmHandle> {
    const { s, topo } = this;
    const spec: VmSpec = {
      name, netns: topo.hostNs, runDir: topo.runDir,
      tap: { ifname: tap, queues: s.topology.queues, vhost: s.topology.vhost },
      mac: GUEST_MAC, ip: `${topo.guestIp}/${topo.guestPrefix}`, ...(topo.guestGw ? { gw: topo.guestGw } : {}),
      memMB: s.guest.memMB, dirtyRate: s.guest.dirtyRate, ...extra,
    };
    const atMs = nowMs();
    const vm = await this.opts.backend.launch(spec);
    this.vms.push(vm);
    this.launched.push({ vm, atMs });
    const source = name === 'src' ? 'src' : 'dst';
    vm.qmp.on('*', (ev: RecordedEvent) => {
      const data = ev.event === 'MIGRATION' ? ` ${(ev.data as { status: string }).status}`
        : ev.event === 'MIGRATION_PASS' ? ` ${(ev.data as { pass: number }).pass}` : '';
      this.timeline.push({ t: eventMs(ev), source, what: `${ev.event}${data}` });
    });
    return vm;
  }

  /** A harness step on the timeline. */
  mark(what: string): void {
    this.timeline.push({ t: nowMs(), source: 'harness', what });
  }

  /** Each launched VM's hold on its TAP, in ms relative to t0. A local-migration target
   * holds the TAP once its incoming migration completed (the fds came with it); never, if not. */
  vmLives(): VmLife[] {
    return this.launched.map(({ vm, atMs }) => {
      const completed = vm.qmp.events.find((e) => e.event === 'MIGRATION' && (e.data as { status: string }).status === 'completed');
      const fromMs = !vm.spec.tap.incomingFds ? atMs - this.t0 : completed ? eventMs(completed) - this.t0 : Infinity;
      return {
        name: vm.spec.name, tap: vm.spec.tap.ifname, incoming: vm.spec.incoming !== undefined, fromMs,
        events: vm.qmp.events.filter((e) => e.event === 'STOP' || e.event === 'RESUME')
          .map((e) => ({ tMs: eventMs(e) - this.t0, event: e.event as 'STOP' | 'RESUME' })),
      };
    });
  }
}

/** A QMP event's own timestamp, ms since the epoch. */
export const eventMs = (e: RecordedEvent): number => e.timestamp.seconds * 1000 + e.timestamp.microseconds / 1000;
