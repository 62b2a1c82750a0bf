import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NETPASS_DEFAULTS, NetpassCache } from '../netpass.js';

const frame = (seq: number, len = 60): Buffer => { const b = Buffer.alloc(len); b.writeUInt32BE(seq, 0); return b; };
const seqOf = (b: Buffer): number => b.readUInt32BE(0);

test('frames come out in arrival order and count as forwarded', () => {
  const c = new NetpassCache();
  for (let i = 0; i < 100; i++) assert.ok(c.push(frame(i), 1000 + i));
  assert.is(c.held, 100);
  assert.is(c.heldBytes, 6000);
  const out = [...c.drain()];
  assert.equal(out.map((f) => seqOf(f.frame)), [...Array(100).keys()]);
  assert.is(out[5]!.tMs, 1005);
  assert.equal(c.stats, { cached: 100, 'cached-bytes': 6000, forwarded: 100, dropped: 0 });
  assert.is(c.held, 0);
});

test('push copies the frame: the caller may reuse its buffer', () => {
  const c = new NetpassCache();
  const buf = frame(1);
  c.push(buf, 0);
  buf.writeUInt32BE(99, 0);
  assert.is(seqOf([...c.drain()][0]!.frame), 1);
});

test('overflow in frames drops the newest and counts it; never grows', () => {
  const c = new NetpassCache({ maxPackets: 10 });
  for (let i = 0; i < 25; i++) c.push(frame(i), i);
  assert.is(c.held, 10);
  assert.equal(c.stats, { cached: 10, 'cached-bytes': 600, forwarded: 0, dropped: 15 });
  assert.equal([...c.drain()].map((f) => seqOf(f.frame)), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

test('overflow in bytes drops the newest, a smaller frame may still fit', () => {
  const c = new NetpassCache({ maxBytes: 3000 });
  assert.ok(c.push(frame(0, 1514), 0));
  assert.not.ok(c.push(frame(1, 1514), 0));
  assert.ok(c.push(frame(2, 60), 0));
  assert.is(c.heldBytes, 1574);
  assert.equal(c.stats, { cached: 2, 'cached-bytes': 1574, forwarded: 0, dropped: 1 });
});

test('frames pushed during drain are drained too, in order', () => {
  const c = new NetpassCache();
  c.push(frame(0), 0);
  c.push(frame(1), 1);
  const seen: number[] = [];
  for (const f of c.drain()) {
    seen.push(seqOf(f.frame));
    if (seen.length === 1) c.push(frame(2), 2);
  }
  assert.equal(seen, [0, 1, 2]);
  assert.is(c.stats.forwarded, 3);
});

test('takeAll returns held frames for the failure path, not counted as forwarded', () => {
  const c = new NetpassCache();
  for (let i = 0; i < 5; i++) c.push(frame(i), i);
  const it = c.drain();
  it.next();
  const rest = c.takeAll();
  assert.equal(rest.map((f) => seqOf(f.frame)), [1, 2, 3, 4]);
  assert.equal(c.stats, { cached: 5, 'cached-bytes': 300, forwarded: 1, dropped: 0 });
  assert.is(c.held, 0);
  assert.ok(c.push(frame(9), 9), 'room again after takeAll');
});

test('a long drain keeps memory bounded (head compaction) and order intact', () => {
  const c = new NetpassCache({ maxPackets: 5000 });
  let next = 0, expect = 0;
  for (let round = 0; round < 20; round++) {
    for (let i = 0; i < 3000; i++) c.push(frame(next++), 0);
    let n = 0;
    for (const f of c.drain()) { assert.is(seqOf(f.frame), expect++); if (++n === 2900) break; }
  }
  assert.is(c.stats.dropped, 0);
  assert.is(c.held, next - expect);
});

test('defaults and parameter checks', () => {
  const c = new NetpassCache();
  assert.is(c.maxBytes, NETPASS_DEFAULTS.maxBytes);
  assert.is(c.maxPackets, 8192);
  assert.throws(() => new NetpassCache({ maxBytes: -1 }), /netpass-max-bytes/);
  const none = new NetpassCache({ maxPackets: 0 });
  assert.not.ok(none.push(frame(0), 0));
  assert.equal(none.stats, { cached: 0, 'cached-bytes': 0, forwarded: 0, dropped: 1 });
  assert.throws(() => new NetpassCache({ maxPackets: 1.5 }), /netpass-max-packets/);
});

test.run();
