// Runs one scenario the way a person would at a terminal: build the network, boot the
// source, start captures and traffic, migrate (migration-hop.ts, with the scenario's faults),
// stop traffic (traffic-plan.ts), read the pcaps and the kernel's counters, give every lost
// packet a cause and judge (judge.ts), unless the harness or the machine was the bottleneck
// (an error). The topology is always torn down and verified clean.
//
// The runner owns the run's state: the timeline (it fixes t0 and records every phase and
// mark), the VMs, the captures. Steps get what they need and return what happened. With
// `trace`, what the run saw is kept in a folder (trace.ts) that `switchover analyze` re-judges.
import { setTimeout as sleep } from 'node:timers/promises';
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MigrationInfo, MigrationStatus } from '../../lib/qmp-protocol.js';
import { startCapture, vmTapFilter, type Capture, type CaptureStats } from '../capture/tcpdump.js';
import { countersDelta, readKernelCounters } from '../net/kernel-counters.js';
import { HopError, migrateOnce, type HopRecord } from './migration-hop.js';
import { buildHealth, stallsOf } from './health.js';
import { analyzeRunCaptures, IN_FLIGHT_WINDOW_MS, judge, judgeTeardown, type CaptureAnalysisInput, type JudgeInput } from './judge.js';
import { pingSenderLog, udpSenderLog } from '../capture/sender-log.js';
import { GUEST_MAC, RunVms } from './run-vms.js';
import { Timeline } from './timeline.js';
import { TraceRecorder, type TraceOptions } from './trace.js';
import { effectiveExpectations, unsupportedReason } from '../scenario/scenario.js';
import { createTopology, type FdbMonitor, type Topology } from '../net/topology.js';
import { finishTraffic, startTraffic } from './traffic-plan.js';
import type { Progress } from '../cli/progress.js';
import type { RunHealth, Scenario, ScenarioResult, VmBackend, VmHandle } from '../scenario/types.js';

export { GUEST_MAC } from './run-vms.js';

export interface RunOptions {
  backend: VmBackend;
  /** Copy the run's pcaps here (per scenario subfolder). */
  keepPcapsDir?: string;
  /** Keep a trace folder of this run (trace.ts). */
  trace?: TraceOptions;
  progress?: Progress;
}

/** Traffic goes on this long after the last hop, so the switchover is never at its edge. */
const TRAFFIC_TAIL_MS = 500;
/** How long a completed source may take to forward its netpass cache before its stats are read. */
const NETPASS_SETTLE_MS = 3000;

function netpassOf(np: NonNullable<MigrationInfo['netpass']>): ScenarioResult['netpass'] {
  return { cached: np.cached, forwarded: np.forwarded, dropped: np.dropped, ...(np['x-expired'] ? { expired: np['x-expired'] } : {}) };
}

/**
 * The source's netpass stats once it holds nothing more: every cached frame forwarded (or
 * expired) and no new one cached over two reads 50 ms apart; at most NETPASS_SETTLE_MS, then
 * the last read. `quit` would wait for the forwarding too, but its stats would be gone.
 */
async function settledNetpass(src: VmHandle, first: NonNullable<MigrationInfo['netpass']>): Promise<NonNullable<MigrationInfo['netpass']>> {
  let np = first;
  const deadline = Date.now() + NETPASS_SETTLE_MS;
  for (;;) {
    const idle = np.cached === np.forwarded + (np['x-expired'] ?? 0);
    if (Date.now() >= deadline) return np;
    await sleep(50);
    const next = (await src.qmp.execute('query-migrate').catch(() => undefined))?.netpass;
    if (!next) return np;
    if (idle && next.cached === np.cached) return next;
    np = next;
  }
}
const BOOT_TIMEOUT_MS = 60_000;

function emptyResult(s: Scenario, backend: VmBackend['name'], started: number): ScenarioResult {
  return {
    scenario: s.name, backend: backend, verdict: 'error', startedAt: new Date(started).toISOString(), wallMs: 0,
    migration: { status: 'none', downtimeMs: 0, totalTimeMs: 0, transferredBytes: 0 },
    traffic: [], netpass: { cached: 0, forwarded: 0, dropped: 0 }, announces: [], macFlapping: false,
    fdbMoves: [], timeline: [], expectations: [],
  };
}

/** What the runner holds while a scenario runs, and teardown releases. */
interface Live {
  s: Scenario;
  opts: RunOptions;
  topo: Topology;
  timeline: Timeline;
  vms: RunVms;
  captures: Capture[];
  fdb?: FdbMonitor;
  trace?: TraceRecorder;
}

export async function runScenario(s: Scenario, opts: RunOptions): Promise<ScenarioResult> {
  const started = Date.now();
  const result = emptyResult(s, opts.backend.name, started);
  const timeline = new Timeline();
  const phase = (p: string): void => {
    timeline.phase(p);
    opts.progress?.phase(p);
  };
  let live: Live | undefined;
  try {
    phase('probing backend');
    const features = await opts.backend.probe();
    result.accelerator = features.accelerator;
    result.backendVersion = features.version;
    const why = unsupportedReason(s, opts.backend.name, features);
    if (why) {
      result.verdict = 'unsupported';
      result.reason = why;
      return result;
    }
    const topo = await createTopology({ layout: s.topology.layout, queues: s.topology.queues });
    phase(`topology up (run ${topo.runId}, ${topo.runDir})`);
    const trace = opts.trace ? await TraceRecorder.open(opts.trace, s, topo) : undefined;
    live = { s, opts, topo, timeline, captures: [], trace, vms: new RunVms(s, opts.backend, topo, timeline, trace?.launchHooks()) };
    await execute(live, result, phase);
  } catch (e) {
    result.verdict = 'error';
    result.reason = (e as Error).message;
  } finally {
    if (live) {
      phase('tearing down');
      await teardown(live, result);
    }
    result.wallMs = Date.now() - started;
  }
  return result;
}

async function execute(live: Live, result: ScenarioResult, phase: (p: string) => void): Promise<void> {
  const { s, topo, timeline, vms, trace } = live;
  phase('booting source');
  let src = await vms.launch('src', topo.tap0, {});
  await waitGuestReachable(topo);

  phase('capturing');
  const pcaps = {
    client: join(topo.runDir, 'client.pcap'),
    tap0: join(topo.runDir, 'tap0.pcap'),
    tap1: join(topo.runDir, 'tap1.pcap'),
  };
  // TAPs both ways, so a lost packet can be followed to the VM it reached (vmTapFilter: the
  // source MAC tells the VM's own frames from those sent to it). Started together (each
  // waits for tcpdump's "listening on"); all are ready before traffic.
  const tapFilter = { filter: vmTapFilter(GUEST_MAC) };
  const started = await Promise.allSettled([
    startCapture(topo, 'client', topo.clientIface, pcaps.client),
    startCapture(topo, 'host', topo.tap0, pcaps.tap0, tapFilter),
    startCapture(topo, 'host', topo.tap1, pcaps.tap1, tapFilter),
  ]);
  for (const c of started) if (c.status === 'fulfilled') live.captures.push(c.value);
  const failed = started.find((c): c is PromiseRejectedResult => c.status === 'rejected');
  if (failed) throw failed.reason;
  trace?.captures([
    { point: 'client', ns: 'client', iface: topo.clientIface, file: pcaps.client },
    { point: 'tap0', ns: 'host', iface: topo.tap0, file: pcaps.tap0 },
    { point: 'tap1', ns: 'host', iface: topo.tap1, file: pcaps.tap1 },
  ]);
  if (topo.layout === 'bridge') live.fdb = await topo.fdbMonitor();

  const countersBefore = await readKernelCounters(topo);
  await trace?.topology('before');
  const stalls: RunHealth['engineStalls'] = [];
  // A destination reports its own stalls only until it migrates on: read them before that.
  let unread: VmHandle | undefined;
  const readDestinationStalls = async (): Promise<void> => {
    if (unread) stalls.push(...stallsOf(await unread.qmp.execute('query-migrate'), unread, 'destination'));
    unread = undefined;
  };
  phase('traffic');
  const traffic = await startTraffic(s, topo, src);
  await sleep(s.traffic.migrateAfterMs);

  const hops = s.migration.hops ?? 1;
  let tap = topo.tap0;
  let status: MigrationStatus | 'none' = 'none';
  let downtimeTotal = 0, totalTime = 0, transferred = 0, passes = 0;
  let dirtyPagesRate: number | undefined;
  let handoverMicros: number | undefined;
  let lastInfo: MigrationInfo = {};
  const unfired: string[] = [];
  /** A hop's marks and fault outcomes on the timeline; t0 is hop 1's `migrate`. */
  const record = (hop: number, r: HopRecord): void => {
    if (hop === 1 && r.migrateAt !== undefined) timeline.fix(r.migrateAt);
    timeline.marks(r.marks);
    for (const f of r.faults) {
      timeline.mark(f.line, f.t);
      if (!f.fired) unfired.push(`${f.fault}: ${f.why}`);
    }
  };
  result.migration.hops = 0;
  for (let hop = 1; hop <= hops; hop++) {
    phase(hops > 1 ? `migrating (hop ${hop}/${hops})` : 'migrating');
    await readDestinationStalls();
    const dstTap = s.migration.local ? tap : tap === topo.tap0 ? topo.tap1 : topo.tap0;
    const hopResult = await migrateOnce({ s, topo, launch: vms.launch }, src, dstTap, hop).catch((e: unknown) => {
      if (e instanceof HopError) {
        record(hop, e.record);
        throw e.cause;
      }
      throw e;
    });
    record(hop, hopResult);
    status = hopResult.status;
    lastInfo = hopResult.info;
    stalls.push(...stallsOf(hopResult.info, src, 'source'));
    downtimeTotal = Math.max(downtimeTotal, hopResult.info.downtime ?? 0);
    totalTime += hopResult.info['total-time'] ?? 0;
    transferred += hopResult.info.ram?.transferred ?? 0;
    passes = Math.max(passes, hopResult.passes);
    dirtyPagesRate = hopResult.dirtyPagesRate ?? dirtyPagesRate;
    // Recorded per hop, so a later error still leaves what did happen in the result.
    result.migration = {
      status, downtimeMs: downtimeTotal, totalTimeMs: totalTime, transferredBytes: transferred,
      setupTimeMs: lastInfo['setup-time'], hops: hop, passes, ...(dirtyPagesRate ? { dirtyPagesRate } : {}),
    };
    if (lastInfo.netpass) result.netpass = netpassOf(lastInfo.netpass);
    if (status !== 'completed') break;
    handoverMicros ??= hopResult.handoverMs * 1000;
    if (hopResult.destinationLost) {
      // The guest did not move, whatever QEMU's source says: never a pass.
      result.expectations.push({ name: `hop ${hop}: destination runs the guest`, expected: 'RESUME', actual: hopResult.destinationLost, ok: false });
      break;
    }
    // The hop returns when the destination runs; the source may still be forwarding its cache.
    if (lastInfo.netpass) result.netpass = netpassOf(await settledNetpass(src, lastInfo.netpass));
    await vms.retire(src);
    src = hopResult.dst;
    unread = src;
    tap = dstTap;
  }

  phase('finishing traffic');
  const flowsDone = await finishTraffic(traffic, Date.now() + TRAFFIC_TAIL_MS);
  const captureStats: Array<{ iface: string; stats: CaptureStats }> = [];
  for (const c of live.captures.splice(0)) captureStats.push({ iface: c.iface, stats: await c.stop() });
  const countersAfter = await readKernelCounters(topo);
  const counters = countersDelta(countersBefore, countersAfter);
  trace?.counters({ before: countersBefore, after: countersAfter, delta: counters });
  const gone = await exitedAlready(src);
  if (gone) {
    // The guest did not survive: the migration's failure, never the harness's error.
    result.expectations.push({ name: 'guest VM runs until the traffic ends', expected: 'running', actual: gone, ok: false });
    unread = undefined;
  }
  await readDestinationStalls();
  const generators = await Promise.all(traffic.udpSenders.map((u) => u.result));
  result.health = buildHealth({ topo, delta: counters, captures: captureStats, stalls, generators });
  const t0 = timeline.t0 ?? 0;
  const fdbMoves = live.fdb ? live.fdb.moves(GUEST_MAC) : [];
  await live.fdb?.stop();
  live.fdb = undefined;
  result.fdbMoves = fdbMoves.map((m) => ({ t: m.t - t0, mac: m.mac, port: m.port }));

  phase('analyzing');
  const analysis: CaptureAnalysisInput = {
    t0Micros: t0 * 1000, inFlightWindowMs: IN_FLIGHT_WINDOW_MS,
    client: { iface: topo.clientIface, file: pcaps.client },
    taps: [{ iface: topo.tap0, file: pcaps.tap0 }, { iface: topo.tap1, file: pcaps.tap1 }],
    targetTap: s.migration.local ? topo.tap0 : topo.tap1, guestMac: GUEST_MAC, local: s.migration.local,
    ...(handoverMicros !== undefined ? { handoverMicros } : {}),
    layout: topo.layout, guestIp: topo.guestIp,
    vmLives: vms.lives(t0).map((l) => ({ ...l, fromMs: Number.isFinite(l.fromMs) ? l.fromMs : null })),
    senderLogs: [
      ...(flowsDone.ping ? [pingSenderLog(flowsDone.ping)] : []),
      ...generators.map(udpSenderLog),
    ],
    ...(s.deadlineMs !== undefined ? { deadlineMs: s.deadlineMs } : {}),
  };
  Object.assign(result, await analyzeRunCaptures(analysis, result.health));
  await readGuestCounters(live.opts.backend, src, result);

  if (live.opts.keepPcapsDir) {
    const dir = join(live.opts.keepPcapsDir, s.name);
    mkdirSync(dir, { recursive: true });
    result.pcaps = Object.entries(pcaps).map(([k, f]) => {
      const to = join(dir, `${k}.pcap`);
      copyFileSync(f, to);
      return to;
    });
  }
  const judging: JudgeInput = {
    expectations: effectiveExpectations(s, live.opts.backend.name), flows: s.traffic.flows,
    runChecks: [...result.expectations], unfired, guestGone: gone !== undefined,
    ...(flowsDone.ping ? { pingLostSeqs: flowsDone.ping.lostSeqs } : {}),
  };
  trace?.judging(analysis, judging);
  judge(result, judging);
}

/** Why `vm` is gone, if its process has exited (a QEMU guest that panicked exits: -no-reboot). */
async function exitedAlready(vm: VmHandle): Promise<string | undefined> {
  const x = await Promise.race([vm.exited, sleep(0).then(() => undefined)]);
  if (!x) return undefined;
  // The run dir goes with teardown: quote the guest's last words (the QEMU backend's console).
  const consoleLog = 'consoleLog' in vm && typeof vm.consoleLog === 'string' ? vm.consoleLog : undefined;
  const last = consoleLog && existsSync(consoleLog) ? readFileSync(consoleLog, 'utf8').split('\n').filter((l) => /panic|BUG|Oops/.test(l)).at(-1)?.trim() : undefined;
  return `${vm.spec.name} exited (${x.signal ?? `code ${x.code}`})${last ? `; its console: ${last.slice(0, 200)}` : ''}`;
}

/** The guest answers a ping from the client: booted and on the network. */
async function waitGuestReachable(topo: Topology): Promise<void> {
  const deadline = Date.now() + BOOT_TIMEOUT_MS;
  let last = '';
  while (Date.now() < deadline) {
    try {
      await topo.exec('client', ['ping', '-c', '1', '-W', '1', topo.guestIp]);
      return;
    } catch (e) {
      last = (e as Error).message;
      await sleep(100);
    }
  }
  throw new Error(`guest ${topo.guestIp} did not answer ping within ${BOOT_TIMEOUT_MS / 1000} s: ${last}`);
}

async function readGuestCounters(backend: VmBackend, vm: VmHandle, result: ScenarioResult): Promise<void> {
  if (backend.name !== 'engine') return;
  const info = await vm.qmp.execute('x-query-guest-net').catch(() => undefined);
  if (!info) return;
  result.guestCounters = info.udp.filter((c) => c.received > 0)
    .map((c) => ({ port: c.port, received: c.received, missing: c.missing, duplicates: c.duplicates }));
}

// ---- teardown ------------------------------------------------------------------------------

async function teardown(live: Live, result: ScenarioResult): Promise<void> {
  const { topo, trace } = live;
  for (const c of live.captures) await c.stop().catch(() => undefined);
  await live.fdb?.stop().catch(() => undefined);
  // The trace takes the network as the run left it, and the VMs' logs once they have quit;
  // both live in the run directory, which the topology's teardown removes.
  await trace?.topology('after');
  const errors = await live.vms.shutdownAll();
  trace?.copyRunFiles(live.vms.launched.map((l) => l.vm));
  await topo.teardown().catch((e: Error) => errors.push(e.message));
  await topo.verifyClean().catch((e: Error) => errors.push(e.message));
  // Timeline times are absolute until here; the report wants them relative to `migrate`.
  result.timeline = live.timeline.relative();
  judgeTeardown(result, errors);
  await trace?.finish(result, live.timeline, errors);
}
