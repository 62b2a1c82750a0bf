// Real networking for engine tests: a host netns with a bridge and TAPs, a client netns on a
// veth to the bridge (client 192.168.100.1/24, guest 192.168.100.2/24), and engine VM
// processes started inside the host netns on those TAPs. Names carry a random suffix so
// parallel runs never collide; destroy() removes everything, and is safe to call twice.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TestQmp } from './qmp.js';

export const CLIENT_IP = '192.168.100.1';
export const GUEST_IP = '192.168.100.2';
export const GUEST_MAC = '52:54:00:12:34:56';
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin/switchover.js');
export const UDP_TOOL = fileURLToPath(new URL('./udp-tool.js', import.meta.url));

function ip(args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export interface VmProc {
  proc: ChildProcess;
  qmpPath: string;
  qmp: TestQmp;
  stderr(): string;
  exited: Promise<number | null>;
}

export class TestNet {
  readonly id = Math.random().toString(36).slice(2, 8);
  readonly hostNs = `swa1h${this.id}`;
  readonly clientNs = `swa1c${this.id}`;
  readonly dir = mkdtempSync(join(tmpdir(), 'swa1-'));
  readonly taps: string[] = [];
  private readonly vms: VmProc[] = [];
  private readonly extra: ChildProcess[] = [];
  private destroyed = false;

  /** Builds the topology with `taps` TAPs on the bridge. */
  static create(taps = 1, multiQueue = false): TestNet {
    const n = new TestNet();
    try {
      ip(['netns', 'add', n.hostNs]);
      ip(['netns', 'add', n.clientNs]);
      const h = ['-n', n.hostNs];
      ip([...h, 'link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
      ip([...h, 'link', 'set', 'br0', 'up']);
      ip([...h, 'link', 'set', 'lo', 'up']);
      for (let i = 0; i < taps; i++) {
        const t = `tap${i}`;
        ip([...h, 'tuntap', 'add', 'dev', t, 'mode', 'tap', ...(multiQueue ? ['multi_queue'] : [])]);
        ip([...h, 'link', 'set', t, 'master', 'br0', 'up']);
        n.taps.push(t);
      }
      ip([...h, 'link', 'add', 'vh0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', n.clientNs]);
      ip([...h, 'link', 'set', 'vh0', 'master', 'br0', 'up']);
      const c = ['-n', n.clientNs];
      ip([...c, 'link', 'set', 'lo', 'up']);
      ip([...c, 'addr', 'add', `${CLIENT_IP}/24`, 'dev', 'eth0']);
      ip([...c, 'link', 'set', 'eth0', 'up']);
    } catch (e) {
      n.destroy();
      throw e;
    }
    return n;
  }

  /** Starts `switchover vm` in the host netns and connects a QMP client. */
  async startVm(name: string, args: string[], qmpConnect = true): Promise<VmProc> {
    const qmpPath = join(this.dir, `${name}.qmp`);
    const proc = spawn('ip', ['netns', 'exec', this.hostNs, process.execPath, BIN, 'vm', '-name', name,
      '-qmp', `unix:${qmpPath},server=on,wait=off`, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    proc.stderr!.on('data', (d) => { err += d; });
    const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
    const vm: VmProc = { proc, qmpPath, qmp: undefined as unknown as TestQmp, stderr: () => err, exited };
    this.vms.push(vm);
    if (qmpConnect) {
      try {
        vm.qmp = await TestQmp.connect(qmpPath);
      } catch (e) {
        throw new Error(`${(e as Error).message}; VM stderr: ${err}`, { cause: e });
      }
    }
    return vm;
  }

  /** The standard guest NIC on `tap`. */
  static nicArgs(tap: string, extra: string[] = [], guest = `ip=${GUEST_IP}/24`): string[] {
    return ['-netdev', `tap,id=n0,ifname=${tap},script=no,downscript=no`,
      '-device', `virtio-net-pci,netdev=n0,mac=${GUEST_MAC}`, '-guest', guest, ...extra];
  }

  /** Runs a command in the client netns and returns its stdout (does not throw on exit 1). */
  inClient(cmd: string[], timeoutMs = 60000): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const p = spawn('ip', ['netns', 'exec', this.clientNs, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '', stderr = '';
      p.stdout.on('data', (d) => { stdout += d; });
      p.stderr.on('data', (d) => { stderr += d; });
      const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
      p.on('close', (code) => { clearTimeout(t); resolve({ code, stdout, stderr }); });
    });
  }

  /** Starts a long-running command in the client netns; returns the process. */
  spawnInClient(cmd: string[]): ChildProcess {
    const p = spawn('ip', ['netns', 'exec', this.clientNs, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.extra.push(p);
    return p;
  }

  /** Starts a long-running command in the host netns (tcpdump on a TAP); returns the process. */
  spawnInHost(cmd: string[]): ChildProcess {
    const p = spawn('ip', ['netns', 'exec', this.hostNs, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.extra.push(p);
    return p;
  }

  /** ping from the client; returns transmitted/received counts. */
  async ping(count: number, intervalS: number, waitS = 1, dst = GUEST_IP): Promise<{ sent: number; received: number; out: string }> {
    const r = await this.inClient(['ping', '-n', '-q', '-c', String(count), '-i', String(intervalS), '-W', String(waitS), dst],
      (count * intervalS + waitS) * 1000 + 30000);
    const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
    if (!m) throw new Error(`ping output not understood: ${r.stdout} ${r.stderr}`);
    return { sent: Number(m[1]), received: Number(m[2]), out: r.stdout };
  }

  async udp(mode: 'send' | 'echo', port: number, rate: number, count: number): Promise<{ sent: number; replies: number; unique: number }> {
    const r = await this.inClient([process.execPath, UDP_TOOL, mode, GUEST_IP, String(port), String(rate), String(count)]);
    if (r.code !== 0) throw new Error(`udp-tool ${mode} failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as { sent: number; replies: number; unique: number };
  }

  /** Kills every VM started here and removes the namespaces and the temp dir. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const p of this.extra) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    for (const vm of this.vms) {
      vm.qmp?.close();
      if (vm.proc.exitCode === null && vm.proc.signalCode === null) {
        vm.proc.kill('SIGKILL');
        await Promise.race([vm.exited, new Promise((r) => setTimeout(r, 3000))]);
      }
    }
    // Kill anything left in our namespaces (a VM's child `node` after `ip netns exec` was killed).
    for (const ns of [this.hostNs, this.clientNs]) {
      try {
        const pids = ip(['netns', 'pids', ns]).split(/\s+/).filter(Boolean);
        for (const pid of pids) { try { process.kill(Number(pid), 'SIGKILL'); } catch { /* already gone */ } }
      } catch { /* namespace not there */ }
    }
    for (const ns of [this.hostNs, this.clientNs]) {
      try { ip(['netns', 'del', ns]); } catch { /* not created */ }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
