// The `engine` backend: each VM is `node bin/switchover.js vm ...` (engine/main.ts), started
// inside the run's host netns exactly as the qemu backend starts qemu-system-x86_64, and
// driven only over QMP. Its stderr/stdout go to <runDir>/<name>.log.
//
// API
//   engineBackend: VmBackend          probe() (cached) and launch(spec)
//   engineArgs(spec) -> string[]      the VM's QEMU-shaped command line (after `vm`)
//   VmLaunchError                     the VM died before its QMP socket answered (with its log)
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onExit } from '../net/cleanup.js';
import { privileged, resolveTool, signalProcess } from '../net/exec.js';
import { validateName } from '../net/names.js';
import { QmpClient } from '../../lib/qmp-client.js';
import type { BackendFeatures, VmBackend, VmExit, VmHandle, VmSpec } from '../scenario/types.js';

const SWITCHOVER_BIN = fileURLToPath(new URL('../../../bin/switchover.js', import.meta.url));
const QMP_CONNECT_TIMEOUT_MS = 15_000;
const QUIT_GRACE_MS = 3_000;

export class VmLaunchError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'VmLaunchError';
  }
}

/** The VM's command line after `switchover vm`, QEMU spelling (see DESIGN.md). */
export function engineArgs(spec: VmSpec): string[] {
  validateName('VM', spec.name);
  validateName('TAP interface', spec.tap.ifname);
  const qmpPath = join(spec.runDir, `${spec.name}.qmp`);
  // QemuOpts values cannot carry a comma unescaped; none of ours may contain one.
  for (const [what, v] of [['runDir', spec.runDir], ['mac', spec.mac], ['ip', spec.ip], ['gw', spec.gw ?? ''], ['incoming', spec.incoming ?? '']] as const) {
    if (v.includes(',')) throw new Error(`VM ${spec.name}: ${what} ${JSON.stringify(v)} contains a comma, which QEMU-style options cannot take`);
  }
  // incoming-fds: the TAP arrives from the migration stream; naming one is an error (issue 5).
  const netdev = ['tap', 'id=n0', ...(spec.tap.incomingFds ? [] : [`ifname=${spec.tap.ifname}`]), 'script=no', 'downscript=no'];
  if (spec.tap.queues > 1) netdev.push(`queues=${spec.tap.queues}`);
  if (spec.tap.vhost) netdev.push('vhost=on');
  if (spec.tap.incomingFds) netdev.push('incoming-fds=on');
  const device = ['virtio-net-pci', 'netdev=n0', `mac=${spec.mac}`];
  if (spec.localMigration !== undefined) device.push(`local-migration=${spec.localMigration ? 'on' : 'off'}`);
  const guest = [`ip=${spec.ip}`, ...(spec.gw ? [`gw=${spec.gw}`] : []), `dirty-rate=${spec.dirtyRate}`];
  const argv = [
    '-name', spec.name, '-m', `${spec.memMB}M`,
    '-netdev', netdev.join(','), '-device', device.join(','), '-guest', guest.join(','),
    '-qmp', `unix:${qmpPath},server=on,wait=off`,
  ];
  if (spec.incoming) argv.push('-incoming', spec.incoming);
  if (spec.paused) argv.push('-S');
  return argv;
}

function logTail(path: string): string {
  try {
    const text = readFileSync(path, 'utf8').trim();
    return text ? text.split('\n').slice(-15).join('\n') : '(log empty)';
  } catch {
    return '(no log)';
  }
}

/** Start `switchover vm ARGS`, connect QMP, and wrap it as a VmHandle. */
async function startVm(name: string, argv: string[], opts: { netns?: string; runDir: string; qmpPath: string }): Promise<Omit<VmHandle, 'spec'>> {
  const logPath = join(opts.runDir, `${name}.log`);
  const logFd = openSync(logPath, 'a', 0o600);
  const cmd = [process.execPath, SWITCHOVER_BIN, 'vm', ...argv];
  const full = opts.netns ? privileged(['ip', 'netns', 'exec', validateName('netns', opts.netns), ...cmd]) : cmd;
  let child: ChildProcess;
  try {
    // Own process group, as topology.spawn does: the harness stops VMs in order on Ctrl-C.
    child = spawn(resolveTool(full[0]!), full.slice(1), { stdio: ['ignore', logFd, logFd], detached: true });
  } finally {
    closeSync(logFd);
  }
  const exited = new Promise<VmExit>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: null, signal: null }));
  });
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  const died = Promise.race([exited, spawnError]).then((x) => {
    if (x instanceof Error) return new VmLaunchError(`VM ${name} could not start: ${x.message}`, { cause: x });
    return new VmLaunchError(`VM ${name} exited (${x.signal ?? `code ${x.code}`}) before its QMP socket answered; ${logPath}:\n${logTail(logPath)}`);
  });
  let qmp: QmpClient;
  const abandon = new AbortController();
  try {
    const connecting = QmpClient.connect(opts.qmpPath, { timeoutMs: QMP_CONNECT_TIMEOUT_MS, signal: abandon.signal });
    connecting.catch(() => undefined); // when the VM died first, this one's failure is moot
    qmp = await Promise.race([connecting, died.then((e) => { throw e; })]);
  } catch (e) {
    abandon.abort();
    if (child.pid !== undefined && child.exitCode === null) {
      await signalProcess(child.pid, 'SIGKILL').catch(() => false);
      await exited;
    }
    if (e instanceof VmLaunchError) throw e;
    throw new VmLaunchError(`VM ${name}: ${(e as Error).message}; ${logPath}:\n${logTail(logPath)}`, { cause: e });
  }
  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) await signalProcess(child.pid!, signal).catch(() => false);
    await exited;
    await qmp.close();
  };
  return {
    pid: child.pid!, qmp, logPath, exited, kill,
    guestUdpSend: async (o) => { await qmp.execute('x-guest-udp-send', o); },
    async shutdown(): Promise<void> {
      if (child.exitCode === null && child.signalCode === null) {
        await qmp.execute('quit', undefined, { timeoutMs: QUIT_GRACE_MS }).catch(() => undefined);
        const gone = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), QUIT_GRACE_MS).unref())]);
        if (!gone) return kill('SIGKILL');
      }
      await qmp.close();
    },
  };
}

let probed: Promise<BackendFeatures> | undefined;

/** Ask a real engine VM (no NIC, no netns needed) what it supports. */
async function probeEngine(): Promise<BackendFeatures> {
  const dir = mkdtempSync(join(tmpdir(), 'switchover-probe-'));
  let vm: Omit<VmHandle, 'spec'> | undefined;
  // Ctrl-C during the probe must not leave the probe VM or its directory behind.
  const unregister = onExit(async () => { await vm?.kill(); rmSync(dir, { recursive: true, force: true }); });
  try {
    const qmpPath = join(dir, 'probe.qmp');
    vm = await startVm('probe', ['-name', 'probe', '-m', '16M', '-qmp', `unix:${qmpPath},server=on,wait=off`, '-S'], { runDir: dir, qmpPath });
    try {
      const caps = await vm.qmp.execute('query-migrate-capabilities');
      const params = await vm.qmp.execute('query-migrate-parameters');
      const v = vm.qmp.greeting.QMP.version;
      return {
        accelerator: 'engine',
        version: `${v.qemu.major}.${v.qemu.minor}.${v.qemu.micro}${v.package ? ` (${v.package.trim()})` : ''}`,
        capabilities: caps.map((c) => c.capability),
        parameters: Object.keys(params),
        // Local migration is the `local` parameter plus tap incoming-fds.
        incomingFds: 'local' in params,
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
      throw new VmLaunchError(`probing the engine backend failed: ${e.message}`, { cause: e });
    });
    return probed;
  },
  async launch(spec: VmSpec): Promise<VmHandle> {
    const argv = engineArgs(spec);
    const vm = await startVm(spec.name, argv, { netns: spec.netns, runDir: spec.runDir, qmpPath: join(spec.runDir, `${spec.name}.qmp`) });
    return { ...vm, spec };
  },
};
