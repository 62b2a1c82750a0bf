// Issue 16's "done when", end to end on real engine VMs: a baseline forced to fail (it loses
// packets at switchover, and `--set expect={"lost":0}` says it must not) leaves a trace folder
// with everything a bug report needs; `switchover analyze` re-judges that folder offline to the
// same verdict and figures; `switchover replay` runs it again on the engine and prints both
// results side by side. Also: the captures and the QMP transcripts are on one clock, and the
// HTML report links the failed scenario to its trace.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requirePrivilege } from '../../../fixtures/privilege.js';
import { runCli } from './run-cli.js';
import type { JsonReport } from '../../report/json.js';
import type { TraceManifest } from '../../run/trace.js';
import { judgedParts } from '../../run/trace-read.js';
import type { QmpTranscriptEntry } from '../../../lib/qmp-client.js';

const privileged = requirePrivilege('trace, analyze and replay of a real run');
const out = mkdtempSync(join(tmpdir(), 'switchover-trace-'));
test.after(() => rmSync(out, { recursive: true, force: true }));

const SCENARIO = 'baseline-bridge-ping';
const traces = join(out, 'traces');
const folder = join(traces, SCENARIO);
const read = <T>(f: string): T => JSON.parse(readFileSync(join(folder, f), 'utf8')) as T;
/** A run this machine could not judge says so (`error`, naming the bottleneck); any other outcome than a fail is a defect. */
const forcedFailure = (code: number | null, r: JsonReport['results'][number]): boolean => {
  if (r.verdict === 'error') {
    assert.match(r.reason ?? '', /bottleneck/, `an error that is not a bottleneck: ${r.reason}`);
    assert.is(code, 2);
    return false;
  }
  assert.is(r.verdict, 'fail', `${r.verdict}: ${r.reason}`);
  assert.is(code, 1);
  return true;
};

if (privileged) {
  test('a baseline forced to fail leaves a trace that re-analyzes to the same verdict and figures, and replays on the engine', async () => {
    const json = join(out, 'results.json');
    const report = join(out, 'report.html');
    const run = await runCli(['run', SCENARIO, '--set', 'expect={"lost":0}', '--trace', traces, '--json', json, '--report', report], { timeoutMs: 240_000 });
    const result = (JSON.parse(readFileSync(json, 'utf8')) as JsonReport).results[0]!;
    const judged = forcedFailure(run.code, result);
    if (judged) assert.match(result.reason ?? '', /lost: expected <= 0, got [1-9]/);
    assert.is(result.trace, folder, `the result names its trace\n${run.stderr}`);

    // Everything a bug report needs, in one folder.
    const manifest = read<TraceManifest>('trace.json');
    assert.equal(manifest.captures.map((c) => c.point), ['client', 'tap0', 'tap1']);
    for (const c of manifest.captures) assert.ok(existsSync(join(folder, `${c.iface}.pcap`)), `${c.point} capture named by its interface ${c.iface}`);
    for (const vm of ['src', 'dst1']) {
      for (const f of [`${vm}.argv.json`, `${vm}.log`, `${vm}.qmp.jsonl`]) assert.ok(existsSync(join(folder, f)), `${f} in the trace`);
      assert.ok(read<string[]>(`${vm}.argv.json`).includes('-qmp'), `${vm}'s command line`);
    }
    assert.equal(read<{ expect: unknown }>('scenario.json').expect, { lost: 0 }, 'the scenario as it ran: --set applied');
    for (const when of ['before', 'after']) {
      const topo = read<Record<'host' | 'client', { link: Array<{ ifname: string }>; fdb: unknown[]; neigh: unknown[] }>>(`topology-${when}.json`);
      const tap0 = manifest.captures.find((c) => c.point === 'tap0')!.iface;
      assert.ok(topo.host.link.some((l) => l.ifname === tap0), `topology ${when}: ${tap0} in the host netns`);
      assert.ok(Array.isArray(topo.host.fdb) && Array.isArray(topo.client.neigh), `topology ${when}: fdb and neighbours`);
    }
    const counters = read<{ delta: { links: Record<string, unknown> } }>('counters.json');
    assert.ok(Object.keys(counters.delta.links).length >= 3, 'kernel counters of the TAPs and the client veth');
    const versions = read<{ node: string; kernel: { release: string }; backend: { name: string; version: string }; switchover: { version: string } }>('versions.json');
    assert.is(versions.node, process.version);
    assert.is(versions.backend.name, 'engine');
    assert.ok(versions.kernel.release && versions.switchover.version);
    assert.match(readFileSync(join(folder, 'README.md'), 'utf8'), /switchover run \.\/scenario\.json/);
    assert.match(readFileSync(report, 'utf8'), new RegExp(`<a href="[^"]*${SCENARIO}/README\\.md" data-trace=`), 'the HTML report links the failed scenario to its trace');

    // One clock: the packets lost in the client's capture were sent while the source's QMP
    // transcript says it had stopped (STOP) and before the destination answered (+ the announce).
    const { t0 } = read<{ t0: number }>('timeline.json');
    const transcript = readFileSync(join(folder, 'src.qmp.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as QmpTranscriptEntry);
    assert.is(transcript[0]!.dir, 'greeting');
    const migrate = transcript.find((e) => e.dir === 'command' && (e.msg as { execute: string }).execute === 'migrate');
    assert.ok(migrate && migrate.t >= t0 && migrate.t - t0 < 1_000, 'migrate is sent at t0');
    const stop = transcript.find((e) => e.dir === 'event' && (e.msg as { event: string }).event === 'STOP');
    assert.ok(stop, 'the source\'s STOP event is in its transcript');
    const lost = result.traffic[0]!.lostSeqs;
    const traced = read<JsonReport>('result.json').results[0]!;
    const lostTimes = traced.traffic[0]!.packets!.filter((p) => p.state === 'lost').map((p) => p.t);
    assert.is(lostTimes.length, lost.length);
    for (const t of lostTimes) assert.ok(t >= stop.t - t0 - 20 && t <= stop.t - t0 + 1_000, `lost at ${t} ms, the source stopped at ${stop.t - t0} ms`);

    // Re-judged offline from the folder: the same verdict and figures.
    const again = await runCli(['analyze', folder, '--json']);
    assert.is(again.code, run.code, again.stderr);
    const rejudged = (JSON.parse(again.stdout) as JsonReport).results[0]!;
    assert.equal(judgedParts(rejudged), judgedParts(traced));
    const text = await runCli(['analyze', folder]);
    assert.match(text.stdout, /same verdict and figures as the run/);

    // Replayed here on the engine, both results side by side.
    const replayJson = join(out, 'replay.json');
    const replay = await runCli(['replay', folder, '--json', replayJson], { timeoutMs: 240_000 });
    const replayed = (JSON.parse(readFileSync(replayJson, 'utf8')) as JsonReport).results[0]!;
    forcedFailure(replay.code, replayed);
    assert.is(replayed.backend, 'engine');
    assert.is(replayed.migration.status, 'completed');
    assert.match(replay.stdout, /trace \(.*\)\s+replay \(here\)/);
    assert.match(replay.stdout, /^verdict\s+(fail|error)\s+(fail|error)/m);
    assert.match(replay.stdout, /ping 0: lost\s+\d+\s+\d+/);
  });
}

test.run();
