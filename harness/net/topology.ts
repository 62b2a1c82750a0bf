// The run's network, Mininet-small: create it, use it, tear it down, verify nothing is left.
//
// Two layouts, both with a host netns (where the TAPs and the VMs live) and a client netns
// (where traffic comes from), joined by a veth:
//
//   bridge   host: bridge <- tap0, tap1, veth host end.      client: 192.168.100.1/24.
//            The guest is 192.168.100.2/24 on the same L2; the bridge learns the guest MAC
//            on whichever TAP speaks, so switchover() has nothing to do.
//   routed   QEMU's tests/functional/x86_64/test_tap_migration.py: the host IP 192.168.100.1/24
//            and MAC e6:1d:44:b5:03:5d sit on tap0 and are moved to tap1 at switchover, as
//            management would (switch_network_to_tap2() there). Here the host netns also
//            routes for the client: client 192.168.200.1/24 on the veth, host end
//            192.168.200.254/24, client default route via the host; guest 192.168.100.2/24
//            with gateway 192.168.100.1.
//
// The runner reads clientIp/guestIp/guestGw from the Topology instead of hardcoding them.
// IPv6 is disabled in both namespaces so captures hold only the traffic we send.
//
// API
//   createTopology({ layout, queues, runId? }) -> Promise<Topology>
//   withTopology(opts, fn)      create, run fn, always tear down (also on SIGINT/SIGTERM)
//   Topology: names, runDir, clientIp/guestIp/guestGw/..., exec(ns, argv), spawn(ns, argv),
//             switchover(), fdbMonitor(), teardown() (idempotent), verifyClean()
import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { onExit } from './cleanup.js';
import { isRoot, privileged, runPrivileged, signalProcess, requireTools, start, type RunOptions, type RunResult, type StartOptions, type Subprocess } from './exec.js';
import { createRunDir, newRunId, runNames, type RunNames } from './names.js';
import type { Layout } from '../scenario/types.js';

export type NsRole = 'host' | 'client';

export interface TopologyOptions { layout: Layout; queues: number; runId?: string }

export type SpawnOptions = Pick<StartOptions, 'stdio' | 'env'>;

export interface FdbMove { t: number; mac: string; port: string; deleted: boolean }
export interface FdbMonitor {
  /** Every FDB event seen so far (t = Date.now() at receipt), and the initial table as t=start. */
  readonly events: readonly FdbMove[];
  /** Events for one MAC where its port changed (or it was learned/deleted), in order. */
  moves(mac: string): FdbMove[];
  stop(): Promise<void>;
}

export interface Topology {
  readonly layout: Layout;
  readonly queues: number;
  readonly names: RunNames;
  readonly runId: string;
  /** Private run directory (mode 0700): QMP sockets, logs, pcaps. Removed by teardown. */
  readonly runDir: string;
  readonly hostNs: string;
  readonly clientNs: string;
  readonly tap0: string;
  readonly tap1: string;
  /** The bridge (bridge layout only). */
  readonly bridge?: string;
  readonly clientIface: string;
  readonly clientIp: string;
  readonly guestIp: string;
  readonly guestPrefix: number;
  /** The guest's default gateway (routed layout), else undefined. */
  readonly guestGw?: string;
  /** Routed layout: the host address and MAC that move from tap0 to tap1. */
  readonly hostIp?: string;
  readonly hostMac?: string;
  /** nsfs inodes of the host and client netns (for leftovers() after the names are gone). */
  readonly netnsInodes: readonly number[];
  /** Which TAP currently carries the host address (routed); tap0 until switchover(). */
  readonly activeTap: string;
  nsName(ns: NsRole): string;
  exec(ns: NsRole, argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
  spawn(ns: NsRole, argv: readonly string[], opts?: SpawnOptions): Subprocess;
  switchover(): Promise<void>;
  fdbMonitor(): Promise<FdbMonitor>;
  teardown(): Promise<void>;
  verifyClean(): Promise<void>;
}

/** The MAC QEMU's test_tap_migration.py gives the host TAP (TAP_MAC). */
export const ROUTED_HOST_MAC = 'e6:1d:44:b5:03:5d';
const GUEST_IP = '192.168.100.2';
const BRIDGE_CLIENT_IP = '192.168.100.1';
const ROUTED_HOST_IP = '192.168.100.1';
const ROUTED_CLIENT_IP = '192.168.200.1';
const ROUTED_HOST_VETH_IP = '192.168.200.254';
const KILL_GRACE_MS = 2_000;

function ipBatch(ns: string | undefined, lines: string[]): Promise<RunResult> {
  // `ip -batch -` reads one ip command per line: one process for many steps, no shell.
  return runPrivileged(ns ? ['ip', '-n', ns, '-batch', '-'] : ['ip', '-batch', '-'], { input: lines.join('\n') + '\n' });
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => { clearTimeout(timer); resolve(true); });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

class NetTopology implements Topology {
  readonly names: RunNames;
  readonly runId: string;
  readonly runDir: string;
  readonly clientIp: string;
  readonly guestIp = GUEST_IP;
  readonly guestPrefix = 24;
  readonly guestGw?: string;
  readonly hostIp?: string;
  readonly hostMac?: string;
  activeTap: string;
  private readonly children = new Set<ChildProcess>();
  /** nsfs inodes of our namespaces: a process still inside one is found even after `netns del`. */
  readonly netnsInodes: number[] = [];
  private tornDown?: Promise<void>;
  private readonly unregister: () => void;

  constructor(readonly layout: Layout, readonly queues: number, runId: string) {
    this.names = runNames(runId);
    this.runId = runId;
    this.runDir = createRunDir(runId);
    this.activeTap = this.names.tap0;
    if (layout === 'routed') {
      this.clientIp = ROUTED_CLIENT_IP;
      this.guestGw = ROUTED_HOST_IP;
      this.hostIp = ROUTED_HOST_IP;
      this.hostMac = ROUTED_HOST_MAC;
    } else {
      this.clientIp = BRIDGE_CLIENT_IP;
    }
    // Registered before anything exists, so a half-built topology is torn down too.
    this.unregister = onExit(() => this.teardown());
  }

  get hostNs(): string { return this.names.hostNs; }
  get clientNs(): string { return this.names.clientNs; }
  get tap0(): string { return this.names.tap0; }
  get tap1(): string { return this.names.tap1; }
  get bridge(): string | undefined { return this.layout === 'bridge' ? this.names.bridge : undefined; }
  get clientIface(): string { return this.names.vethClient; }

  nsName(ns: NsRole): string {
    if (ns === 'host') return this.names.hostNs;
    if (ns === 'client') return this.names.clientNs;
    throw new Error(`unknown namespace role ${JSON.stringify(ns)}: use 'host' or 'client'`);
  }

  async build(): Promise<void> {
    const n = this.names;
    const mq = this.queues > 1 ? ' multi_queue' : '';
    await ipBatch(undefined, [`netns add ${n.hostNs}`, `netns add ${n.clientNs}`]);
    for (const ns of [n.hostNs, n.clientNs]) this.netnsInodes.push(statSync(`/run/netns/${ns}`).ino);
    const quiet = ['sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'];
    await this.exec('host', [...quiet, ...(this.layout === 'routed' ? ['net.ipv4.ip_forward=1'] : [])]);
    await this.exec('client', quiet);
    const host = [
      'link set lo up',
      `tuntap add dev ${n.tap0} mode tap${mq}`,
      `tuntap add dev ${n.tap1} mode tap${mq}`,
      `link add ${n.vethHost} type veth peer name ${n.vethClient} netns ${n.clientNs}`,
    ];
    const client = ['link set lo up', `link set ${n.vethClient} up`];
    if (this.layout === 'bridge') {
      host.push(
        `link add ${n.bridge} type bridge`,
        `link set ${n.tap0} master ${n.bridge}`, `link set ${n.tap1} master ${n.bridge}`,
        `link set ${n.vethHost} master ${n.bridge}`,
        `link set ${n.bridge} up`,
      );
      client.push(`addr add ${BRIDGE_CLIENT_IP}/24 dev ${n.vethClient}`);
    } else {
      host.push(
        // Both TAPs carry the host MAC from the start (two L2 segments, no clash): the
        // destination's first frames, sent before switchover() moves the address, are then
        // addressed to this host already and get routed instead of dropped as other-host.
        `link set dev ${n.tap0} address ${ROUTED_HOST_MAC}`,
        `link set dev ${n.tap1} address ${ROUTED_HOST_MAC}`,
        `addr add ${ROUTED_HOST_IP}/24 dev ${n.tap0}`,
        `addr add ${ROUTED_HOST_VETH_IP}/24 dev ${n.vethHost}`,
      );
      client.push(`addr add ${ROUTED_CLIENT_IP}/24 dev ${n.vethClient}`, `route add default via ${ROUTED_HOST_VETH_IP}`);
    }
    host.push(`link set ${n.tap0} up`, `link set ${n.tap1} up`, `link set ${n.vethHost} up`);
    await ipBatch(n.hostNs, host);
    await ipBatch(n.clientNs, client);
  }

  exec(ns: NsRole, argv: readonly string[], opts?: RunOptions): Promise<RunResult> {
    return runPrivileged(['ip', 'netns', 'exec', this.nsName(ns), ...argv], opts);
  }

  spawn(ns: NsRole, argv: readonly string[], opts: SpawnOptions = {}): Subprocess {
    if (this.tornDown) throw new Error(`topology ${this.runId} is torn down: cannot start ${argv[0]}`);
    // Own process group: teardown signals the whole group, and a terminal's Ctrl-C reaches
    // only the harness, which then stops these in order (tcpdump flushes, VMs quit).
    const child = start(privileged(['ip', 'netns', 'exec', this.nsName(ns), ...argv]), { ...opts, detached: true });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    child.once('error', () => this.children.delete(child));
    return child;
  }

  async switchover(): Promise<void> {
    if (this.layout !== 'routed') return; // the bridge relearns the MAC by itself
    const n = this.names;
    const from = this.activeTap, to = from === n.tap0 ? n.tap1 : n.tap0;
    // The steps of switch_network_to_tap2() in QEMU's test_tap_migration.py (MAC and address
    // onto the new TAP), but make-before-break: QEMU's test takes both TAPs down first, an
    // outage of the management step itself that would hide what migration costs. A TAP
    // allows a live MAC change (IFF_LIVE_ADDR_CHANGE); while both carry the address the old
    // prefix route stays first, and deleting it from the old TAP hands the route over.
    await ipBatch(n.hostNs, [
      `link set dev ${to} address ${ROUTED_HOST_MAC}`,
      `addr add ${ROUTED_HOST_IP}/24 dev ${to}`,
      `link set ${to} up`,
      `addr del ${ROUTED_HOST_IP}/24 dev ${from}`,
    ]);
    this.activeTap = to;
  }

  async fdbMonitor(): Promise<FdbMonitor> {
    if (this.layout !== 'bridge') throw new Error('fdbMonitor needs the bridge layout: the routed layout has no bridge');
    const events: FdbMove[] = [];
    const start = Date.now();
    const child = this.spawn('host', ['bridge', 'monitor', 'fdb']);
    let buf = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      const t = Date.now();
      buf += d;
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const line of lines) {
        const ev = parseFdbLine(line, t, this.names.bridge);
        if (ev) events.push(ev);
      }
    });
    child.stderr!.resume();
    // The initial table: where each MAC is before anything moves.
    const shown = await runPrivileged(['bridge', '-n', this.names.hostNs, 'fdb', 'show', 'br', this.names.bridge]);
    const initial = shown.stdout.split('\n').map((l) => parseFdbLine(l, start, this.names.bridge)).filter((e): e is FdbMove => !!e);
    events.unshift(...initial);
    return {
      events,
      moves(mac: string): FdbMove[] {
        const want = mac.toLowerCase();
        const out: FdbMove[] = [];
        for (const e of events) {
          if (e.mac !== want) continue;
          const prev = out[out.length - 1];
          if (!prev || prev.port !== e.port || prev.deleted !== e.deleted) out.push(e);
        }
        return out;
      },
      stop: async () => {
        if (child.exitCode === null && child.signalCode === null) {
          await signalProcess(child.pid!, 'SIGTERM');
          await waitExit(child, KILL_GRACE_MS);
        }
      },
    };
  }

  teardown(): Promise<void> {
    this.tornDown ??= this.doTeardown();
    return this.tornDown;
  }

  private async doTeardown(): Promise<void> {
    const errors: string[] = [];
    // 1. Processes we started: TERM the group, then KILL what is left after a grace period.
    const children = [...this.children];
    await Promise.all(children.map(async (c) => {
      if (c.pid === undefined) return;
      await signalProcess(-c.pid, 'SIGTERM').catch(() => signalProcess(c.pid!, 'SIGTERM'));
      if (!(await waitExit(c, KILL_GRACE_MS))) {
        await signalProcess(-c.pid, 'SIGKILL').catch(() => signalProcess(c.pid!, 'SIGKILL'));
        await waitExit(c, KILL_GRACE_MS);
      }
    }));
    // 2. Anything else still inside our namespaces (VMs a backend started, strays): a netns
    //    outlives `ip netns del` while a process holds it, and with it the TAPs. TERM first
    //    so VMs quit cleanly, then KILL what is left.
    const inside = async (): Promise<number[]> => {
      const pids: number[] = [];
      for (const ns of [this.names.hostNs, this.names.clientNs]) {
        const r = await runPrivileged(['ip', 'netns', 'pids', ns], { allowFail: true });
        pids.push(...r.stdout.split(/\s+/).filter(Boolean).map(Number).filter((p) => p !== process.pid));
      }
      return pids;
    };
    let pids = await inside();
    for (const pid of pids) await signalProcess(pid, 'SIGTERM').catch(() => false);
    for (let waited = 0; pids.length && waited < KILL_GRACE_MS; waited += 50) {
      await new Promise((r) => setTimeout(r, 50));
      pids = pids.filter(alive);
    }
    for (const pid of pids) await signalProcess(pid, 'SIGKILL').catch((e: Error) => errors.push(e.message));
    // 3. The namespaces; deleting a netns deletes its links (the veth pair with it).
    for (const ns of [this.names.hostNs, this.names.clientNs]) {
      const r = await runPrivileged(['ip', 'netns', 'del', ns], { allowFail: true });
      if (r.exitCode !== 0 && !/No such file|Cannot remove namespace file/.test(r.stderr)) errors.push(r.stderr.trim());
    }
    // 4. The run directory (QMP sockets, logs, pcaps not kept elsewhere).
    try {
      rmSync(this.runDir, { recursive: true, force: true });
    } catch (e) {
      errors.push(`${this.runDir}: ${(e as Error).message}`);
    }
    this.unregister();
    if (errors.length) throw new Error(`teardown of run ${this.runId} incomplete:\n  ${errors.join('\n  ')}`);
  }

  async verifyClean(): Promise<void> {
    const left = await leftovers(this.names, this.runDir, this.netnsInodes);
    if (left.length) throw new Error(`run ${this.runId} left things behind:\n  ${left.join('\n  ')}`);
  }
}

/**
 * What of a run still exists: netns, links in the root netns, processes (by command line, or
 * by living in one of the run's namespaces, given their nsfs inodes), sockets, the run dir.
 */
export async function leftovers(names: RunNames, runDir: string, netnsInodes: readonly number[] = []): Promise<string[]> {
  const left: string[] = [];
  const nsList = (await runPrivileged(['ip', 'netns', 'list'])).stdout;
  for (const ns of [names.hostNs, names.clientNs]) {
    if (nsList.split('\n').some((l) => l.split(' ')[0] === ns)) left.push(`netns ${ns}`);
  }
  const links = (await runPrivileged(['ip', '-o', 'link', 'show'])).stdout;
  for (const name of [names.bridge, names.tap0, names.tap1, names.vethHost, names.vethClient]) {
    if (new RegExp(`^\\d+: ${name.replace(/\./g, '\\.')}[@:]`, 'm').test(links)) left.push(`link ${name}`);
  }
  // Processes: anything whose command line names the run (netns, links or run dir), or that
  // lives in one of its namespaces (ping, for one, names nothing of the run).
  const marks = [names.hostNs, names.clientNs, runDir, names.tap0, names.tap1, names.bridge, names.vethHost, names.vethClient];
  const nsLinks = new Set(netnsInodes.map((ino) => `net:[${ino}]`));
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
    } catch {
      continue; // exited while we looked
    }
    if (!cmdline || !alive(Number(entry))) continue;
    let inOurNs = false;
    try {
      inOurNs = nsLinks.has(readlinkSync(`/proc/${entry}/ns/net`));
    } catch {
      // another user's process (EACCES) or gone: judged by its command line alone
    }
    if (inOurNs || marks.some((m) => cmdline.includes(m))) left.push(`process ${entry}: ${cmdline.split('\0').join(' ').trim()}`);
  }
  // UNIX sockets bound under the run dir (QMP, migration).
  try {
    for (const line of readFileSync('/proc/net/unix', 'utf8').split('\n')) {
      if (line.includes(runDir)) left.push(`socket ${line.trim().split(/\s+/).pop()}`);
    }
  } catch {
    // /proc/net/unix unreadable: nothing to report from it
  }
  if (existsSync(runDir)) left.push(`directory ${runDir}`);
  return left;
}

/** One `bridge monitor fdb` / `bridge fdb show` line -> an event, for MACs on ports of `bridge`. */
export function parseFdbLine(line: string, t: number, bridge: string): FdbMove | undefined {
  // "52:54:00:12:34:56 dev tap0 master br0 " ; "Deleted 52:54:00:12:34:56 dev tap0 master br0 "
  // Entries without "master" are the port's own (permanent, self) addresses: not learned moves.
  const m = /^(Deleted )?([0-9a-f]{2}(?::[0-9a-f]{2}){5}) dev (\S+)(.*)$/i.exec(line.trim());
  if (!m) return undefined;
  const rest = m[4] ?? '';
  if (!new RegExp(`\\bmaster ${bridge.replace(/\./g, '\\.')}\\b`).test(rest) || /\bpermanent\b/.test(rest)) return undefined;
  return { t, mac: m[2]!.toLowerCase(), port: m[3]!, deleted: !!m[1] };
}

export async function createTopology(opts: TopologyOptions): Promise<Topology> {
  if (opts.layout !== 'bridge' && opts.layout !== 'routed') {
    throw new Error(`unknown layout ${JSON.stringify(opts.layout)}: use 'bridge' or 'routed'`);
  }
  if (!Number.isInteger(opts.queues) || opts.queues < 1 || opts.queues > 16) {
    throw new Error(`queues must be an integer from 1 to 16, got ${JSON.stringify(opts.queues)}`);
  }
  // sudo too unless root, before the run dir exists: a run that cannot get privilege leaves nothing.
  requireTools(['ip', 'bridge', 'sysctl', ...(isRoot() ? [] : ['sudo'])]);
  const topo = new NetTopology(opts.layout, opts.queues, opts.runId ?? newRunId());
  try {
    await topo.build();
  } catch (e) {
    await topo.teardown().catch(() => undefined);
    throw new Error(`could not build the ${opts.layout} topology for run ${topo.runId}: ${(e as Error).message}`, { cause: e });
  }
  return topo;
}

/** Create a topology, run `fn`, and always tear it down (also on SIGINT/SIGTERM, via onExit). */
export async function withTopology<T>(opts: TopologyOptions, fn: (topo: Topology) => Promise<T>): Promise<T> {
  const topo = await createTopology(opts);
  try {
    return await fn(topo);
  } finally {
    await topo.teardown();
  }
}
