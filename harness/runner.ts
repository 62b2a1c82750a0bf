// Runs one scenario the way a person would at a terminal: build the network, boot the
// source, start captures and traffic, migrate (with the scenario's faults), resume the
// destination, stop traffic, read the pcaps, judge. Every step is a named helper below;
// the topology is always torn down and verified clean.
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { MigrationInfo, MigrationStatus } from '../engine/qmp-protocol.js';
import { startCapture, type Capture } from './capture.js';
import { startRelay, type ChannelRelay } from './channel-relay.js';
import { dropAnnounce, fireFault, isTimedFault } from './faults.js';
import { analyzePcap } from './pcap-analyzer.js';
import type { Progress } from './progress.js';
import { nowMs, type QmpClient, type RecordedEvent } from './qmp-client.js';
import { contDelayMs, effectiveExpectations, unsupportedReason } from './scenario.js';
import { createTopology, type FdbMonitor, type Topology } from './topology.js';
import { startPing, type PingResult, type PingRun } from './traffic-ping.js';
import { startUdpStream, type UdpRun } from './traffic-udp.js';
import type {
  FaultStep, Scenario, ScenarioResult, TimelineEvent, VmBackend, VmHandle, VmSpec,
} from './types.js';
import { checkExpectations, verdictOf } from './verdict.js';

export const GUEST_MAC = '52:54:00:12:34:56';
const GUEST_UDP_PORT = 5009;
const MIGRATION_TIMEOUT_MS = 120_000;
/** Traffic goes on this long after the last hop, so the switchover is never at its edge. */
const TRAFFIC_TAIL_MS = 500;
/** Unanswered requests this close to the end of the capture are in flight, not lost: our
 * generators stop on a signal, and a reply here takes well under a millisecond. */
const IN_FLIGHT_WINDOW_MS = 300;
/** Upper bound on one flow's run time: traffic is stopped by the runner long before. */
const TRAFFIC_BOUND_MS = MIGRATION_TIMEOUT_MS + 60_000;
const BOOT_TIMEOUT_MS = 60_000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface RunOptions {
  backend: VmBackend;
  /** Copy the run's pcaps here (per scenario subfolder). */
  keepPcapsDir?: string;
  progress?: Progress;
}

/** Everything one run holds that teardown must release. */
interface Run {
  s: Scenario;
  opts: RunOptions;
  topo: Topology;
  t0: number;                                   // ms epoch: first `migrate` issued
  timeline: TimelineEvent[];
  vms: VmHandle[];
  captures: Capture[];
  fdb?: FdbMonitor;
  relay?: ChannelRelay;
  /** Fault steps that never fired, with why. */
  unfired: string[];
}

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
    run = { s, opts, topo, t0: 0, timeline: [], vms: [], captures: [], unfired: [] };
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
  let src = await launch(run, 'src', topo.tap0, {});
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

// ---- VMs -----------------------------------------------------------------------------------

async function launch(run: Run, name: string, tap: string, extra: Partial<VmSpec>): Promise<VmHandle> {
  const { s, topo } = run;
  const spec: VmSpec = {
    name, netns: topo.hostNs, runDir: topo.runDir,
    tap: { ifname: tap, queues: s.topology.queues, vhost: s.topology.vhost },
    mac: GUEST_MAC, ip: `${topo.guestIp}/${topo.guestPrefix}`, ...(topo.guestGw ? { gw: topo.guestGw } : {}),
    memMB: s.guest.memMB, dirtyRate: s.guest.dirtyRate, ...extra,
  };
  const vm = await run.opts.backend.launch(spec);
  run.vms.push(vm);
  recordEvents(run, vm.qmp, name === 'src' ? 'src' : 'dst');
  return vm;
}

function recordEvents(run: Run, qmp: QmpClient, source: 'src' | 'dst'): void {
  qmp.on('*', (ev: RecordedEvent) => {
    const at = ev.timestamp.seconds * 1000 + ev.timestamp.microseconds / 1000;
    const data = ev.event === 'MIGRATION' ? ` ${(ev.data as { status: string }).status}`
      : ev.event === 'MIGRATION_PASS' ? ` ${(ev.data as { pass: number }).pass}` : '';
    run.timeline.push({ t: at, source, what: `${ev.event}${data}` });
  });
}

function mark(run: Run, what: string): void {
  run.timeline.push({ t: nowMs(), source: 'harness', what });
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

// ---- migration -----------------------------------------------------------------------------

interface HopResult {
  status: MigrationStatus; info: MigrationInfo; dst: VmHandle; handoverMs: number; passes: number;
  /** The destination never ran (killed, or `cont` refused) after completion: the source was resumed. */
  destinationLost?: string;
}

async function configure(qmp: QmpClient, s: Scenario): Promise<void> {
  if (s.migration.capabilities.length) {
    await qmp.execute('migrate-set-capabilities', {
      capabilities: s.migration.capabilities.map((capability) => ({ capability, state: true })),
    });
  }
  const params = { ...s.migration.parameters, ...(s.migration.local ? { local: true } : {}) };
  if (Object.keys(params).length) await qmp.execute('migrate-set-parameters', params);
}

const eventMs = (e: RecordedEvent): number => e.timestamp.seconds * 1000 + e.timestamp.microseconds / 1000;
const DST_START_TIMEOUT_MS = 10_000;

async function migrateOnce(run: Run, src: VmHandle, dstTap: string, hop: number): Promise<HopResult> {
  const { s, topo } = run;
  const contDelay = contDelayMs(s);
  const dst = await launch(run, `dst${hop}`, dstTap, {
    incoming: 'defer', paused: contDelay !== undefined,
    ...(s.migration.local ? { tap: { ifname: dstTap, queues: s.topology.queues, vhost: s.topology.vhost, incomingFds: true } } : {}),
  });
  await configure(src.qmp, s);
  await configure(dst.qmp, s);
  if (s.faults.some((f) => f.kind === 'drop-announce')) await dropAnnounce(topo, dstTap, topo.guestIp);

  const dstPath = join(topo.runDir, `mig${hop}.sock`);
  const useTcp = s.migration.transport === 'tcp';
  const dstUri = useTcp ? `tcp:127.0.0.1:${47000 + (process.pid % 1000) * 10 + hop}` : `unix:${dstPath}`;
  await dst.qmp.execute('migrate-incoming', { uri: dstUri });
  let uri = dstUri;
  if (s.faults.some((f) => f.kind === 'cut-channel')) {
    run.relay = await startRelay(join(topo.runDir, `relay${hop}.sock`), dstPath);
    uri = `unix:${run.relay.path}`;
  }

  const since = src.qmp.events.length;
  const faults = armFaults(run, src, dst, dstTap, since);
  const continued = s.migration.capabilities.includes('pause-before-switchover')
    ? continueFromPreSwitchover(run, src, since, faults.firedAt('pre-switchover')) : Promise.resolve();
  // Routed layout: management moves the host address to the destination's TAP at switchover,
  // when the source stops. Frames sent after that wait in the destination TAP's queue until
  // the destination reads them; the destination's first replies find the host address there.
  let switched: Promise<boolean> = Promise.resolve(false);
  if (topo.layout === 'routed' && !s.migration.local) {
    switched = src.qmp.waitEvent('STOP', undefined, MIGRATION_TIMEOUT_MS, since).then(async () => {
      await topo.switchover();
      mark(run, 'host IP/MAC moved to destination TAP');
      return true;
    }, () => false);
  }
  if (hop === 1) run.t0 = nowMs();
  mark(run, hop > 1 ? `migrate (hop ${hop})` : 'migrate');
  await src.qmp.execute('migrate', { uri });

  const final = await src.qmp.waitEvent('MIGRATION', (d) => isFinal(d.status), MIGRATION_TIMEOUT_MS, since);
  const status = final.data.status;
  const moved = status === 'completed' ? await switched : await Promise.race([switched, sleep(0).then(() => false)]);
  await continued;
  await faults.done;
  await run.relay?.close();
  run.relay = undefined;
  const passesOf = (info: MigrationInfo): number =>
    src.qmp.events.slice(since).filter((e) => e.event === 'MIGRATION_PASS').length || info.ram?.['dirty-sync-count'] || 0;
  if (status !== 'completed') {
    if (moved) {
      await topo.switchover();
      mark(run, 'host IP/MAC moved back to the source TAP');
    }
    const info = await src.qmp.execute('query-migrate');
    mark(run, `migration ${status}; source resumes`);
    await dst.kill('SIGKILL').catch(() => undefined);
    return { status, info, dst, handoverMs: 0, passes: passesOf(info) };
  }
  // Handover: the source stops (STOP). Until then the source owns the guest MAC, and a
  // frame with that MAC from the destination is MAC flapping. (QEMU announces before it
  // emits RESUME, so RESUME would be too late a line.)
  const stopped = src.qmp.events.slice(since).find((e) => e.event === 'STOP');
  const handoverMs = stopped ? eventMs(stopped) : final.receivedAt;
  const lost = await startDestination(run, dst, contDelay);
  if (lost) {
    // As libvirt does when the destination fails to start: the source runs the guest again.
    mark(run, `destination lost after completion (${lost}); source resumed with cont`);
    await dst.kill('SIGKILL').catch(() => undefined);
    if (moved) await topo.switchover();
    await src.qmp.execute('cont');
    const info = await src.qmp.execute('query-migrate');
    return { status, info, dst, handoverMs, passes: passesOf(info), destinationLost: lost };
  }
  // Read the figures only now: with the return path, downtime ends at VM_STARTED, which a
  // destination started with -S sends after `cont`.
  const info = await src.qmp.execute('query-migrate');
  await src.shutdown();
  run.vms = run.vms.filter((v) => v !== src);
  return { status, info, dst, handoverMs, passes: passesOf(info) };
}

/** `cont` a -S destination after its delay, then wait until it runs. Returns why it did not. */
async function startDestination(run: Run, dst: VmHandle, contDelay: number | undefined): Promise<string | undefined> {
  const exited = dst.exited.then((x) => `destination exited (${x.signal ?? `code ${x.code}`})`);
  try {
    if (contDelay !== undefined) {
      await Promise.race([sleep(contDelay), exited]);
      mark(run, 'cont');
      await dst.qmp.execute('cont');
    }
    const since = 0; // RESUME may already be recorded (a destination without -S)
    const resumed = dst.qmp.waitEvent('RESUME', undefined, DST_START_TIMEOUT_MS, since).then(() => undefined);
    return await Promise.race([resumed, exited]);
  } catch (e) {
    return (e as Error).message;
  }
}

/** With pause-before-switchover: once faults aimed at pre-switchover fired, `migrate-continue`. */
async function continueFromPreSwitchover(run: Run, src: VmHandle, since: number, faultsFired: Promise<void>): Promise<void> {
  const ev = await src.qmp.waitEvent('MIGRATION', (d) => d.status === 'pre-switchover' || isFinal(d.status), MIGRATION_TIMEOUT_MS, since);
  if (ev.data.status !== 'pre-switchover') return;
  await faultsFired;
  mark(run, 'migrate-continue');
  await src.qmp.execute('migrate-continue', { state: 'pre-switchover' }).catch((e: Error) => mark(run, `migrate-continue refused: ${e.message}`));
}

interface ArmedFaults {
  /** Every armed fault fired or found its phase gone. */
  done: Promise<void>;
  /** Resolves when the faults aimed at `phase` have fired (or cannot). */
  firedAt(phase: string): Promise<void>;
}

/**
 * A watcher per timed fault. A fault whose phase never comes (the migration ended first, or
 * the phase needs a capability that is off) is reported: a timeline line and a failed check,
 * so nobody reads the run as "survived" a fault that never hit.
 */
function armFaults(run: Run, src: VmHandle, dst: VmHandle, dstTap: string, since: number): ArmedFaults {
  const timed = run.s.faults.filter(isTimedFault).map((f: FaultStep) => {
    const at = f.at ?? 'active';
    const want = at === 'after-completion' ? 'completed' : at;
    const fired = (async (): Promise<void> => {
      try {
        await src.qmp.waitEvent('MIGRATION', (d) => d.status === want || isFinal(d.status), MIGRATION_TIMEOUT_MS, since);
        const hit = src.qmp.events.slice(since).some((e) => e.event === 'MIGRATION' && (e.data as { status: string }).status === want);
        if (!hit) {
          const end = [...src.qmp.events].reverse().find((e) => e.event === 'MIGRATION');
          const why = `phase ${at} never came (migration went to ${(end?.data as { status?: string } | undefined)?.status ?? '?'} first)`;
          mark(run, `fault ${f.kind} at ${at} did not fire: ${why}`);
          run.unfired.push(`${f.kind} at ${at}: ${why}`);
          return;
        }
        await sleep(f.delayMs ?? 0);
        mark(run, await fireFault(f, { topo: run.topo, src, dst, dstTap, guestIp: run.topo.guestIp, relay: run.relay }));
      } catch (e) {
        mark(run, `fault ${f.kind} at ${at} could not fire: ${(e as Error).message}`);
        run.unfired.push(`${f.kind} at ${at}: ${(e as Error).message}`);
      }
    })();
    return { at, fired };
  });
  return {
    done: Promise.all(timed.map((t) => t.fired)).then(() => undefined),
    firedAt: (phase) => Promise.all(timed.filter((t) => t.at === phase).map((t) => t.fired)).then(() => undefined),
  };
}

const isFinal = (st: MigrationStatus): boolean => st === 'completed' || st === 'failed' || st === 'cancelled';

// ---- traffic -------------------------------------------------------------------------------

interface TrafficRuns {
  ping?: PingRun;
  /** Client -> guest streams; stopped by the runner like ping. */
  udpSenders: UdpRun[];
  /** Receive-only streams (guest -> client), stopped once the guest's stream is over. */
  udpReceivers: UdpRun[];
  /** traffic.durationMs after the start: the least the traffic lasts. */
  minEnd: number;
  /** When the guest's own stream (x-guest-udp-send, a fixed count) is over. */
  guestStreamEnd: number;
}

/**
 * Flows run for at least traffic.durationMs and until TRAFFIC_TAIL_MS after the last hop,
 * whichever is later, so a slow backend's switchover still lands inside the traffic. They
 * are bounded in count and time (TRAFFIC_BOUND_MS) and stopped by the runner.
 */
async function startTraffic(run: Run, src: VmHandle): Promise<TrafficRuns> {
  const { s, topo } = run;
  const started = Date.now();
  const out: TrafficRuns = { udpSenders: [], udpReceivers: [], minEnd: started + s.traffic.durationMs, guestStreamEnd: started };
  const boundMs = s.traffic.durationMs + TRAFFIC_BOUND_MS;
  for (const f of s.traffic.flows) {
    if (f.kind === 'ping') {
      out.ping = startPing(topo, { dst: topo.guestIp, intervalMs: f.intervalMs, count: Math.ceil(boundMs / f.intervalMs) });
      // Awaited in finishTraffic; until then a failure must not be an unhandled rejection.
      out.ping.result.catch(() => undefined);
      continue;
    }
    if (f.direction === 'to-guest' || f.direction === 'both') {
      const u = startUdpStream(topo, { dst: topo.guestIp, port: f.port ?? 7, rate: f.rate, count: Math.ceil((f.rate * boundMs) / 1000), durationMs: boundMs });
      u.result.catch(() => undefined);
      await u.ready;
      out.udpSenders.push(u);
    }
    if (f.direction === 'from-guest' || f.direction === 'both') {
      const u = startUdpStream(topo, { dst: topo.guestIp, port: 9, rate: 1, count: 0, durationMs: boundMs, listenPort: GUEST_UDP_PORT, lingerMs: 0 });
      u.result.catch(() => undefined);
      await u.ready;
      out.udpReceivers.push(u);
      const count = Math.max(1, Math.round((f.rate * s.traffic.durationMs) / 1000));
      await src.qmp.execute('x-guest-udp-send', { dst: topo.clientIp, port: GUEST_UDP_PORT, rate: f.rate, count });
      out.guestStreamEnd = Math.max(out.guestStreamEnd, Date.now() + s.traffic.durationMs);
    }
  }
  return out;
}

/** Stop every flow at max(durationMs, `tailEnd`); the guest's stream ends by its count. */
async function finishTraffic(t: TrafficRuns, tailEnd: number): Promise<{ ping?: PingResult }> {
  await sleep(Math.max(0, Math.max(t.minEnd, tailEnd) - Date.now()));
  const ping = t.ping ? await t.ping.stop() : undefined;
  for (const u of t.udpSenders) await u.stop();
  if (t.udpReceivers.length) {
    await sleep(Math.max(0, t.guestStreamEnd + 1_000 - Date.now()));
    for (const u of t.udpReceivers) await u.stop();
  }
  return { ping };
}

/** iputils' own view (-O) must agree with the pcap: every pcap loss is a ping loss. */
function crossCheckPing(result: ScenarioResult, ping: PingResult): void {
  const icmp = result.traffic.find((f) => f.kind === 'ping');
  if (!icmp) return;
  const pingLost = new Set(ping.lostSeqs);
  const missing = icmp.lostSeqs.filter((q) => !pingLost.has(q));
  result.expectations.push({
    name: 'ping output agrees with pcap', expected: 'pcap losses ⊆ ping losses',
    actual: missing.length ? `pcap-only losses: ${missing.slice(0, 10).join(',')}` : `ping ${ping.lostSeqs.length}, pcap ${icmp.lostSeqs.length}`,
    ok: missing.length === 0,
  });
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
