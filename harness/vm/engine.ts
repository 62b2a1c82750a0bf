// The `engine` backend: each VM is `node bin/switchover.js vm ...` (engine/main.ts), started
// inside the run's host netns exactly as the qemu backend starts qemu-system-x86_64, and
// driven only over QMP, through the one VM-process lifecycle (process.ts). Its stderr/stdout go
// to <runDir>/<name>.log.
//
// API
//   engineBackend: VmBackend          probe() (cached; harness/vm/qmp-features.ts, as for QEMU) and launch(spec)
//   engineArgs(spec) -> string[]      the VM's QEMU-shaped command line (after `vm`)
//   startEngineVm(name, argv, { netns?, runDir, qmpPath }) -> VmHandle without spec
//                                     any engine command line (e.g. one with no NIC)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { engineArgv } from '../../lib/engine-argv.js';
import { onExit } from '../net/cleanup.js';
import { validateName } from '../net/names.js';
import { launchVm } from './process.js';
import { probeQmpFeatures } from './qmp-features.js';
import type { BackendFeatures, LaunchHooks, VmBackend, VmHandle, VmSpec } from '../scenario/types.js';

const SWITCHOVER_BIN = fileURLToPath(new URL('../../../bin/switchover.js', import.meta.url));

const qmpPathOf = (spec: VmSpec): string => join(spec.runDir, `${spec.name}.qmp`);

/** The VM's command line after `switchover vm`, QEMU spelling (see DESIGN.md). */
export function engineArgs(spec: VmSpec): string[] {
  validateName('VM', spec.name);
  validateName('TAP interface', spec.tap.ifname);
  return engineArgv({
    name: spec.name, memMB: spec.memMB, qmpPath: qmpPathOf(spec),
    nic: {
      ifname: spec.tap.incomingFds ? undefined : spec.tap.ifname, incomingFds: spec.tap.incomingFds,
      queues: spec.tap.queues, vhost: spec.tap.vhost, mac: spec.mac,
    },
    guest: { ip: spec.ip, gw: spec.gw, dirtyRate: spec.dirtyRate }, incoming: spec.incoming, paused: spec.paused,
  });
}

/** Start `switchover vm ARGS` (in `netns` when given), connected over QMP, as a VmHandle. */
export async function startEngineVm(name: string, argv: string[], opts: { netns?: string; runDir: string; qmpPath: string } & LaunchHooks): Promise<Omit<VmHandle, 'spec'>> {
  const vm = await launchVm({
    name, argv: [process.execPath, SWITCHOVER_BIN, 'vm', ...argv], netns: opts.netns,
    logPath: join(opts.runDir, `${name}.log`), qmpPath: opts.qmpPath, qmpTranscript: opts.qmpTranscript,
  });
  return { ...vm, guestUdpSend: async (o) => { await vm.qmp.execute('x-guest-udp-send', o); } };
}

let probed: Promise<BackendFeatures> | undefined;

/** Ask a real engine VM (no NIC, no netns needed) what it supports. */
async function probeEngine(): Promise<BackendFeatures> {
  const dir = mkdtempSync(join(tmpdir(), 'switchover-probe-'));
  // Ctrl-C during the probe must not leave its directory behind (launchVm stops the VM first).
  const unregister = onExit(() => rmSync(dir, { recursive: true, force: true }));
  try {
    const qmpPath = join(dir, 'probe.qmp');
    const vm = await startEngineVm('probe', engineArgv({ name: 'probe', memMB: 16, qmpPath, paused: true }), { runDir: dir, qmpPath });
    try {
      const f = await probeQmpFeatures(vm.qmp);
      const pkg = vm.qmp.greeting.QMP.version.package;
      return {
        accelerator: 'engine',
        ...f,
        version: `${f.version}${pkg ? ` (${pkg.trim()})` : ''}`,
        // The engine accepts vhost=on on its command line but does not emulate vhost-net (no
        // in-kernel datapath), so scenarios that need vhost are unsupported here (issue 5).
        vhost: false,
      };
    } finally {
      await vm.shutdown();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    unregister();
  }
}

export const engineBackend: VmBackend = {
  name: 'engine',
  probe(): Promise<BackendFeatures> {
    probed ??= probeEngine().catch((e: Error) => {
      probed = undefined; // a failed probe is retried next time, not cached
      throw new Error(`probing the engine backend failed: ${e.message}`, { cause: e });
    });
    return probed;
  },
  async launch(spec: VmSpec, hooks: LaunchHooks = {}): Promise<VmHandle> {
    const argv = engineArgs(spec);
    const vm = await startEngineVm(spec.name, argv, { netns: spec.netns, runDir: spec.runDir, qmpPath: qmpPathOf(spec), ...hooks });
    return { ...vm, spec };
  },
};
