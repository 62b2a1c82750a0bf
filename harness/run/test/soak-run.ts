// The soak (issue 9): N consecutive migrations A->B->A... under 1 ms ping with netpass, as the
// catalogue's ping-pong-10 with `--set hops=N`. Shared by soak-short.test.ts (10 migrations, in
// the normal suite) and soak.test.ts (50 under `npm run soak`, SOAK_FULL=1).
//
// Each hop is a new VM process, so growth is looked for where it would accumulate: the harness
// process (open fds, RSS and V8 heap after a forced GC), the processes it has started, and the
// current source VM (its fds, the UNIX sockets bound in the run dir as seen from the run's
// netns, the socket files there). One sample is taken as each hop begins, from the runner's
// progress callback. Afterwards nothing of the run may exist.
//
// API
//   runSoak(migrations) -> Promise<SoakReport>
//   registerSoakTests(migrations)      the uvu tests over one soak run
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { requirePrivilege } from '../../../fixtures/privilege.js';
import { engineBackend } from '../../vm/engine.js';
import { findScenarios } from '../../scenario/catalogue.js';
import { Progress } from '../../cli/progress.js';
import { runScenario } from '../runner.js';
import { applyOverrides } from '../../scenario/scenario.js';
import type { Scenario, ScenarioResult } from '../../scenario/types.js';
import { boundSockets, descendants, openFds, recordingBackend, runLeftovers } from '../../cli/test/run-inspect.js';

/** Ping time budgeted per hop: a VM start plus a migration, on a loaded machine. */
const MS_PER_HOP = 1200;
const MiB = 1024 * 1024;

export interface HopSample {
  hop: number;
  harnessFds: number;
  harnessRssMiB: number;
  heapUsedMiB: number;
  /** Processes this test process has started and that are alive (VM, ping, tcpdumps, bridge monitor). */
  processes: number;
  vmPid: number;
  vmFds: number;
  /** UNIX sockets bound under the run dir, from the run's netns (QMP, migration listeners). */
  boundSockets: number;
  /** Socket files in the run dir. */
  socketFiles: number;
}

export interface SoakReport {
  migrations: number;
  scenario: Scenario;
  result: ScenarioResult;
  samples: HopSample[];
  before: { fds: number; processes: number };
  after: { fds: number; processes: number; leftovers: string[] };
}

// A GC before each sample, so heap and RSS show what is retained rather than garbage not yet collected.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function socketFiles(dir: string): number {
  try {
    return readdirSync(dir).filter((f) => lstatSync(join(dir, f)).isSocket()).length;
  } catch {
    return 0;
  }
}

export async function runSoak(migrations: number): Promise<SoakReport> {
  const [base] = await findScenarios(['ping-pong-10']);
  const scenario = applyOverrides(base!, [`hops=${migrations}`, `duration=${migrations * MS_PER_HOP + 1000}`, 'interval=1', 'netpass=on']);
  const rec = recordingBackend(engineBackend);
  const samples: HopSample[] = [];
  // Sampling happens synchronously when the runner announces a hop: nothing else runs meanwhile.
  class Sampler extends Progress {
    override phase(p: string): void {
      const m = /^migrating \(hop (\d+)\/\d+\)$/.exec(p) ?? (p === 'migrating' ? [p, '1'] : null);
      if (!m) return;
      const hop = Number(m[1]);
      const vm = rec.launched[hop - 1];
      if (!vm) throw new Error(`hop ${hop}: the runner launched ${rec.launched.length} VM(s)`);
      gc();
      const mem = process.memoryUsage();
      samples.push({
        hop, harnessFds: openFds(), harnessRssMiB: mem.rss / MiB, heapUsedMiB: mem.heapUsed / MiB,
        processes: descendants().length, vmPid: vm.pid, vmFds: openFds(vm.pid),
        boundSockets: boundSockets(vm.spec.runDir, vm.pid), socketFiles: socketFiles(vm.spec.runDir),
      });
    }
  }
  gc();
  const before = { fds: openFds(), processes: descendants().length };
  const result = await runScenario(scenario, { backend: rec.backend, progress: new Sampler({ stream: { write: () => true }, tty: false }) });
  gc();
  const after = { fds: openFds(), processes: descendants().length, leftovers: await runLeftovers(rec.launched) };
  return { migrations, scenario, result, samples, before, after };
}

function table(samples: HopSample[]): string {
  const cols: Array<keyof HopSample> = ['hop', 'harnessFds', 'harnessRssMiB', 'heapUsedMiB', 'processes', 'vmFds', 'boundSockets', 'socketFiles'];
  const rows = samples.map((s) => cols.map((c) => (typeof s[c] === 'number' && !Number.isInteger(s[c]) ? (s[c] as number).toFixed(1) : String(s[c]))));
  return [cols.join('\t'), ...rows.map((r) => r.join('\t'))].join('\n');
}

export function registerSoakTests(migrations: number): void {
  if (!requirePrivilege(`the ${migrations}-migration soak (netns, TAP, engine VMs)`)) {
    test.skip(`soak of ${migrations} migrations: needs root or passwordless sudo`, () => undefined);
    return;
  }
  let report: SoakReport | undefined;
  const run = async (): Promise<SoakReport> => (report ??= await runSoak(migrations));

  test(`${migrations} consecutive migrations under 1 ms ping with netpass: all complete, 0 lost`, async () => {
    const { result: r, samples, scenario } = await run();
    console.log(`soak: ${migrations} migrations in ${(r.wallMs / 1000).toFixed(1)} s; per hop:\n${table(samples)}`);
    assert.is(r.verdict === 'error' ? r.reason : undefined, undefined, 'the run errored');
    assert.is(r.migration.status, 'completed');
    assert.is(r.migration.hops, migrations);
    assert.is(samples.length, migrations, 'one sample per hop');
    const ping = r.traffic.find((f) => f.kind === 'ping');
    assert.ok(ping, 'a ping flow was analysed');
    // The last hop must have happened under traffic, or "0 lost" would say nothing about it.
    const lastMigrate = r.timeline.find((e) => e.what === `migrate (hop ${migrations})`);
    // Large flows carry no per-packet marks; ping cannot send faster than its interval, so
    // `sent` requests took at least sent x interval from traffic start (migrateAfterMs before t0).
    const lastPing = ping.packets?.length ? Math.max(...ping.packets.map((p) => p.t))
      : ping.sent * (scenario.traffic.flows.find((f) => f.kind === 'ping') as { intervalMs: number }).intervalMs - scenario.traffic.migrateAfterMs;
    assert.ok(lastMigrate && lastMigrate.t + 100 < lastPing, `hop ${migrations} began at ${lastMigrate?.t} ms, after the ping ended at ${lastPing} ms: raise MS_PER_HOP`);
    assert.equal(ping.lostSeqs, [], `lost pings: ${ping.lostSeqs.slice(0, 20).join(',')}`);
    assert.is(r.traffic.reduce((n, f) => n + f.lost, 0), 0, 'lost packets over all flows');
    assert.is(r.verdict, 'pass', r.reason);
  });

  test('no growth in processes, fds, sockets or memory over the hops', async () => {
    const { samples } = await run();
    assert.ok(samples.length >= 3, `need at least 3 hops to see growth, got ${samples.length}`);
    // Hop 1's source is the original VM; from hop 2 on each source is a VM that migrated in.
    const base = samples[1]!, last = samples[samples.length - 1]!;
    const series = (k: keyof HopSample): string => samples.map((s) => (s[k] as number).toFixed(0)).join(',');
    for (const s of samples) assert.is(s.processes, samples[0]!.processes, `processes per hop: ${series('processes')}`);
    for (const s of samples.slice(1)) {
      assert.ok(s.boundSockets <= base.boundSockets, `bound sockets in the run dir per hop: ${series('boundSockets')}`);
      assert.ok(s.socketFiles <= base.socketFiles, `socket files in the run dir per hop: ${series('socketFiles')}`);
    }
    assert.ok(last.harnessFds <= base.harnessFds + 2, `harness fds per hop: ${series('harnessFds')}`);
    assert.ok(last.vmFds <= base.vmFds + 2, `source VM fds per hop: ${series('vmFds')}`);
    // Memory: a retained MiB per hop would show as 1 MiB x hops; allow GC and allocator noise.
    const allowance = 16 + 0.25 * samples.length;
    assert.ok(last.heapUsedMiB <= base.heapUsedMiB + allowance, `harness heap (MiB) per hop: ${series('heapUsedMiB')}`);
    assert.ok(last.harnessRssMiB <= base.harnessRssMiB + 2 * allowance, `harness RSS (MiB) per hop: ${series('harnessRssMiB')}`);
  });

  test('afterwards nothing of the run is left: netns, links, processes, sockets, fds', async () => {
    const { before, after } = await run();
    assert.equal(after.leftovers, [], `left behind:\n  ${after.leftovers.join('\n  ')}`);
    assert.is(after.processes, before.processes, 'processes started by the test still alive');
    assert.ok(after.fds <= before.fds + 2, `harness fds ${before.fds} before the run, ${after.fds} after`);
  });
}
