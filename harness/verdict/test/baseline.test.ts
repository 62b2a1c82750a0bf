import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_TOLERANCE, compareToBaseline, formatComparison, loadBaseline, parseTolerance, saveBaseline, toBaseline } from '../baseline.js';
import { fakeResult } from '../../report/test/fake-result.js';

const base = toBaseline([
  fakeResult({ lost: 0, outageMs: 10, downtimeMs: 40, transferredBytes: 20_000_000, totalTimeMs: 200 }),
  fakeResult({ scenario: 'baseline-bridge-ping', verdict: 'pass', lost: 30, outageMs: 35, downtimeMs: 40 }),
]);

test('a run within tolerance holds the baseline', () => {
  const c = compareToBaseline([
    fakeResult({ lost: 0, outageMs: 14.9, downtimeMs: 49, transferredBytes: 20_000_000, totalTimeMs: 240 }),
    fakeResult({ scenario: 'baseline-bridge-ping', lost: 25, outageMs: 30, downtimeMs: 30 }),
  ], base);
  assert.equal(c.regressions, []);
  assert.is(c.compared, 2);
  assert.is(formatComparison(c), 'baseline: no regression in 2 compared\n');
});

test('more loss, longer outage, longer downtime and lower throughput are each a readable regression', () => {
  const c = compareToBaseline([
    fakeResult({ lost: 3, outageMs: 16, downtimeMs: 51, transferredBytes: 20_000_000, totalTimeMs: 400 }),
  ], base);
  assert.equal(c.regressions, [
    'netpass-bridge-ping [engine]: lost 3, baseline 0 (allowed +0)',
    'netpass-bridge-ping [engine]: outage 16.0 ms, baseline 10.0 ms (allowed up to 15.0 ms: +20% or +5 ms)',
    'netpass-bridge-ping [engine]: downtime 51.0 ms, baseline 40.0 ms (allowed up to 50.0 ms: +20% or +10 ms)',
    'netpass-bridge-ping [engine]: throughput 50.0 MB/s, baseline 100.0 MB/s (allowed down to 80.0 MB/s: -20%)',
  ]);
  assert.match(formatComparison(c), /^baseline: 4 regressions in 1 compared\n {2}netpass-bridge-ping \[engine\]: lost 3/);
});

test('percentage tolerance applies when it is larger than the absolute one', () => {
  const big = toBaseline([fakeResult({ outageMs: 100, downtimeMs: 200 })]);
  assert.equal(compareToBaseline([fakeResult({ outageMs: 119, downtimeMs: 239 })], big).regressions, []);
  assert.is(compareToBaseline([fakeResult({ outageMs: 121, downtimeMs: 200 })], big).regressions.length, 1);
});

test('a pass that became fail or error is a regression; new scenarios are listed, not failed', () => {
  const c = compareToBaseline([
    fakeResult({ verdict: 'error' }),
    fakeResult({ scenario: 'brand-new' }),
    fakeResult({ backend: 'qemu' }),
  ], base);
  assert.equal(c.regressions, ['netpass-bridge-ping [engine]: verdict error, baseline pass']);
  assert.equal(c.missing, ['brand-new [engine]', 'netpass-bridge-ping [qemu]']);
});

test('repeated results are compared by their median, so one outlier neither sets nor breaks a baseline', () => {
  const c = compareToBaseline([fakeResult({ outageMs: 9 }), fakeResult({ outageMs: 300 }), fakeResult({ outageMs: 11 })], base);
  assert.equal(c.regressions, []);
  const saved = toBaseline([fakeResult({ outageMs: 9 }), fakeResult({ outageMs: 300, verdict: 'fail' }), fakeResult({ outageMs: 11 })]);
  assert.is(saved.entries[0]!.outageMs, 11);
  assert.is(saved.entries[0]!.verdict, 'fail', 'a baseline that failed once is not a pass');
  assert.is(saved.entries[0]!.runs, 3);
});

test('save and load round-trip; a --json results file also works as a baseline', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'switchover-base-'));
  try {
    // The directory is the user's to create (issue 18): saving never makes one silently.
    await saveBaseline([fakeResult({ lost: 2 })], join(dir, 'sub', 'baseline.json'))
      .then(() => assert.unreachable('saved into a missing directory'), (e: NodeJS.ErrnoException) => assert.is(e.code, 'ENOENT'));
    assert.not.ok(existsSync(join(dir, 'sub')), 'no directory was created');
    const file = join(dir, 'baseline.json');
    const saved = await saveBaseline([fakeResult({ lost: 2 })], file);
    assert.equal(await loadBaseline(file), JSON.parse(readFileSync(file, 'utf8')));
    assert.is(saved.entries[0]!.lost, 2);
    const results = join(dir, 'results.json');
    writeFileSync(results, JSON.stringify([fakeResult({ lost: 1 })]));
    assert.is((await loadBaseline(results)).entries[0]!.lost, 1);
    writeFileSync(results, JSON.stringify({ results: [fakeResult({ lost: 4 })] }));
    assert.is((await loadBaseline(results)).entries[0]!.lost, 4);
    writeFileSync(results, '{"format":"switchover-baseline","version":1,"entries":[{"scenario":"x"}]}');
    await loadBaseline(results).then(() => assert.unreachable(), (e: Error) => assert.match(e.message, /results\.json: entries\[0\]: expected \{scenario, backend/));
    await loadBaseline(join(dir, 'none.json')).then(() => assert.unreachable(),
      (e: Error) => assert.match(e.message, /none\.json: cannot read the baseline: ENOENT; save one with `switchover baseline save/));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('parseTolerance changes only the figures it names, and refuses nonsense', () => {
  assert.equal(parseTolerance('loss=2,outage=30%,outage=8ms'), { ...DEFAULT_TOLERANCE, lost: 2, outagePct: 30, outageMs: 8 });
  assert.equal(parseTolerance('throughput=5%,downtime=15ms'), { ...DEFAULT_TOLERANCE, throughputPct: 5, downtimeMs: 15 });
  assert.throws(() => parseTolerance('loss=1%'), (e: Error) => e.message === '--tolerance loss=1%: expected a whole number of packets for loss, got "loss=1%"');
  assert.throws(() => parseTolerance('speed=1'), /--tolerance speed=1: expected loss=N/);
  assert.throws(() => parseTolerance('throughput=100%'), /a percentage below 100/);
});

test.run();
