// Shared measuring helpers for the bench sections: order statistics, a process's peak RSS,
// a scenario run N times, and VMs started as bare processes (no netns, no NIC) for the
// RAM-only measurements: migration throughput and cost against guest size.
//
// API
//   round(v, digits?)
//   mbPerS(bytes, ms)                  decimal MB/s, as QEMU's ram.mbps counts (1e6)
//   generatorCpuPer10k(g)              the UDP generator's CPU ms per second of sending, per 10,000/s achieved
//   peakRssKb(pid)                     VmHWM from /proc/PID/status, undefined once gone
//   hasTool(name)                      on PATH (or /usr/sbin, /sbin)
//   networkUnavailable()               why topologies cannot be built here (an n/a reason), or undefined
//   runScenarioTimes(s, backend, n, opts?) -> TimedRun[]   wall time measured around runScenario
//   ran(result)                        pass or fail: its figures count (not error, not unsupported)
//   verdicts(results)                  "9 pass, 1 fail"
//   engineVmArgv(root, spec) -> argv   `node bin/switchover.js vm ...` with -guest fill=
//   startProcessVm(argv, { name, dir, qmpPath }) -> VmProcess   launchVm (harness/vm/process.ts),
//                                      logging to DIR/NAME.log
//   migrateLocally(src, dst, socketPath, opts) -> MigrationInfo   over a UNIX socket
import { setTimeout as sleep } from 'node:timers/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { engineArgv } from '../../lib/engine-argv.js';
import type { MigrationCapabilityName, MigrationInfo, MigrationParameters } from '../../lib/qmp-protocol.js';
import { privilegeAvailable } from '../../fixtures/privilege.js';
import { whichTool } from '../net/exec.js';
import { runScenario, type RunOptions } from '../run/runner.js';
import { launchVm, type VmProcess } from '../vm/process.js';
import type { Scenario, ScenarioResult, VmBackend } from '../scenario/types.js';

export function round(v: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/** Decimal megabytes per second (QEMU's mbps is decimal megabits: mbps / 8 = this). */
export function mbPerS(bytes: number, ms: number): number {
  return ms > 0 ? bytes / 1e6 / (ms / 1000) : NaN;
}

/** CPU ms per second of sending, per 10,000 datagrams/s achieved; NaN without a send phase. */
export function generatorCpuPer10k(g: { cpuMs: number; sendMs: number; achievedRate: number }): number {
  return g.sendMs > 0 && g.achievedRate > 0 ? g.cpuMs / (g.sendMs / 1000) / (g.achievedRate / 10_000) : NaN;
}

/** The process's peak resident set (VmHWM), kB; undefined when it is gone or unreadable. */
export function peakRssKb(pid: number): number | undefined {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export const hasTool = (name: string): boolean => whichTool(name) !== undefined;

/** Why a section that builds topologies cannot run here, as an n/a reason; undefined when it can. */
export function networkUnavailable(): string | undefined {
  if (!privilegeAvailable()) return 'needs root or passwordless sudo (netns, TAP, tcpdump)';
  const missing = ['ip', 'bridge', 'tcpdump', 'ping'].filter((t) => !hasTool(t));
  return missing.length ? `${missing.join(', ')} not found (npm run setup installs them)` : undefined;
}

export interface TimedRun { result: ScenarioResult; wallMs: number }

/**
 * Runs `s` n times one after the other; wallMs is measured around runScenario (probe,
 * topology, boot, traffic, migration, analysis, verdict, teardown and its verification).
 */
export async function runScenarioTimes(s: Scenario, backend: VmBackend, n: number,
  opts: Omit<RunOptions, 'backend'> = {}): Promise<TimedRun[]> {
  const runs: TimedRun[] = [];
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    const result = await runScenario(s, { ...opts, backend });
    runs.push({ result, wallMs: performance.now() - started });
  }
  return runs;
}

/** The run got as far as a verdict on its traffic (pass or fail), so its figures mean something. */
export const ran = (r: ScenarioResult): boolean => r.verdict === 'pass' || r.verdict === 'fail';

/** "9 pass, 1 fail" (verdicts in first-seen order), with the reason of the first error, else failure, else unsupported. */
export function verdicts(results: readonly ScenarioResult[]): string {
  const counts = new Map<string, number>();
  for (const r of results) counts.set(r.verdict, (counts.get(r.verdict) ?? 0) + 1);
  const text = [...counts].map(([v, n]) => `${n} ${v}`).join(', ');
  const bad = results.find((r) => r.verdict === 'error') ?? results.find((r) => r.verdict === 'fail')
    ?? results.find((r) => r.verdict === 'unsupported');
  return bad ? `${text} (first ${bad.verdict}: ${(bad.reason ?? '').split('\n')[0]!.slice(0, 120)})` : text;
}

export interface EngineVmSpec {
  name: string;
  dir: string;
  memMB: number;
  /** Fraction of pages given random content at boot (`-guest fill=`). */
  fill?: number;
  dirtyRate?: number;
  incoming?: string;
}

/** An engine VM without a NIC: RAM, vCPU model and QMP only, as the backend probe starts one. */
export function engineVmArgv(root: string, spec: EngineVmSpec): { argv: string[]; qmpPath: string } {
  const qmpPath = join(spec.dir, `${spec.name}.qmp`);
  const vm = engineArgv({ name: spec.name, memMB: spec.memMB, qmpPath, guest: { dirtyRate: spec.dirtyRate ?? 0, fill: spec.fill }, incoming: spec.incoming });
  return { argv: [process.execPath, join(root, 'bin', 'switchover.js'), 'vm', ...vm], qmpPath };
}

const QUIT_GRACE_MS = 5_000;

/** A VM process (engine or QEMU) outside any netns, logging to DIR/NAME.log, connected over QMP. */
export function startProcessVm(argv: readonly string[], o: { name: string; dir: string; qmpPath: string; timeoutMs?: number }): Promise<VmProcess> {
  return launchVm({
    name: o.name, argv, logPath: join(o.dir, `${o.name}.log`), qmpPath: o.qmpPath,
    connectTimeoutMs: o.timeoutMs ?? 20_000, quitTimeoutMs: QUIT_GRACE_MS,
  });
}

export interface LocalMigrationOptions {
  capabilities?: MigrationCapabilityName[];
  parameters?: MigrationParameters;
  timeoutMs?: number;
}

/**
 * Migrates src to dst (started `-incoming defer`) over a UNIX socket and returns the
 * source's query-migrate once MIGRATION says completed, failed or cancelled. The `events`
 * capability is always set: completion is awaited by event, not by polling.
 */
export async function migrateLocally(src: VmProcess, dst: VmProcess, socketPath: string,
  o: LocalMigrationOptions = {}): Promise<MigrationInfo> {
  const caps = [...new Set<MigrationCapabilityName>(['events', ...(o.capabilities ?? [])])]
    .map((capability) => ({ capability, state: true }));
  for (const vm of [src, dst]) await vm.qmp.execute('migrate-set-capabilities', { capabilities: caps });
  if (o.parameters && Object.keys(o.parameters).length) await src.qmp.execute('migrate-set-parameters', o.parameters);
  await dst.qmp.execute('migrate-incoming', { uri: `unix:${socketPath}` });
  const since = src.qmp.events.length;
  await src.qmp.execute('migrate', { uri: `unix:${socketPath}` });
  const timeoutMs = o.timeoutMs ?? 120_000;
  const final = await src.qmp.waitEvent('MIGRATION', (d) => ['completed', 'failed', 'cancelled'].includes(d.status), timeoutMs, since)
    .catch(async (e: Error) => {
      await src.qmp.execute('migrate_cancel').catch(() => undefined);
      throw new Error(`${src.name} -> ${dst.name}: migration did not end within ${timeoutMs / 1000} s (cancelled): ${e.message}`, { cause: e });
    });
  const info = await src.qmp.execute('query-migrate');
  if (final.data.status !== 'completed') {
    throw new Error(`${src.name} -> ${dst.name}: migration ${final.data.status}${info['error-desc'] ? `: ${info['error-desc']}` : ''}`);
  }
  return info;
}

/** Waits (bounded) until a migration target has left `inmigrate`: everything is loaded. */
export async function waitIncomingDone(vm: VmProcess, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const st = await vm.qmp.execute('query-status');
    if (st.status !== 'inmigrate') return;
    await sleep(20);
  }
  throw new Error(`${vm.name} still inmigrate after ${timeoutMs / 1000} s`);
}
