// The table, JSON and JUnit writers on results with every verdict, including hostile text
// (XML metacharacters, control characters) in names and reasons.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderResultsTable, formatSeqs } from '../table.js';
import { buildJsonReport, exitCodeFor, writeJsonReport, type JsonReport } from '../json.js';
import { junitXml, writeJunitReport } from '../junit.js';
import { renderHtmlReport } from '../html.js';
import type { ScenarioResult, Verdict } from '../../scenario/types.js';
import { resultFromFixture } from './report-fixture.js';

const tmp = mkdtempSync(join(tmpdir(), 'swrep-'));

function result(scenario: string, verdict: Verdict, extra: Partial<ScenarioResult> = {}): ScenarioResult {
  return {
    scenario, backend: 'engine', verdict, startedAt: '2026-01-01T00:00:00.000Z', wallMs: 1500,
    migration: { status: 'completed', downtimeMs: 42, totalTimeMs: 300, transferredBytes: 1 << 20 },
    traffic: [{
      kind: 'ping', flow: 'icmp 192.168.100.1>192.168.100.2 id=1', sent: 100, received: 95, lost: 5, lostSeqs: [10, 11, 12, 40, 41],
      delayed: 2, maxAddedLatencyMs: 30, duplicates: 0, reordered: 1, outageMs: 50, maxGapMs: 52, inFlight: 0, baselineRttMs: 0.1,
      packets: [{ seq: 10, t: 1, state: 'lost' }],
    }],
    netpass: { cached: 3, forwarded: 3, dropped: 0 }, announces: [], macFlapping: false, fdbMoves: [], timeline: [],
    expectations: [{ name: 'lost', expected: '0', actual: '5', ok: verdict !== 'fail' }],
    ...extra,
  };
}

const results = [
  result('plain', 'pass'),
  result('netpass <&> "quoted"', 'fail', { reason: 'lost 5 packets\u0007 beyond <limit>' }),
  result('vhost', 'unsupported', { reason: 'engine backend has no vhost' }),
  result('crash', 'error', { reason: 'destination died: exit 137' }),
];

test('formatSeqs folds runs and caps long lists', () => {
  assert.is(formatSeqs([]), '-');
  assert.is(formatSeqs([3, 4, 5, 7, 9, 10]), '3-5,7,9-10');
  assert.match(formatSeqs(Array.from({ length: 40 }, (_, i) => i * 2), 3), /^0,2,4,… \(40 seqs\)$/);
});

test('terminal table: one row per scenario, failed expectations and lost seqs spelled out', () => {
  const t = renderResultsTable(results);
  assert.match(t, /^scenario\s+backend\s+verdict/);
  assert.match(t, /plain\s+engine\s+PASS/);
  assert.match(t, /✗ lost: expected 0, got 5/);
  assert.match(t, /lost on icmp 192\.168\.100\.1>192\.168\.100\.2 id=1: 10-12,40-41/);
  assert.match(t, /4 scenarios: 1 pass, 1 fail, 1 unsupported, 1 error$/);
});

test('terminal table: reordered shows its depth; a deadline adds a lost/late column', () => {
  const flow = results[0]!.traffic[0]!;
  const plain = renderResultsTable([result('plain', 'pass')]);
  assert.not.match(plain, /depth|late>/, 'older results and no deadline: the table as before');
  const deep = result('deep', 'pass', { traffic: [{ ...flow, reordered: 2, reorderedMaxDepth: 6, lostOrLate: 9, deadlineMs: 20 }] });
  const t = renderResultsTable([deep]);
  const [header, row] = t.split('\n').filter((l) => /^flow\s|^deep: /.test(l));
  assert.match(header!, /\sreord\s.*\sbase rtt ms\s+lost\/late>20ms$/);
  assert.match(row!, /\s2 \(depth 6\)\s/);
  assert.match(row!, /\s9$/);
  // Different deadlines: each cell names its own; a flow judged against none shows "-".
  const other = result('other', 'pass', { traffic: [{ ...flow, lostOrLate: 4, deadlineMs: 50 }] });
  const mixed = renderResultsTable([deep, other, result('none', 'pass')]).split('\n');
  assert.match(mixed.find((l) => l.startsWith('flow '))!, /lost\/late>deadline$/);
  assert.match(mixed.find((l) => l.startsWith('deep: '))!, /\s9 \(>20ms\)$/);
  assert.match(mixed.find((l) => l.startsWith('other: '))!, /\s4 \(>50ms\)$/);
  assert.match(mixed.find((l) => l.startsWith('none: '))!, /\s-$/);
  // The JSON carries the new per-flow fields as they are, with or without the packet lists.
  const measured = { ...deep, traffic: [{ ...deep.traffic[0]!, addedDelayMs: { p50: 10, p99: 40, max: 41 } }] };
  for (const packets of [true, false]) {
    const f = buildJsonReport([measured], { packets }).results[0]!.traffic[0]!;
    assert.equal([f.reorderedMaxDepth, f.addedDelayMs, f.lostOrLate, f.deadlineMs], [6, { p50: 10, p99: 40, max: 41 }, 9, 20], `packets ${packets}`);
  }
});

test('JSON: results plus summary with the DESIGN.md exit code; packets optional', () => {
  assert.is(exitCodeFor([results[0]!, results[2]!]), 0, 'unsupported is allowed');
  assert.is(exitCodeFor([results[0]!, results[1]!]), 1);
  assert.is(exitCodeFor(results), 2);
  const file = join(tmp, 'sub', 'r.json');
  writeJsonReport(file, results, { packets: false });
  const j = JSON.parse(readFileSync(file, 'utf8')) as JsonReport;
  assert.is(j.format, 'switchover-results/1');
  assert.equal(j.summary, { total: 4, pass: 1, fail: 1, unsupported: 1, error: 1, exitCode: 2 });
  assert.is(j.results[1]!.traffic[0]!.lostSeqs.length, 5);
  assert.is(j.results[1]!.traffic[0]!.packets, undefined);
  assert.is(buildJsonReport(results).results[0]!.traffic[0]!.packets!.length, 1);
});

test('JUnit: counts, failure/error/skipped elements, properties, escaping', () => {
  const xml = junitXml(results);
  assert.match(xml, /<testsuite name="switchover" tests="4" failures="1" errors="1" skipped="1" time="6\.000"/);
  assert.match(xml, /<testcase name="netpass &lt;&amp;&gt; &quot;quoted&quot;" classname="switchover\.engine" time="1\.500">/);
  assert.match(xml, /<failure message="lost 5 packets\ufffd beyond &lt;limit&gt;" type="expectation">FAIL lost: expected 0, got 5/);
  assert.match(xml, /<error message="destination died: exit 137" type="error">/);
  assert.match(xml, /<skipped message="unsupported: engine backend has no vhost"\/>/);
  assert.match(xml, /<property name="traffic\.0\.lost" value="5"\/>/);
  assert.match(xml, /<property name="migration\.downtimeMs" value="42"\/>/);
  assert.not.match(xml, /\u0007/);
  // One testcase per scenario, every element closed.
  assert.is(xml.match(/<testcase /g)!.length, 4);
  assert.is(xml.match(/<\/testcase>/g)!.length, 4);
  const file = join(tmp, 'junit.xml');
  writeJunitReport(file, results);
  assert.is(readFileSync(file, 'utf8'), xml);
});

test('HTML: self-contained, escaped, one section per result, marks from a fixture run', async () => {
  const fx = await resultFromFixture('ping-drop-window.pcap', 'fixture');
  const html = renderHtmlReport([...results, fx], { now: new Date(0) });
  assert.is(html.match(/<section class="scenario"/g)!.length, 5);
  assert.not.match(html, /netpass <&>/);
  assert.match(html, /netpass &lt;&amp;&gt; &quot;quoted&quot;/);
  assert.not.match(html, /<(link|img)\b|<script[^>]+src=/);
  const lost = [...html.matchAll(/data-flow="0" data-seq="(\d+)" data-state="lost"/g)].map((m) => Number(m[1]));
  assert.equal(lost.slice(results.length), fx.traffic[0]!.lostSeqs, 'after one mark per hand-made result');
  assert.match(html, /data-downtime-ms="\d+"/);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
