// The VMs of one run, owned by the runner: it starts each through the backend (a hop asks for
// its destination through `launch`), records its QMP events on the timeline and its launch
// time, retires a migrated-away source, and shuts down what is left at teardown.
import type { VmLife } from '../capture/loss-causes.js';
import { nowMs } from '../../lib/qmp-client.js';
import type { Topology } from '../net/topology.js';
import type { QmpTranscript } from '../../lib/qmp-client.js';
import type { Scenario, VmBackend, VmHandle, VmSpec } from '../scenario/types.js';
import { eventMs, type Timeline } from './timeline.js';

export const GUEST_MAC = '52:54:00:12:34:56';
export const MIGRATION_TIMEOUT_MS = 120_000;

/** Start a VM of the scenario on `tap`: the runner's, handed down to a hop. */
export type LaunchVm = (name: string, tap: string, extra: Partial<VmSpec>) => Promise<VmHandle>;

/** Who else wants to know of each VM (the trace): its QMP transcript, by VM name. */
export interface RunVmHooks {
  qmpTranscript(name: string): QmpTranscript;
}

export class RunVms {
  /** Running VMs, to shut down at teardown. */
  private live: VmHandle[] = [];
  /** Every VM ever launched, with when (ms epoch): the loss attribution's who-read-which-TAP. */
  readonly launched: Array<{ vm: VmHandle; atMs: number }> = [];

  constructor(private readonly s: Scenario, private readonly backend: VmBackend, private readonly topo: Topology,
    private readonly timeline: Timeline, private readonly hooks?: RunVmHooks) {}

  readonly launch: LaunchVm = async (name, tap, extra) => {
    const { s, topo } = this;
    const spec: VmSpec = {
      name, netns: topo.hostNs, runDir: topo.runDir,
      tap: { ifname: tap, queues: s.topology.queues, vhost: s.topology.vhost },
      mac: GUEST_MAC, ip: `${topo.guestIp}/${topo.guestPrefix}`, ...(topo.guestGw ? { gw: topo.guestGw } : {}),
      memMB: s.guest.memMB, dirtyRate: s.guest.dirtyRate, ...(s.migration.local ? { local: true } : {}), ...extra,
    };
    const atMs = nowMs();
    const vm = await this.backend.launch(spec, this.hooks ? { qmpTranscript: this.hooks.qmpTranscript(name) } : {});
    this.live.push(vm);
    this.launched.push({ vm, atMs });
    const source = name === 'src' ? 'src' : 'dst';
    vm.qmp.on('*', (ev) => this.timeline.event(source, ev));
    return vm;
  };

  /** A source the guest migrated away from: shut it down now. */
  async retire(vm: VmHandle): Promise<void> {
    await vm.shutdown();
    this.live = this.live.filter((v) => v !== vm);
  }

  /** Shut down every VM still running; the errors, one line each. */
  async shutdownAll(): Promise<string[]> {
    const errors: string[] = [];
    for (const vm of this.live) await vm.shutdown().catch((e: Error) => errors.push(`${vm.spec.name}: ${e.message}`));
    return errors;
  }

  /** Each launched VM's hold on its TAP, in ms relative to t0. A local-migration target
   * holds the TAP once its incoming migration completed (the fds came with it); never, if not. */
  lives(t0: number): VmLife[] {
    return this.launched.map(({ vm, atMs }) => {
      const completed = vm.qmp.events.find((e) => e.event === 'MIGRATION' && (e.data as { status: string }).status === 'completed');
      const fromMs = !vm.spec.tap.incomingFds ? atMs - t0 : completed ? eventMs(completed) - t0 : Infinity;
      return {
        name: vm.spec.name, tap: vm.spec.tap.ifname, incoming: vm.spec.incoming !== undefined, fromMs,
        events: vm.qmp.events.filter((e) => e.event === 'STOP' || e.event === 'RESUME')
          .map((e) => ({ tMs: eventMs(e) - t0, event: e.event as 'STOP' | 'RESUME' })),
      };
    });
  }
}
