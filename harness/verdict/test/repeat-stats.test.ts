import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatRepeatStats, gapHistogram, repeatStats, repeatStatsByScenario } from '../repeat-stats.js';
import { fakeResult } from '../../report/test/fake-result.js';

test('pass rate, outage percentiles and losses over repeated runs', () => {
  const runs = [
    ...Array.from({ length: 18 }, (_, i) => fakeResult({ outageMs: 2 + (i % 3), maxGapMs: 1.5 })),
    fakeResult({ verdict: 'fail', lost: 4, outageMs: 120, maxGapMs: 130 }),
    fakeResult({ verdict: 'fail', lost: 1, outageMs: 40, maxGapMs: 45 }),
  ];
  const s = repeatStats(runs);
  assert.is(s.runs, 20);
  assert.is(s.passed, 18);
  assert.is(s.passRate, 0.9);
  assert.equal(s.verdicts, { pass: 18, fail: 2, unsupported: 0, error: 0 });
  assert.equal(s.outageMs, { p50: 3, p95: 40, max: 120 });
  assert.equal(s.lost, { total: 5, runsWithLoss: 2, max: 4 });
  assert.equal(s.gaps, [
    { fromMs: 1, toMs: 2, count: 18 },
    { fromMs: 2, toMs: 5, count: 0 },
    { fromMs: 5, toMs: 10, count: 0 },
    { fromMs: 10, toMs: 20, count: 0 },
    { fromMs: 20, toMs: 50, count: 1 },
    { fromMs: 50, toMs: 100, count: 0 },
    { fromMs: 100, toMs: 200, count: 1 },
  ]);
  const text = formatRepeatStats(s);
  assert.is(text.split('\n')[0], 'netpass-bridge-ping [engine]: 20 runs, 18 passed (90%), 2 fail');
  assert.match(text, /outage p50 3 ms, p95 40 ms, max 120 ms; lost 5 in 2 runs \(max 4 in one\)/);
  assert.match(text, /\n {8}1-2 ms \| #{30} 18\n/);
  assert.match(text, /\n {8}2-5 ms \| 0\n/);
  assert.match(text, /\n {4}100-200 ms \| #{2} 1\n$/);
});

test('gapHistogram puts huge gaps in the open last bucket and is empty for no data', () => {
  assert.equal(gapHistogram([]), []);
  assert.equal(gapHistogram([9000]), [{ fromMs: 5000, toMs: Infinity, count: 1 }]);
  assert.equal(gapHistogram([0.2]), [{ fromMs: 0, toMs: 1, count: 1 }]);
});

test('results of several scenarios are grouped; mixing them in one call is refused', () => {
  const groups = repeatStatsByScenario([fakeResult(), fakeResult({ scenario: 'other' }), fakeResult(), fakeResult({ backend: 'qemu' })]);
  assert.equal(groups.map((g) => [g.scenario, g.backend, g.runs]), [
    ['netpass-bridge-ping', 'engine', 2], ['other', 'engine', 1], ['netpass-bridge-ping', 'qemu', 1],
  ]);
  assert.throws(() => repeatStats([fakeResult(), fakeResult({ scenario: 'other' })]), /mixes netpass-bridge-ping \[engine\] with other \[engine\]/);
  assert.throws(() => repeatStats([]), /at least one result/);
});

test.run();
