// The fidelity table's judgement, on made-up results: which measures leave their band, what
// reason each gets, how announces read, and that runs without a verdict are not compared.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { announceSummary, compareToEngine, KNOWN_DIFFERENCES, renderFidelityTable, representative } from '../fidelity.js';
import type { ScenarioResult } from '../../scenario/types.js';
import { fakeResult } from '../../report/test/fake-result.js';

/** RARP rounds at `atMs` after a completion at t=100. */
function withRarps(r: ScenarioResult, atMs: number[]): ScenarioResult {
  return {
    ...r,
    timeline: [{ t: 100, source: 'src', what: 'MIGRATION completed' }],
    announces: atMs.map((t) => ({ t: 100 + t, kind: 'rarp' as const, iface: 'tap1', mac: '52:54:00:12:34:56' })),
  };
}

test('figures inside their bands agree; each one outside is named with its reason', () => {
  const engine = fakeResult({ lost: 20, outageMs: 100, downtimeMs: 60, totalTimeMs: 300 });
  assert.equal(compareToEngine(engine, fakeResult({ backend: 'qemu', lost: 28, outageMs: 140, downtimeMs: 75, totalTimeMs: 500 })), []);
  const far = compareToEngine(engine, fakeResult({ backend: 'qemu', lost: 60, outageMs: 400, downtimeMs: 20, totalTimeMs: 1200 }));
  assert.equal(far.map((d) => d.measure), ['lost', 'outage', 'downtime', 'total time']);
  assert.equal(far.find((d) => d.measure === 'lost'), { measure: 'lost', engine: '20', other: '60', reason: 'unexplained: a bug to look at' });
  assert.is(far.find((d) => d.measure === 'total time')!.reason, KNOWN_DIFFERENCES['total time']);
  assert.is(far.find((d) => d.measure === 'outage')!.reason, 'unexplained: a bug to look at', 'an outage that loses more is not delay');
});

test('a longer outage with the same loss is precopy delay, a known difference', () => {
  const d = compareToEngine(fakeResult({ outageMs: 5 }), fakeResult({ backend: 'qemu', outageMs: 180 }));
  assert.equal(d.map((x) => [x.measure, x.reason]), [['outage', KNOWN_DIFFERENCES['precopy delay']]]);
});

test('small absolute differences stay inside the floor of the band', () => {
  // 2 lost against 9: 350% apart, but within 10 packets.
  assert.equal(compareToEngine(fakeResult({ lost: 2, downtimeMs: 5 }), fakeResult({ backend: 'qemu', lost: 9, downtimeMs: 20 })), []);
});

test('a different verdict is a difference; an unsupported or error run is not compared', () => {
  const engine = fakeResult();
  assert.equal(compareToEngine(engine, fakeResult({ backend: 'qemu', verdict: 'fail' })).map((d) => d.measure), ['verdict']);
  assert.equal(compareToEngine(engine, fakeResult({ backend: 'qemu', verdict: 'unsupported', lost: 500 })), []);
  assert.equal(compareToEngine(engine, fakeResult({ backend: 'qemu', verdict: 'error', lost: 500 })), []);
});

test('announces: the first RARP after completion and the rounds; frames within 5 ms are one round', () => {
  const engine = withRarps(fakeResult(), [10, 60, 210, 460, 810]);
  assert.is(announceSummary(engine), '+10: 0/50/200/450/800');
  assert.is(announceSummary(withRarps(fakeResult(), [700, 702, 750])), '+700: 0/50');
  assert.is(announceSummary(fakeResult()), '-');
  assert.equal(compareToEngine(engine, withRarps(fakeResult({ backend: 'qemu' }), [40, 90, 240, 490, 840])), []);
  const late = compareToEngine(engine, withRarps(fakeResult({ backend: 'qemu' }), [700, 750, 900, 1150, 1500]));
  assert.equal(late.map((d) => [d.measure, d.engine, d.other]), [['announces', '+10: 0/50/200/450/800', '+700: 0/50/200/450/800']]);
  assert.equal(compareToEngine(engine, fakeResult({ backend: 'qemu' })).map((d) => d.measure), ['announces']);
});

test('the table has a row per scenario and backend, the bands, the reasons and what was not compared', () => {
  const engine = fakeResult({ lost: 20 });
  const qemu = fakeResult({ backend: 'qemu', lost: 200 });
  const text = renderFidelityTable([
    { scenario: 'baseline-bridge-ping', backend: 'engine', result: engine, verdicts: 'pass', differs: [] },
    { scenario: 'baseline-bridge-ping', backend: 'qemu 7.2.22', result: qemu, verdicts: 'pass x2, error x1', differs: compareToEngine(engine, qemu) },
    { scenario: 'local-ping', backend: 'qemu 7.2.22', result: { ...fakeResult({ verdict: 'unsupported' }), reason: 'qemu 7.2.22 lacks local' }, verdicts: 'unsupported', differs: [] },
  ]);
  const lines = text.split('\n');
  assert.match(lines[0]!, /^scenario\s+backend\s+verdict\s+lost\s+outage ms\s+downtime ms/);
  assert.match(lines[2]!, /^baseline-bridge-ping\s+qemu 7\.2\.22\s+pass x2, error x1\s+200 .* lost$/);
  assert.match(text, /bands: lost ±max\(10, 50%\)/);
  assert.match(text, /differs:\n  lost: unexplained/);
  assert.match(text, /not compared:\n  local-ping \[qemu 7\.2\.22\] unsupported: qemu 7\.2\.22 lacks local/);
});

test('the representative run is the median by outage of those that reached a verdict; every verdict is counted', () => {
  const runs = [fakeResult({ outageMs: 300 }), fakeResult({ verdict: 'error', outageMs: 0 }), fakeResult({ outageMs: 20 }), fakeResult({ outageMs: 90 })];
  const { result, verdicts } = representative(runs);
  assert.is(result, runs[3]);
  assert.is(verdicts, 'pass x3, error x1');
  assert.equal(representative([fakeResult({ outageMs: 5 }), fakeResult({ outageMs: 7 })]), { result: fakeResult({ outageMs: 5 }), verdicts: 'pass' });
  const errors = [fakeResult({ verdict: 'error' }), fakeResult({ verdict: 'error' })];
  assert.is(representative(errors).result, errors[0]);
});

test.run();
