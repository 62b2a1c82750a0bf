// The engine's networked tests drive engine VMs from outside, as QEMU's functional tests drive
// QEMU: the network is harness/net's bridge topology (a host netns with the bridge and
// tap0/tap1, a client netns owning 192.168.100.1/24), each VM is `switchover vm` started in the
// host netns with lib/engine-argv.ts's command line, and it is driven over lib/qmp-client.ts.
// What is here is only what the tests add on top: starting a VM, ping and UDP from the client
// (the QMP steps they share are qmp-steps.ts). destroy() tears the topology down and verifies
// that nothing of it is left.
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTopology, type Topology } from '../../harness/net/topology.js';
import { engineArgv, type EngineVmOptions } from '../../lib/engine-argv.js';
import { QmpClient } from '../../lib/qmp-client.js';

export const CLIENT_IP = '192.168.100.1';
export const GUEST_IP = '192.168.100.2';
export const GUEST_MAC = '52:54:00:12:34:56';
const BIN = fileURLToPath(new URL('../../../bin/switchover.js', import.meta.url));
export const UDP_TOOL = fileURLToPath(new URL('./udp-tool.js', import.meta.url));
const QMP_CONNECT_TIMEOUT_MS = 15_000;

export interface VmProc {
  proc: ChildProcess;
  qmpPath: string;
  /** Connected and negotiated, unless startVm was told not to connect. */
  qmp: QmpClient;
  stderr(): string;
  exited: Promise<number | null>;
}

/** What udp-tool.ts prints for send and echo (replies, unique and reordered count echoes). */
export interface UdpToolResult { sent: number; replies: number; unique: number; reordered: number }

/** An engine VM's settings, as lib/engine-argv.ts takes them (its name and QMP path are startVm's). */
export type VmOptions = Omit<EngineVmOptions, 'name' | 'qmpPath'>;

export class TestNet {
  private readonly vms: VmProc[] = [];

  private constructor(readonly topo: Topology) {}

  /** The bridge topology; `queues` > 1 makes both TAPs multi_queue. */
  static async create(queues = 1): Promise<TestNet> {
    const topo = await createTopology({ layout: 'bridge', queues });
    if (topo.clientIp !== CLIENT_IP || topo.guestIp !== GUEST_IP) {
      await topo.teardown();
      throw new Error(`the bridge topology's addresses moved (client ${topo.clientIp}, guest ${topo.guestIp}): update engine/test/testnet.ts`);
    }
    return new TestNet(topo);
  }

  /** The run directory (mode 0700): QMP and migration sockets go here. */
  get dir(): string { return this.topo.runDir; }
  get tap0(): string { return this.topo.tap0; }
  get tap1(): string { return this.topo.tap1; }

  /** The standard guest on `tap`: the NIC with GUEST_MAC, GUEST_IP/24, `dirty-rate` if given. */
  guestOn(tap: string, over: VmOptions = {}): VmOptions {
    return { ...over, nic: { ifname: tap, mac: GUEST_MAC, ...over.nic }, guest: { ip: `${GUEST_IP}/24`, ...over.guest } };
  }

  /** Starts `switchover vm` in the host netns and (unless `connect` is false) connects QMP. */
  async startVm(name: string, vm: VmOptions, connect = true): Promise<VmProc> {
    const qmpPath = join(this.dir, `${name}.qmp`);
    const proc = this.topo.spawn('host', [process.execPath, BIN, 'vm', ...engineArgv({ ...vm, name, qmpPath })],
      { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d; });
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    const handle: VmProc = { proc, qmpPath, qmp: undefined as unknown as QmpClient, stderr: () => err, exited };
    this.vms.push(handle);
    if (connect) {
      try {
        handle.qmp = await QmpClient.connect(qmpPath, { timeoutMs: QMP_CONNECT_TIMEOUT_MS });
      } catch (e) {
        throw new Error(`VM ${name}: ${(e as Error).message}; its stderr: ${err}`, { cause: e });
      }
    }
    return handle;
  }

  /** Runs a command in the client netns; resolves with its exit code and output (also on failure). */
  async inClient(cmd: string[], timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
    const r = await this.topo.exec('client', cmd, { allowFail: true, timeoutMs });
    return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
  }

  /** Starts a long-running command in the client netns (stopped by destroy()). */
  spawnInClient(cmd: string[]): ChildProcess {
    return this.topo.spawn('client', cmd);
  }

  /** Starts a long-running command in the host netns (tcpdump on a TAP; stopped by destroy()). */
  spawnInHost(cmd: string[]): ChildProcess {
    return this.topo.spawn('host', cmd);
  }

  /** ping from the client; returns transmitted/received counts. */
  async ping(count: number, intervalS: number, waitS = 1, dst = GUEST_IP): Promise<{ sent: number; received: number; out: string }> {
    const r = await this.inClient(['ping', '-n', '-q', '-c', String(count), '-i', String(intervalS), '-W', String(waitS), dst],
      (count * intervalS + waitS) * 1000 + 30000);
    const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
    if (!m) throw new Error(`ping output not understood: ${r.stdout} ${r.stderr}`);
    return { sent: Number(m[1]), received: Number(m[2]), out: r.stdout };
  }

  /** udp-tool.ts from the client to the guest. */
  async udp(mode: 'send' | 'echo', port: number, rate: number, count: number): Promise<UdpToolResult> {
    const r = await this.inClient([process.execPath, UDP_TOOL, mode, GUEST_IP, String(port), String(rate), String(count)]);
    if (r.code !== 0) throw new Error(`udp-tool ${mode} failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as UdpToolResult;
  }

  /** Closes the QMP connections, tears the topology down (VMs included) and checks nothing is left. */
  async destroy(): Promise<void> {
    await Promise.all(this.vms.map((vm) => vm.qmp?.close()));
    await this.topo.teardown();
    await this.topo.verifyClean();
  }
}

/** Create a TestNet, run `fn` with it, always destroy it. */
export async function withNet(queues: number, fn: (n: TestNet) => Promise<void>): Promise<void> {
  const n = await TestNet.create(queues);
  try { await fn(n); } finally { await n.destroy(); }
}
