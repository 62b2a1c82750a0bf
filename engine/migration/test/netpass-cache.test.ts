// The netpass cache on its own (pure, no I/O): order, bounds, and the max-age variant.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NetpassCache } from '../netpass.js';

const frame = (n: number): Buffer => { const b = Buffer.alloc(60); b.writeUInt32BE(n, 56); return b; };
const ids = (frames: Iterable<{ frame: Buffer }>): number[] => [...frames].map((f) => f.frame.readUInt32BE(56));

test('frames come out in arrival order, and frames pushed while draining come too', () => {
  const c = new NetpassCache();
  for (let i = 0; i < 5; i++) c.push(frame(i), i);
  const out: number[] = [];
  for (const f of c.drain()) {
    out.push(f.frame.readUInt32BE(56));
    if (out.length === 2) c.push(frame(99), 10);
  }
  assert.equal(out, [0, 1, 2, 3, 4, 99]);
  assert.equal(c.stats, { cached: 6, 'cached-bytes': 360, forwarded: 6, dropped: 0 });
});

test('x-netpass-max-age-ms drops exactly the frames older than the limit, counted apart', () => {
  const c = new NetpassCache();
  // Received at 0, 10, ..., 190 ms; forwarded at 200 ms with a 100 ms limit: ages 200..10 ms.
  for (let i = 0; i < 20; i++) c.push(frame(i), i * 10);
  let now = 200;
  const out = ids(c.drain({ ms: 100, now: () => now }));
  // Age > 100 ms expires (received before 100 ms); age exactly 100 (received at 100) is kept.
  assert.equal(out, [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
  assert.equal(c.stats, { cached: 20, 'cached-bytes': 1200, forwarded: 10, dropped: 0, 'x-expired': 10 });
  // The age is taken at each frame's turn: a clock that moves on while draining expires more.
  const d = new NetpassCache();
  for (let i = 0; i < 5; i++) d.push(frame(i), 0);
  now = 100;
  const seen: number[] = [];
  for (const f of d.drain({ ms: 101, now: () => now })) { seen.push(f.frame.readUInt32BE(56)); now += 1; }
  assert.equal(seen, [0, 1]);
  assert.is(d.stats['x-expired'], 3);
  assert.is(d.held, 0);
  assert.is(d.heldBytes, 0);
});

test('without a limit nothing expires and the stats carry no x-expired', () => {
  const c = new NetpassCache();
  c.push(frame(1), 0);
  assert.equal(ids(c.drain()), [1]);
  assert.not.ok('x-expired' in c.stats);
});

test('bounds: a full cache drops the newest frame and keeps what it holds', () => {
  const c = new NetpassCache({ maxPackets: 2, maxBytes: 1000 });
  assert.ok(c.push(frame(1), 0) && c.push(frame(2), 0));
  assert.not.ok(c.push(frame(3), 0));
  assert.equal(ids(c.drain()), [1, 2]);
  assert.is(c.stats.dropped, 1);
  assert.throws(() => new NetpassCache({ maxPackets: -1 }), /netpass-max-packets/);
});

test.run();
