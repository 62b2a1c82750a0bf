// The compare view's pairing and figures (compare.ts) and the results-file reader it starts
// from (readJsonReport): same name and backend, --pair prefix rules, repeats by their medians,
// the terminal table's A, B and B−A, and a clear error for each kind of bad file.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compareResults, figuresOf, parsePairRule, renderCompareHtml, renderCompareTable } from '../compare.js';
import { readJsonReport, writeJsonReport } from '../json.js';
import { fakeResult, type FakeResultOptions } from './fake-result.js';

const tmp = mkdtempSync(join(tmpdir(), 'swcmp-'));
const labels = { a: 'a.json', b: 'b.json' };
const r = (o: FakeResultOptions) => fakeResult({ verdict: 'pass', ...o });

test('figures: lost over the flows, worst outage and added latency, downtime; none without traffic', () => {
  const x = r({ lost: 5, outageMs: 40, downtimeMs: 30 });
  x.traffic.push({ ...x.traffic[0]!, lost: 2, outageMs: 70, maxAddedLatencyMs: 12 });
  assert.equal(figuresOf(x), { lost: 7, outageMs: 70, delayMs: 12, downtimeMs: 30 });
  const none = r({});
  none.traffic = [];
  none.migration.status = 'none';
  assert.equal(figuresOf(none), { lost: null, outageMs: null, delayMs: null, downtimeMs: null });
});

test('pairs by name and backend; the rest is listed as having no partner', () => {
  const a = [r({ scenario: 's1', lost: 10, downtimeMs: 40 }), r({ scenario: 's2' }), r({ scenario: 's1', backend: 'qemu' })];
  const b = [r({ scenario: 's1', lost: 4, downtimeMs: 55 }), r({ scenario: 's3' })];
  const c = compareResults(a, b);
  assert.equal(c.pairs.map((p) => [p.a.scenario, p.b.scenario, p.backend]), [['s1', 's1', 'engine']]);
  assert.equal(c.unpairedA, ['s2 [engine]', 's1 [qemu]']);
  assert.equal(c.unpairedB, ['s3 [engine]']);
  const t = renderCompareTable(c, labels);
  assert.match(t, /^A = a\.json\nB = b\.json\n/);
  assert.match(t, /^scenario\s+backend\s+verdict A\s+verdict B\s+lost A\s+lost B\s+B−A\s+outage A/m);
  assert.match(t, /^s1\s+engine\s+pass\s+pass\s+10\s+4\s+-6\s+0\.0\s+0\.0\s+0\s+0\.0\s+0\.0\s+0\s+40\.0\s+55\.0\s+\+15\.0$/m);
  assert.match(t, /no partner in B for A's s2 \[engine\], s1 \[qemu\]/);
  assert.match(t, /no partner in A for B's s3 \[engine\]/);
});

test('--pair replaces a name prefix; only the scenarios a rule names are paired', () => {
  const all = ['baseline-bridge-udp', 'baseline-routed-udp', 'netpass-bridge-udp', 'local-ping'].map((scenario) => r({ scenario }));
  const c = compareResults(all, all, [parsePairRule('baseline-:netpass-')]);
  assert.equal(c.pairs.map((p) => `${p.a.scenario}>${p.b.scenario}`), ['baseline-bridge-udp>netpass-bridge-udp']);
  assert.equal(c.unpairedA, ['baseline-routed-udp [engine]'], 'named by a rule, but B has no netpass-routed-udp');
  assert.equal(c.unpairedB, []);
  assert.equal(c.outsideRules, { a: 2, b: 3 });
  assert.match(renderCompareTable(c, labels), /^baseline-bridge-udp → netpass-bridge-udp\s+engine/m);
  assert.match(renderCompareTable(c, labels), /not named by --pair: 2 scenario\(s\) of A \(a\.json\), 3 of B \(b\.json\)/);
});

test('repeats: medians per figure, and the median run is the one drawn', () => {
  const a = [r({ scenario: 's', lost: 9, outageMs: 90 }), r({ scenario: 's', lost: 1, outageMs: 10 }), r({ scenario: 's', lost: 4, outageMs: 40 })];
  const b = [r({ scenario: 's', lost: 2 }), r({ scenario: 's', lost: 3 })];
  const c = compareResults(a, b);
  const [p] = c.pairs;
  assert.is(p!.a.figures.lost, 4);
  assert.is(p!.a.figures.outageMs, 40);
  assert.is(p!.a.shownIndex, 2);
  assert.is(p!.b.figures.lost, 2.5);
  const t = renderCompareTable(c, labels);
  assert.match(t, /runs A\/B/);
  assert.match(t, /^s\s+engine\s+3\/2\s+3 pass\s+2 pass\s+4\s+2\.5\s+-1\.5\s/m);
  assert.match(t, /repeated scenarios by their medians/);
  assert.match(renderCompareHtml(c, labels), /run 3 of 3 \(the median\)/);
});

test('--pair spelling errors name the expected form', () => {
  assert.equal(parsePairRule('baseline-:netpass-'), { from: 'baseline-', to: 'netpass-' });
  for (const bad of ['baseline-', ':netpass-', 'baseline-:', 'a:b:c']) {
    assert.throws(() => parsePairRule(bad), /expected FROM:TO, two scenario name prefixes, e\.g\. --pair baseline-:netpass-/, bad);
  }
});

test('results file reader: round trip, and an error naming the field and the fix for each bad file', () => {
  const good = join(tmp, 'good.json');
  writeJsonReport(good, [r({ scenario: 'x', lost: 2 })], { packets: false });
  assert.is(readJsonReport(good).results[0]!.traffic[0]!.lost, 2);
  const bad = (name: string, body: string, message: RegExp): void => {
    const f = join(tmp, name);
    writeFileSync(f, body);
    assert.throws(() => readJsonReport(f), message, name);
  };
  assert.throws(() => readJsonReport(join(tmp, 'missing.json')), /missing\.json: no such file: give a file written by `switchover run --json FILE`/);
  bad('not-json.json', '{"format":', /not-json\.json: not JSON \(.*\): give a file written by `switchover run --json FILE`/);
  bad('baseline.json', '{"format":"switchover-baseline","entries":[]}', /baseline\.json: format: expected "switchover-results\/1", got "switchover-baseline"/);
  bad('newer.json', '{"format":"switchover-results/2","results":[]}', /newer results format than this switchover reads.*update switchover/);
  bad('no-results.json', '{"format":"switchover-results/1"}', /no-results\.json: results: expected an array of results, got nothing/);
  const res = JSON.stringify(r({ scenario: 'x' }));
  bad('no-traffic.json', `{"format":"switchover-results/1","results":[${res.replace('"traffic":', '"trafficX":')}]}`, /results\[0\]\.traffic: expected an array/);
  bad('bad-lost.json', `{"format":"switchover-results/1","results":[${res.replace(/"lost":0/, '"lost":"0"')}]}`, /results\[0\]\.traffic\[0\]\.lost: expected a number, got "0"/);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
