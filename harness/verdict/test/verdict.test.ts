// expect.maxLostOrLate (issue 17): one verdict line over every flow's lostOrLate, named by the
// deadline the flows were judged by; no pass when a flow was not judged against one.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkExpectations, verdictOf } from '../verdict.js';
import { fakeResult } from '../../report/test/fake-result.js';
import type { FlowResult, ScenarioResult } from '../../scenario/types.js';

/** Two flows judged against a 20 ms deadline: 3 and 4 lost or late. */
function judged(): ScenarioResult {
  const r = fakeResult();
  const flow = r.traffic[0]!;
  const udp: FlowResult = { ...flow, kind: 'udp', flow: 'udp 192.168.100.1:40000>192.168.100.2:7 echo' };
  r.traffic = [{ ...flow, lostOrLate: 3, deadlineMs: 20 }, { ...udp, lostOrLate: 4, deadlineMs: 20 }];
  return r;
}

const lineOf = (r: ScenarioResult, max: number) => checkExpectations(r, { maxLostOrLate: max }).find((c) => c.name.startsWith('lost or late'));

test('maxLostOrLate: the total over flows against the bound, named by the deadline', () => {
  assert.equal(lineOf(judged(), 7), { name: 'lost or late > 20 ms', expected: '<= 7', actual: '7', ok: true });
  const fail = checkExpectations(judged(), { maxLostOrLate: 6 });
  assert.equal(fail.find((c) => c.name === 'lost or late > 20 ms'), { name: 'lost or late > 20 ms', expected: '<= 6', actual: '7', ok: false });
  assert.is(verdictOf(fail), 'fail');
  assert.is(verdictOf(checkExpectations(judged(), { maxLostOrLate: 7 })), 'pass');
});

test('maxLostOrLate: a flow without lostOrLate (no deadline given to the analysis) fails the line', () => {
  const r = judged();
  const { lostOrLate: _l, deadlineMs: _d, ...bare } = r.traffic[1]!;
  r.traffic[1] = bare;
  assert.equal(lineOf(r, 100), {
    name: 'lost or late > 20 ms', expected: '<= 100', actual: 'not measured (no deadline given to the analysis)', ok: false,
  });
  r.traffic = [];
  assert.is(lineOf(r, 100)?.ok, false, 'no flow: nothing measured');
  assert.is(checkExpectations(judged(), {}).some((c) => c.name.startsWith('lost or late')), false, 'no line unless asked');
});

test.run();
