import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Progress } from '../progress.js';

function sink(isTTY: boolean, columns = 80) {
  const chunks: string[] = [];
  return { chunks, stream: { isTTY, columns, write: (s: string) => chunks.push(s) } };
}

test('without a TTY: one plain line per change, stamped with the run time', () => {
  let now = 1000;
  const out = sink(false);
  const p = new Progress({ stream: out.stream, now: () => now });
  p.scenarioStart('netpass-bridge-ping', 1, 21);
  now += 12_300;
  p.phase('migrating');
  now += 700;
  p.scenarioEnd('pass');
  p.phase('ignored: no scenario running');
  p.close();
  assert.equal(out.chunks, [
    '[0.0s] netpass-bridge-ping: starting (1/21)\n',
    '[12.3s] netpass-bridge-ping: migrating\n',
    '[13.0s] netpass-bridge-ping: pass in 13.0s\n',
  ]);
  assert.ok(out.chunks.every((c) => !c.includes('\r') && !c.includes('\x1b')), 'no control characters in logs');
});

test('on a TTY: a single live line redrawn in place, truncated to the width, then a permanent line', () => {
  let now = 0;
  const out = sink(true, 44);
  const p = new Progress({ stream: out.stream, now: () => now, tickMs: 60_000 });
  p.scenarioStart('local-4-queues', 3, 21);
  now += 1500;
  p.phase('migrating');
  now += 500;
  p.scenarioEnd('fail');
  p.close();
  assert.is(out.chunks[0], '\r\x1b[K[0.0s] 3/21 local-4-queues: starting (0.0s)');
  assert.is(out.chunks[1], '\r\x1b[K[1.5s] 3/21 local-4-queues: migrating (1.5…');
  assert.is(out.chunks[1]!.length - '\r\x1b[K'.length, 43, 'one column short of the width');
  assert.is(out.chunks[2], '\r\x1b[K[2.0s] local-4-queues: fail in 2.0s\n');
  assert.is(out.chunks.length, 3, 'close after the end writes nothing more');
});

test('on a TTY the clock ticks by itself while a phase runs', async () => {
  const out = sink(true);
  const p = new Progress({ stream: out.stream, tickMs: 10 });
  p.scenarioStart('x');
  await new Promise((r) => setTimeout(r, 100));
  p.close();
  assert.ok(out.chunks.length >= 3, `${out.chunks.length} redraws`);
  assert.is(out.chunks.at(-1), '\r\x1b[K', 'close clears the live line');
});

test.run();
