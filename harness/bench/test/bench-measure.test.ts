// The bench sections' pure helpers: order statistics, units, ping's summary, verdict counts,
// the NIC-less engine VM command line. No VM, no network.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseFloodSummary } from '../engine-echo.js';
import { engineVmArgv, mbPerS, ran, round, verdicts } from '../measure.js';
import type { ScenarioResult } from '../../scenario/types.js';

test('mbPerS is decimal MB per second; round keeps the digits asked', () => {
  assert.is(mbPerS(500e6, 1000), 500);
  assert.is(mbPerS(1e6, 250), 4);
  assert.ok(Number.isNaN(mbPerS(1, 0)));
  assert.is(round(1.26, 1), 1.3);
  assert.is(round(1234.5, 0), 1235);
});

test('parseFloodSummary reads iputils ping -f -q output', () => {
  const out = 'PING 192.168.100.2 (192.168.100.2) 56(84) bytes of data.\n\n--- 192.168.100.2 ping statistics ---\n'
    + '20000 packets transmitted, 19990 received, 0.05% packet loss, time 1602ms\n'
    + 'rtt min/avg/max/mdev = 0.004/0.021/3.682/0.138 ms, ipg/ewma 0.030/0.006 ms\n';
  assert.equal(parseFloodSummary(out), { transmitted: 20000, received: 19990, timeMs: 1602, avgRttMs: 0.021 });
  const none = parseFloodSummary('186 packets transmitted, 0 received, 100% packet loss, time 2988ms\n');
  assert.equal(none, { transmitted: 186, received: 0, timeMs: 2988 });
  assert.throws(() => parseFloodSummary('ping: connect: Network is unreachable\n'), /no ping summary line/);
});

test('verdicts counts verdicts and names the first failure', () => {
  const r = (verdict: ScenarioResult['verdict'], reason?: string): ScenarioResult => ({ verdict, ...(reason ? { reason } : {}) } as ScenarioResult);
  assert.is(verdicts([r('pass'), r('pass')]), '2 pass');
  assert.is(verdicts([r('pass'), r('fail', 'lost: expected <= 0, got 1'), r('fail', 'other')]),
    '1 pass, 2 fail (first fail: lost: expected <= 0, got 1)');
  assert.match(verdicts([r('fail', 'x'), r('error', 'boom\nstack')]), /^1 fail, 1 error \(first error: boom\)$/);
  assert.is(verdicts([r('unsupported', 'lacks netpass')]), '1 unsupported (first unsupported: lacks netpass)');
  assert.equal([r('pass'), r('fail'), r('error'), r('unsupported')].map(ran), [true, true, false, false]);
});

test('engineVmArgv starts a NIC-less engine VM with fill and incoming', () => {
  const { argv, qmpPath } = engineVmArgv('/repo', { name: 'dst', dir: '/run/x', memMB: 1024, fill: 0.5, incoming: 'defer' });
  assert.is(qmpPath, '/run/x/dst.qmp');
  assert.equal(argv.slice(1), [
    '/repo/bin/switchover.js', 'vm', '-name', 'dst', '-m', '1024M', '-guest', 'dirty-rate=0,fill=0.5',
    '-qmp', 'unix:/run/x/dst.qmp,server=on,wait=off', '-incoming', 'defer',
  ]);
  assert.not.ok(engineVmArgv('/repo', { name: 's', dir: '/d', memMB: 256, dirtyRate: 2000 }).argv.includes('-incoming'));
});

test.run();
