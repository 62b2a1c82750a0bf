// The runner's timeline and the trace folder, without a network: the timeline's origin and
// order; the folder kept on failure and removed on a pass (--trace-on failure), with every
// file the README lists and a result.json that `--json` readers take; the folder naming.
// The trace of a real run, re-judged and replayed, is harness/cli/test/trace.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Timeline } from '../timeline.js';
import { TraceRecorder, traceFolder, type TraceManifest } from '../trace.js';
import { readJsonReport } from '../../report/json.js';
import { defineScenario } from '../../scenario/scenario.js';
import type { Topology } from '../../net/topology.js';
import type { ScenarioResult, VmHandle } from '../../scenario/types.js';

const out = mkdtempSync(join(tmpdir(), 'switchover-trace-unit-'));
test.after(() => rmSync(out, { recursive: true, force: true }));

const scenario = defineScenario({ name: 'traced', description: 'a traced run', traffic: { flows: [{ kind: 'ping' }] } });

/** Enough of a topology for the recorder: names, and iproute2's JSON for each view. */
const runDir = mkdtempSync(join(out, 'run-'));
const topo = {
  runId: 'r1', runDir, nsName: (ns: string) => `so-r1-${ns}`,
  exec: async (ns: string, argv: readonly string[]) => ({ argv: [...argv], exitCode: 0, stderr: '', stdout: JSON.stringify([{ ns, view: argv[0] }]) }),
} as unknown as Topology;

function result(verdict: ScenarioResult['verdict']): ScenarioResult {
  return {
    scenario: 'traced', backend: 'qemu', verdict, ...(verdict === 'pass' ? {} : { reason: 'lost: expected <= 0, got 3' }),
    startedAt: new Date(0).toISOString(), wallMs: 1, migration: { status: 'completed', downtimeMs: 12, totalTimeMs: 40, transferredBytes: 1 },
    traffic: [], netpass: { cached: 0, forwarded: 0, dropped: 0 }, announces: [], macFlapping: false, fdbMoves: [], timeline: [], expectations: [],
  };
}

test('the timeline: t0 is fixed once, times are relative to it, or to the first entry when the run never migrated', () => {
  const t = new Timeline();
  t.mark('later', 1_000_300);
  t.mark('earlier', 1_000_100);
  assert.equal(t.relative().map((e) => [e.what, e.t]), [['earlier', 0], ['later', 200]]);
  t.fix(1_000_200);
  assert.throws(() => t.fix(1_000_250), /already fixed/);
  t.phase('migrating', 1_000_150);
  assert.equal(t.relative().map((e) => [e.what, e.t]), [['earlier', -100], ['later', 100]]);
  assert.equal(t.absolute().phases, [{ t: 1_000_150, what: 'migrating' }], 'phases are kept for the trace, not in the result');
  assert.is(t.absolute().t0, 1_000_200);
});

test('a trace folder is DIR/SCENARIO, with the backend unless the engine and the repeat when there are several', () => {
  assert.is(traceFolder('/t', 'a', 'engine', 1, 1), '/t/a');
  assert.is(traceFolder('/t', 'a', 'qemu', 1, 1), '/t/a-qemu');
  assert.is(traceFolder('/t', 'a', 'engine', 3, 5), '/t/a-3');
});

async function record(dir: string, verdict: ScenarioResult['verdict'], on: 'failure' | 'always'): Promise<{ r: ScenarioResult; errors: string[] }> {
  const errors: string[] = [];
  const rec = await TraceRecorder.open({ dir, on, backendArgs: ['--backend', 'qemu', '--qemu', '/opt/qemu/bin/qemu-system-x86_64'], onError: (m) => errors.push(m) }, scenario, topo);
  writeFileSync(join(runDir, 'client.pcap'), 'pcap bytes');
  writeFileSync(join(runDir, 'src.qemu.log'), 'qemu log');
  writeFileSync(join(runDir, 'src.console.log'), 'guest console');
  const hooks = rec.launchHooks();
  const transcript = hooks.qmpTranscript('src');
  transcript({ t: 5, dir: 'greeting', msg: { QMP: {} } });
  transcript({ t: 6, dir: 'command', msg: { execute: 'qmp_capabilities' } });
  const vm = { spec: { name: 'src' }, logPath: join(runDir, 'src.qemu.log'), argv: ['qemu-system-x86_64', '-name', 'src'] } as unknown as VmHandle;
  rec.captures([{ point: 'client', ns: 'client', iface: 'so-r1-c0', file: join(runDir, 'client.pcap') }]);
  await rec.topology('before');
  rec.copyRunFiles([vm]);
  const r = result(verdict);
  const timeline = new Timeline();
  timeline.fix(100);
  await rec.finish(r, timeline, []);
  return { r, errors };
}

test('a failed run keeps its trace: every file, a README with the command to rerun it, a result --json readers take', async () => {
  const dir = join(out, 'failed');
  const { r, errors } = await record(dir, 'fail', 'failure');
  assert.equal(errors, []);
  assert.is(r.trace, dir, 'the result points at its trace (the HTML report links it)');
  for (const f of ['README.md', 'scenario.json', 'result.json', 'trace.json', 'timeline.json', 'versions.json', 'topology-before.json',
    'so-r1-c0.pcap', 'src.qemu.log', 'src.console.log', 'src.argv.json', 'src.qmp.jsonl']) {
    assert.ok(existsSync(join(dir, f)), `${f} is in the trace`);
  }
  const readme = readFileSync(join(dir, 'README.md'), 'utf8');
  assert.match(readme, /switchover run \.\/scenario\.json --backend qemu --qemu \/opt\/qemu\/bin\/qemu-system-x86_64/);
  assert.match(readme, /`so-r1-c0\.pcap` \| capture at client \(client netns\)/);
  assert.match(readme, /lost: expected <= 0, got 3/);
  assert.equal(readJsonReport(join(dir, 'result.json')).results[0]!.verdict, 'fail');
  assert.equal(JSON.parse(readFileSync(join(dir, 'scenario.json'), 'utf8')), JSON.parse(JSON.stringify(scenario)));
  const manifest = JSON.parse(readFileSync(join(dir, 'trace.json'), 'utf8')) as TraceManifest;
  assert.equal(manifest.captures, [{ point: 'client', ns: 'client', iface: 'so-r1-c0', file: 'so-r1-c0.pcap' }]);
  assert.is(manifest.analysis, undefined, 'no analysis recorded: nothing to re-judge');
  const lines = readFileSync(join(dir, 'src.qmp.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { dir: string });
  assert.equal(lines.map((l) => l.dir), ['greeting', 'command']);
  const topology = JSON.parse(readFileSync(join(dir, 'topology-before.json'), 'utf8')) as Record<string, Record<string, unknown>>;
  assert.equal(topology.host!.netns, 'so-r1-host');
  assert.equal(topology.client!.neigh, [{ ns: 'client', view: 'ip' }]);
  const versions = JSON.parse(readFileSync(join(dir, 'versions.json'), 'utf8')) as { node: string; backend: { name: string } };
  assert.is(versions.node, process.version);
  assert.is(versions.backend.name, 'qemu');
});

test('a passing run leaves no trace with --trace-on failure, and keeps one with always', async () => {
  const passed = join(out, 'passed');
  const { r } = await record(passed, 'pass', 'failure');
  assert.not.ok(existsSync(passed), 'the folder of a passing run is removed');
  assert.is(r.trace, undefined);
  const kept = join(out, 'kept');
  await record(kept, 'pass', 'always');
  assert.ok(existsSync(join(kept, 'README.md')));
});

test('a rerun replaces its former trace, and a folder that is not a trace is refused, naming --trace', async () => {
  const dir = join(out, 'again');
  await record(dir, 'fail', 'failure');
  writeFileSync(join(dir, 'stale.pcap'), 'old');
  await record(dir, 'fail', 'failure');
  assert.not.ok(existsSync(join(dir, 'stale.pcap')), 'the former trace is gone');
  const other = join(out, 'not-a-trace');
  mkdirSync(other);
  writeFileSync(join(other, 'notes.txt'), 'mine');
  try {
    await TraceRecorder.open({ dir: other, on: 'failure', backendArgs: [] }, scenario, topo);
    assert.unreachable('a folder of other files was taken');
  } catch (e) {
    assert.match((e as Error).message, /--trace: .*not-a-trace exists and is not a trace folder; give --trace an empty or new directory/);
  }
  assert.ok(existsSync(join(other, 'notes.txt')), 'nothing of it was removed');
});

test.run();
