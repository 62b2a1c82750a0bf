// Runs one scenario the way a person would at a terminal: build the network, boot the
// source, start captures and traffic, migrate (migration-hop.ts, with the scenario's faults),
// stop traffic (traffic-plan.ts), read the pcaps, judge. The topology is always torn down
// and verified clean.
import { setTimeout as sleep } from 'node:timers/promises';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { MigrationInfo, MigrationStatus } from '../engine/qmp-protocol.js';
import { startCapture } from './capture.js';
import { migrateOnce } from './migration-hop.js';
import { analyzePcap } from './pcap-analyzer.js';
import { GUEST_MAC, Run, type RunOptions } from './run-state.js';
import { effectiveExpectations, unsupportedReason } from './scenario.js';
import { createTopology } from './topology.js';
import { crossCheckPing, finishTraffic, startTraffic } from './traffic-plan.js';
import type { Scenario, ScenarioResult, VmBackend, VmHandle } from './types.js';
import { checkExpectations, verdictOf } from './verdict.js';

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
  // TAPs: only what the VMs wrote (-Q in), so announces and MAC flapping are the VMs' own.
  // Started together (each waits for tcpdump's "listening on"); all are ready before traffic.
  const started = await Promise.allSettled([
    startCapture(topo, 'client', topo.clientIface, pcaps.client),
    startCapture(topo, 'host', topo.tap0, pcaps.tap0, { direction: 'in' }),
    startCapture(topo, 'host', topo.tap1, pcaps.tap1, { direction: 'in' }),
  ]);
  for (const c of started) if (c.status === 'fulfilled') run.captures.push(c.value);
  const failed = started.find((c): c is PromiseRejectedResult => c.status === 'rejected');
  if (failed) throw failed.reason;
  if (topo.layout === 'bridge') run.fdb = await topo.fdbMonitor();

  phase('traffic');
  const traffic = await startTraffic(run, src);
  await sleep(s.traffic.migrateAfterMs);

  const hops = s.migration.hops ?? 1;
  let tap = topo.tap0;
  let status: MigrationStatus | 'none' = 'none';
  let downtimeTotal = 0, totalTime = 0, transferred = 0, passes = 0;
  let handoverMicros: number | undefined;
  let lastInfo: MigrationInfo = {};
  result.migration.hops = 0;
  for (let hop = 1; hop <= hops; hop++) {
    phase(hops > 1 ? `migrating (hop ${hop}/${hops})` : 'migrating');
    const dstTap = s.migration.local ? tap : tap === topo.tap0 ? topo.tap1 : topo.tap0;
    const hopResult = await migrateOnce(run, src, dstTap, hop);
    status = hopResult.status;
    lastInfo = hopResult.info;
    downtimeTotal = Math.max(downtimeTotal, hopResult.info.downtime ?? 0);
    totalTime += hopResult.info['total-time'] ?? 0;
    transferred += hopResult.info.ram?.transferred ?? 0;
    passes = Math.max(passes, hopResult.passes);
    // Recorded per hop, so a later error still leaves what did happen in the result.
    result.migration = {
      status, downtimeMs: downtimeTotal, totalTimeMs: totalTime, transferredBytes: transferred,
      setupTimeMs: lastInfo['setup-time'], hops: hop, passes,
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
    tap = dstTap;
  }

  phase('finishing traffic');
  const flowsDone = await finishTraffic(traffic, Date.now() + TRAFFIC_TAIL_MS);
  for (const c of run.captures.splice(0)) await c.stop();
  const fdbMoves = run.fdb ? run.fdb.moves(GUEST_MAC) : [];
  await run.fdb?.stop();
  run.fdb = undefined;
  result.fdbMoves = fdbMoves.map((m) => ({ t: m.t - run.t0, mac: m.mac, port: m.port }));

  phase('analyzing');
  const t0Micros = run.t0 * 1000;
  const client = await analyzePcap(pcaps.client, { t0Micros, iface: topo.clientIface, inFlightWindowMs: IN_FLIGHT_WINDOW_MS });
  const targetTap = s.migration.local ? topo.tap0 : topo.tap1;
  const target = await analyzePcap(targetTap === topo.tap0 ? pcaps.tap0 : pcaps.tap1, {
    t0Micros, iface: targetTap, guestMac: GUEST_MAC,
    // Local migration keeps the TAP: the source spoke on it until stop; only hop 1 matters.
    ...(s.migration.local ? {} : { handoverMicros: handoverMicros ?? Number.MAX_SAFE_INTEGER }),
  });
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
  for (const u of run.unfired) result.expectations.push({ name: 'fault fired', expected: 'fired', actual: u, ok: false });
  result.verdict = verdictOf(result.expectations);
  if (result.verdict === 'fail') {
    result.reason = result.expectations.filter((c) => !c.ok).map((c) => `${c.name}: expected ${c.expected}, got ${c.actual}`).join('; ');
  }
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
