// Runs one scenario the way a person would at a terminal: build the network, boot the
// source, start captures and traffic, migrate (migration-hop.ts, with the scenario's faults),
// stop traffic (traffic-plan.ts), read the pcaps and the kernel's counters, give every lost
// packet a cause (loss-causes.ts), judge, unless the harness or the machine was the
// bottleneck (an error). The topology is always torn down and verified clean.
import { setTimeout as sleep } from 'node:timers/promises';
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { MigrationInfo, MigrationStatus } from '../../lib/qmp-protocol.js';
import { startCapture, vmTapFilter, type CaptureStats } from '../capture/tcpdump.js';
import { countersDelta, readKernelCounters } from '../net/kernel-counters.js';
import { attributeLoss, tapPeriods } from '../capture/loss-causes.js';
import { migrateOnce } from './migration-hop.js';
import { analyzePcap, type PcapAnalysis, type PcapFlow } from '../capture/analyzer.js';
import { buildHealth, stallsOf } from './health.js';
import { GUEST_MAC, Run, type RunOptions } from './run-state.js';
import { effectiveExpectations, unsupportedReason } from '../scenario/scenario.js';
import { createTopology } from '../net/topology.js';
import { crossCheckPing, finishTraffic, startTraffic } from './traffic-plan.js';
import type { LossCause, RunHealth, Scenario, ScenarioResult, VmBackend, VmHandle } from '../scenario/types.js';
import { checkExpectations, checkFlowsCaptured, harnessBottlenecks, verdictOf } from '../verdict/verdict.js';

export { GUEST_MAC, type RunOptions } from './run-state.js';

/** Traffic goes on this long after the last hop, so the switchover is never at its edge. */
const TRAFFIC_TAIL_MS = 500;
/** Unanswered requests this close to the end of the capture are in flight, not lost: our
 * generators stop on a signal, and a reply here takes well under a millisecond. */
const IN_FLIGHT_WINDOW_MS = 300;
const BOOT_TIMEOUT_MS = 60_000;

function emptyResult(s: Scenario, backend: VmBackend['name'], started: number): ScenarioResult {
  return {
    scenario: s.name, backend: backend, verdict: 'error', startedAt: new Date(started).toISOString(), wallMs: 0,
    migration: { status: 'none', downtimeMs: 0, totalTimeMs: 0, transferredBytes: 0 },
    traffic: [], netpass: { cached: 0, forwarded: 0, dropped: 0 }, announces: [], macFlapping: false,
    fdbMoves: [], timeline: [], expectations: [],
  };
}

export async function runScenario(s: Scenario, opts: RunOptions): Promise<ScenarioResult> {
  const started = Date.now();
  const result = emptyResult(s, opts.backend.name, started);
  const phase = (p: string): void => opts.progress?.phase(p);
  let run: Run | undefined;
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
    run = new Run(s, opts, topo);
    await execute(run, result, phase);
  } catch (e) {
    result.verdict = 'error';
    result.reason = (e as Error).message;
  } finally {
    if (run) {
      phase('tearing down');
      await teardown(run, result);
    }
    result.wallMs = Date.now() - started;
  }
  return result;
}

async function execute(run: Run, result: ScenarioResult, phase: (p: string) => void): Promise<void> {
  const { s, topo } = run;
  phase('booting source');
  let src = await run.launch('src', topo.tap0, {});
  await waitGuestReachable(run);

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
  for (const c of started) if (c.status === 'fulfilled') run.captures.push(c.value);
  const failed = started.find((c): c is PromiseRejectedResult => c.status === 'rejected');
  if (failed) throw failed.reason;
  if (topo.layout === 'bridge') run.fdb = await topo.fdbMonitor();

  const countersBefore = await readKernelCounters(topo);
  const stalls: RunHealth['engineStalls'] = [];
  // A destination reports its own stalls only until it migrates on: read them before that.
  let unread: VmHandle | undefined;
  const readDestinationStalls = async (): Promise<void> => {
    if (unread) stalls.push(...stallsOf(await unread.qmp.execute('query-migrate'), unread, 'destination'));
    unread = undefined;
  };
  phase('traffic');
  const traffic = await startTraffic(run, src);
  await sleep(s.traffic.migrateAfterMs);

  const hops = s.migration.hops ?? 1;
  let tap = topo.tap0;
  let status: MigrationStatus | 'none' = 'none';
  let downtimeTotal = 0, totalTime = 0, transferred = 0, passes = 0;
  let dirtyPagesRate: number | undefined;
  let handoverMicros: number | undefined;
  let lastInfo: MigrationInfo = {};
  result.migration.hops = 0;
  for (let hop = 1; hop <= hops; hop++) {
    phase(hops > 1 ? `migrating (hop ${hop}/${hops})` : 'migrating');
    await readDestinationStalls();
    const dstTap = s.migration.local ? tap : tap === topo.tap0 ? topo.tap1 : topo.tap0;
    const hopResult = await migrateOnce(run, src, dstTap, hop);
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
    if (lastInfo.netpass) {
      result.netpass = { cached: lastInfo.netpass.cached, forwarded: lastInfo.netpass.forwarded, dropped: lastInfo.netpass.dropped };
    }
    if (status !== 'completed') break;
    handoverMicros ??= hopResult.handoverMs * 1000;
    if (hopResult.destinationLost) {
      // The guest did not move, whatever QEMU's source says: never a pass.
      result.expectations.push({ name: `hop ${hop}: destination runs the guest`, expected: 'RESUME', actual: hopResult.destinationLost, ok: false });
      break;
    }
    src = hopResult.dst;
    unread = src;
    tap = dstTap;
  }

  phase('finishing traffic');
  const flowsDone = await finishTraffic(traffic, Date.now() + TRAFFIC_TAIL_MS);
  const captureStats: Array<{ iface: string; stats: CaptureStats }> = [];
  for (const c of run.captures.splice(0)) captureStats.push({ iface: c.iface, stats: await c.stop() });
  const counters = countersDelta(countersBefore, await readKernelCounters(topo));
  const gone = await exitedAlready(src);
  if (gone) {
    // The guest did not survive: the migration's failure, never the harness's error.
    result.expectations.push({ name: 'guest VM runs until the traffic ends', expected: 'running', actual: gone, ok: false });
    unread = undefined;
  }
  await readDestinationStalls();
  result.health = buildHealth({
    topo, delta: counters, captures: captureStats, stalls,
    generators: await Promise.all(traffic.udpSenders.map((u) => u.result)),
  });
  const fdbMoves = run.fdb ? run.fdb.moves(GUEST_MAC) : [];
  await run.fdb?.stop();
  run.fdb = undefined;
  result.fdbMoves = fdbMoves.map((m) => ({ t: m.t - run.t0, mac: m.mac, port: m.port }));

  phase('analyzing');
  const t0Micros = run.t0 * 1000;
  const client = await analyzePcap(pcaps.client, { t0Micros, iface: topo.clientIface, inFlightWindowMs: IN_FLIGHT_WINDOW_MS });
  const targetTap = s.migration.local ? topo.tap0 : topo.tap1;
  const taps: PcapAnalysis[] = [];
  for (const [iface, file] of [[topo.tap0, pcaps.tap0], [topo.tap1, pcaps.tap1]] as const) {
    taps.push(await analyzePcap(file, {
      t0Micros, iface, seqEvidence: true,
      // Announces and MAC flapping: the target's. Local migration keeps the TAP: the source
      // spoke on it until stop; only hop 1 matters.
      ...(iface !== targetTap ? {} : { guestMac: GUEST_MAC, ...(s.migration.local ? {} : { handoverMicros: handoverMicros ?? Number.MAX_SAFE_INTEGER }) }),
    }));
  }
  const target = taps.find((a) => a.iface === targetTap)!;
  const causes = lossCausesOf(run, client.flows, taps, result.health);
  client.flows.forEach((f, i) => { f.lossCauses = causes[i]; });
  result.traffic = client.flows;
  result.announces = target.announces;
  result.macFlapping = !s.migration.local && target.macFlapping;
  if (flowsDone.ping) crossCheckPing(result, flowsDone.ping);
  await readGuestCounters(run, src, result);

  if (run.opts.keepPcapsDir) {
    const dir = join(run.opts.keepPcapsDir, s.name);
    mkdirSync(dir, { recursive: true });
    result.pcaps = Object.entries(pcaps).map(([k, f]) => {
      const to = join(dir, `${k}.pcap`);
      copyFileSync(f, to);
      return to;
    });
  }
  result.expectations.push(...checkExpectations(result, effectiveExpectations(s, run.opts.backend.name)));
  result.expectations.push(...checkFlowsCaptured(s.traffic.flows, result));
  for (const u of run.unfired) result.expectations.push({ name: 'fault fired', expected: 'fired', actual: u, ok: false });
  result.verdict = verdictOf(result.expectations);
  if (result.verdict === 'fail') {
    result.reason = result.expectations.filter((c) => !c.ok).map((c) => `${c.name}: expected ${c.expected}, got ${c.actual}`).join('; ');
  }
  // A guest that died stops reading its TAP: that loss is the crash's, not a slow harness.
  const bottlenecks = gone ? [] : harnessBottlenecks(result, s.traffic.flows);
  if (bottlenecks.length) {
    result.reason = `the harness or the machine was the bottleneck, so this run cannot judge the migration (its expectations ${result.verdict === 'pass' ? 'held' : 'failed'}): ${bottlenecks.join('; ')}`;
    result.verdict = 'error';
  }
}

/** Where each lost packet of the client's flows died: the TAP captures, the counters, and
 * who read which TAP when. */
function lossCausesOf(run: Run, flows: PcapFlow[], taps: PcapAnalysis[], h: RunHealth): LossCause[][] {
  return attributeLoss({
    flows, taps: taps.map((a) => ({ tap: a.iface, seen: a.seen! })), periods: tapPeriods(run.vmLives()),
    tapTxDropped: Object.fromEntries(h.taps.map((t) => [t.name, t.txDropped])), clientVeth: h.clientVeth,
    arpUnresolvedDiscards: h.arpUnresolvedDiscards, layout: run.topo.layout, guestIp: run.topo.guestIp,
  });
}

/** Why `vm` is gone, if its process has exited (a QEMU guest that panicked exits: -no-reboot). */
async function exitedAlready(vm: VmHandle): Promise<string | undefined> {
  const x = await Promise.race([vm.exited, sleep(0).then(() => undefined)]);
  if (!x) return undefined;
  // The run dir goes with teardown: quote the guest's last words (the QEMU backend's console).
  const consoleLog = join(dirname(vm.logPath), `${vm.spec.name}.console.log`);
  const last = existsSync(consoleLog) ? readFileSync(consoleLog, 'utf8').split('\n').filter((l) => /panic|BUG|Oops/.test(l)).at(-1)?.trim() : undefined;
  return `${vm.spec.name} exited (${x.signal ?? `code ${x.code}`})${last ? `; its console: ${last.slice(0, 200)}` : ''}`;
}

/** The guest answers a ping from the client: booted and on the network. */
async function waitGuestReachable(run: Run): Promise<void> {
  const deadline = Date.now() + BOOT_TIMEOUT_MS;
  let last = '';
  while (Date.now() < deadline) {
    try {
      await run.topo.exec('client', ['ping', '-c', '1', '-W', '1', run.topo.guestIp]);
      return;
    } catch (e) {
      last = (e as Error).message;
      await sleep(100);
    }
  }
  throw new Error(`guest ${run.topo.guestIp} did not answer ping within ${BOOT_TIMEOUT_MS / 1000} s: ${last}`);
}

async function readGuestCounters(run: Run, vm: VmHandle, result: ScenarioResult): Promise<void> {
  if (run.opts.backend.name !== 'engine') return;
  const info = await vm.qmp.execute('x-query-guest-net').catch(() => undefined);
  if (!info) return;
  result.guestCounters = info.udp.filter((c) => c.received > 0)
    .map((c) => ({ port: c.port, received: c.received, missing: c.missing, duplicates: c.duplicates }));
}

// ---- teardown ------------------------------------------------------------------------------

async function teardown(run: Run, result: ScenarioResult): Promise<void> {
  const errors: string[] = [];
  for (const c of run.captures) await c.stop().catch(() => undefined);
  await run.fdb?.stop().catch(() => undefined);
  await run.relay?.close().catch(() => undefined);
  for (const vm of run.vms) await vm.shutdown().catch((e: Error) => errors.push(`${vm.spec.name}: ${e.message}`));
  await run.topo.teardown().catch((e: Error) => errors.push(e.message));
  await run.topo.verifyClean().catch((e: Error) => errors.push(e.message));
  // Timeline times are absolute until here; the report wants them relative to `migrate`.
  const origin = run.t0 || run.timeline[0]?.t || 0;
  result.timeline = run.timeline.sort((a, b) => a.t - b.t).map((e) => ({ ...e, t: e.t - origin }));
  if (errors.length && result.verdict !== 'error') {
    result.verdict = 'error';
    result.reason = `teardown left something behind: ${errors.join('; ')}`;
  }
}
