// One migration hop, as management drives it: start the destination (-incoming defer, -S
// when `cont` is delayed), set capabilities and parameters on both sides, migrate-incoming,
// migrate; fire the scenario's faults at their phase; at switchover move the host address
// (routed layout); then `cont` the destination and wait until it runs, or, if it never does,
// resume the source as libvirt does. The hop returns what happened (its marks, when it issued
// `migrate`, each fault's outcome); it records nothing in the runner's state, and retiring
// the migrated-away source is the runner's.
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import type { MigrationInfo, MigrationStatus } from '../../lib/qmp-protocol.js';
import { startRelay, type ChannelRelay } from './channel-relay.js';
import { dropAnnounce, fireFault, isTimedFault, type FaultOutcome, type FaultTargets } from './faults.js';
import { nowMs, type QmpClient } from '../../lib/qmp-client.js';
import { MIGRATION_TIMEOUT_MS, type LaunchVm } from './run-vms.js';
import { eventMs, type Mark } from './timeline.js';
import { contDelayMs } from '../scenario/scenario.js';
import type { Topology } from '../net/topology.js';
import type { FaultStep, Scenario, VmHandle } from '../scenario/types.js';

/** What a hop needs from the runner: the scenario, the network, and a way to start a VM. */
export interface HopContext { s: Scenario; topo: Topology; launch: LaunchVm }

/** What happened in a hop, also when it failed part way (HopError.record). */
export interface HopRecord {
  marks: Mark[];
  /** When `migrate` was issued (ms epoch); absent if the hop never got that far. */
  migrateAt?: number;
  faults: FaultOutcome[];
}

export interface HopResult extends HopRecord {
  status: MigrationStatus; info: MigrationInfo; dst: VmHandle; handoverMs: number; passes: number;
  /** The source's last non-zero dirty-pages-rate, read at its MIGRATION_PASS events. */
  dirtyPagesRate?: number;
  /** The destination never ran (killed, or `cont` refused) after completion: the source was resumed. */
  destinationLost?: string;
}

/** A hop that threw: the cause, and what happened before it. */
export class HopError extends Error {
  constructor(readonly record: HopRecord, cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
    this.name = 'HopError';
  }
}

/** The hop's own record, filled as it goes and returned (or thrown) with it. */
class HopLog implements HopRecord {
  readonly marks: Mark[] = [];
  migrateAt?: number;
  readonly faults: FaultOutcome[] = [];
  mark(what: string): void { this.marks.push({ t: nowMs(), what }); }
  record(): HopRecord { return { marks: this.marks, migrateAt: this.migrateAt, faults: this.faults }; }
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

const DST_START_TIMEOUT_MS = 10_000;
const MIGRATION_TCP_PORT = 4440;

export async function migrateOnce(ctx: HopContext, src: VmHandle, dstTap: string, hop: number): Promise<HopResult> {
  const log = new HopLog();
  let relay: ChannelRelay | undefined;
  try {
    return await drive(ctx, src, dstTap, hop, log, (r) => { relay = r; });
  } catch (e) {
    throw new HopError(log.record(), e);
  } finally {
    await relay?.close().catch(() => undefined);
  }
}

async function drive(ctx: HopContext, src: VmHandle, dstTap: string, hop: number, log: HopLog,
  onRelay: (r: ChannelRelay | undefined) => void): Promise<HopResult> {
  const { s, topo } = ctx;
  const contDelay = contDelayMs(s);
  const dst = await ctx.launch(`dst${hop}`, dstTap, {
    incoming: 'defer', paused: contDelay !== undefined,
    ...(s.migration.local ? { tap: { ifname: dstTap, queues: s.topology.queues, vhost: s.topology.vhost, incomingFds: true } } : {}),
  });
  await configure(src.qmp, s);
  await configure(dst.qmp, s);
  if (s.faults.some((f) => f.kind === 'drop-announce')) await dropAnnounce(topo, dstTap, topo.guestIp);

  const dstPath = join(topo.runDir, `mig${hop}.sock`);
  const useTcp = s.migration.transport === 'tcp';
  // Both VMs live in the run's own host netns, whose loopback nobody else listens on: a fixed
  // port per hop cannot collide, where a shared namespace would need QEMU's ports.py.
  const dstUri = useTcp ? `tcp:127.0.0.1:${MIGRATION_TCP_PORT + hop}` : `unix:${dstPath}`;
  await dst.qmp.execute('migrate-incoming', { uri: dstUri });
  let uri = dstUri;
  let relay: ChannelRelay | undefined;
  if (s.faults.some((f) => f.kind === 'cut-channel')) {
    relay = await startRelay(join(topo.runDir, `relay${hop}.sock`), dstPath);
    onRelay(relay);
    uri = `unix:${relay.path}`;
  }

  const since = src.qmp.events.length;
  // QEMU reports dirty-pages-rate only while the migration runs (populate_ram_info in
  // migration/migration.c leaves it out once completed) and updates it at a bitmap sync: read
  // it at each pass.
  let dirtyPagesRate: number | undefined;
  const offPass = src.qmp.on('MIGRATION_PASS', () => {
    src.qmp.execute('query-migrate').then((i) => { dirtyPagesRate = i.ram?.['dirty-pages-rate'] || dirtyPagesRate; }, () => undefined);
  });
  const faults = armFaults(s, { topo, src, dst, dstTap, guestIp: topo.guestIp, relay }, since, log);
  const continued = s.migration.capabilities.includes('pause-before-switchover')
    ? continueFromPreSwitchover(log, src, since, faults.firedAt('pre-switchover')) : Promise.resolve();
  // Routed layout: management moves the host address to the destination's TAP once the
  // migration completed, as switch_network_to_tap2() does in QEMU's test_tap_migration.py
  // (make-before-break here, see Topology.switchover). Until then frames still go to the
  // source's TAP: lost with the source, or cached and passed on with netpass. The
  // destination's earlier replies already reach the host (both TAPs carry its MAC).
  let switched: Promise<boolean> = Promise.resolve(false);
  if (topo.layout === 'routed' && !s.migration.local) {
    switched = src.qmp.waitEvent('MIGRATION', (d) => d.status === 'completed', MIGRATION_TIMEOUT_MS, since).then(async () => {
      await topo.switchover();
      log.mark('host IP/MAC moved to destination TAP');
      return true;
    }, () => false);
  }
  log.migrateAt = nowMs();
  log.mark(hop > 1 ? `migrate (hop ${hop})` : 'migrate');
  await src.qmp.execute('migrate', { uri });

  const final = await src.qmp.waitEvent('MIGRATION', (d) => isFinal(d.status), MIGRATION_TIMEOUT_MS, since);
  const status = final.data.status;
  const moved = status === 'completed' ? await switched : await Promise.race([switched, sleep(0).then(() => false)]);
  await continued;
  await faults.done;
  offPass();
  await relay?.close();
  onRelay(undefined);
  const passesOf = (info: MigrationInfo): number =>
    src.qmp.events.slice(since).filter((e) => e.event === 'MIGRATION_PASS').length || info.ram?.['dirty-sync-count'] || 0;
  if (status !== 'completed') {
    if (moved) {
      await topo.switchover();
      log.mark('host IP/MAC moved back to the source TAP');
    }
    const info = await src.qmp.execute('query-migrate');
    log.mark(`migration ${status}; source resumes`);
    await dst.kill('SIGKILL').catch(() => undefined);
    return { ...log.record(), status, info, dst, handoverMs: 0, passes: passesOf(info), dirtyPagesRate };
  }
  // Handover: the source stops (STOP). Until then the source owns the guest MAC, and a
  // frame with that MAC from the destination is MAC flapping. (QEMU announces before it
  // emits RESUME, so RESUME would be too late a line.)
  const stopped = src.qmp.events.slice(since).find((e) => e.event === 'STOP');
  const handoverMs = stopped ? eventMs(stopped) : final.receivedAt;
  const lost = await startDestination(log, dst, contDelay);
  if (lost) {
    // As libvirt does when the destination fails to start: the source runs the guest again.
    log.mark(`destination lost after completion (${lost}); source resumed with cont`);
    await dst.kill('SIGKILL').catch(() => undefined);
    if (moved) await topo.switchover();
    await src.qmp.execute('cont');
    const info = await src.qmp.execute('query-migrate');
    return { ...log.record(), status, info, dst, handoverMs, passes: passesOf(info), dirtyPagesRate, destinationLost: lost };
  }
  // Read the figures only now: with the return path, downtime ends at VM_STARTED, which a
  // destination started with -S sends after `cont`.
  const info = await src.qmp.execute('query-migrate');
  return { ...log.record(), status, info, dst, handoverMs, passes: passesOf(info), dirtyPagesRate };
}

/** `cont` a -S destination after its delay, then wait until it runs. Returns why it did not. */
async function startDestination(log: HopLog, dst: VmHandle, contDelay: number | undefined): Promise<string | undefined> {
  const exited = dst.exited.then((x) => `destination exited (${x.signal ?? `code ${x.code}`})`);
  try {
    if (contDelay !== undefined) {
      await Promise.race([sleep(contDelay), exited]);
      log.mark('cont');
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
async function continueFromPreSwitchover(log: HopLog, src: VmHandle, since: number, faultsFired: Promise<unknown>): Promise<void> {
  const ev = await src.qmp.waitEvent('MIGRATION', (d) => d.status === 'pre-switchover' || isFinal(d.status), MIGRATION_TIMEOUT_MS, since);
  if (ev.data.status !== 'pre-switchover') return;
  await faultsFired;
  log.mark('migrate-continue');
  await src.qmp.execute('migrate-continue', { state: 'pre-switchover' }).catch((e: Error) => log.mark(`migrate-continue refused: ${e.message}`));
}

interface ArmedFaults {
  /** Every armed fault fired or found its phase gone; each outcome is in the hop's log. */
  done: Promise<unknown>;
  /** Resolves when the faults aimed at `phase` have fired (or cannot). */
  firedAt(phase: string): Promise<unknown>;
}

/**
 * A watcher per timed fault, each ending in an outcome in the hop's log, as it happens. A
 * fault whose phase never comes (the migration ended first, or the phase needs a capability
 * that is off) says so: the runner makes that a failed check, so nobody reads the run as
 * "survived" a fault that never hit.
 */
function armFaults(s: Scenario, targets: FaultTargets, since: number, log: HopLog): ArmedFaults {
  const { src } = targets;
  const timed = s.faults.filter(isTimedFault).map((f: FaultStep) => {
    const at = f.at ?? 'active';
    const fault = `${f.kind} at ${at}`;
    const want = at === 'after-completion' ? 'completed' : at;
    const outcome = async (): Promise<FaultOutcome> => {
      try {
        await src.qmp.waitEvent('MIGRATION', (d) => d.status === want || isFinal(d.status), MIGRATION_TIMEOUT_MS, since);
        const hit = src.qmp.events.slice(since).some((e) => e.event === 'MIGRATION' && (e.data as { status: string }).status === want);
        if (!hit) {
          const end = [...src.qmp.events].reverse().find((e) => e.event === 'MIGRATION');
          const why = `phase ${at} never came (migration went to ${(end?.data as { status?: string } | undefined)?.status ?? '?'} first)`;
          return { fault, fired: false, t: nowMs(), line: `fault ${fault} did not fire: ${why}`, why };
        }
        const line = await fireFault(f, targets);
        return { fault, fired: true, t: nowMs(), line };
      } catch (e) {
        const why = (e as Error).message;
        return { fault, fired: false, t: nowMs(), line: `fault ${fault} could not fire: ${why}`, why };
      }
    };
    return { at, fired: outcome().then((o) => { log.faults.push(o); }) };
  });
  return {
    done: Promise.all(timed.map((t) => t.fired)),
    firedAt: (phase) => Promise.all(timed.filter((t) => t.at === phase).map((t) => t.fired)),
  };
}

export const isFinal = (st: MigrationStatus): boolean => st === 'completed' || st === 'failed' || st === 'cancelled';
