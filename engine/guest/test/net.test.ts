// The guest stack on synthetic frames: sequence accounting and in-place replies.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GuestNet, inetChecksum, SeqCounter } from '../net.js';

test('sequence counter: gaps are missing, late ones reordered, repeats duplicates', () => {
  const c = new SeqCounter(9);
  for (const s of [0, 1, 3, 4, 2, 4, 7]) c.record(s);
  assert.equal(c.info(), { port: 9, received: 7, missing: 2, duplicates: 1, reordered: 1, 'highest-seq': 7 });
  const d = new SeqCounter(9);
  d.load(c.save());
  d.record(5);
  assert.is(d.info().missing, 1, 'the remembered gaps migrate with the counters');
});

function icmpEcho(dstMac: number[]): Buffer {
  const b = Buffer.alloc(14 + 20 + 16);
  Buffer.from(dstMac).copy(b, 0);
  Buffer.from([2, 0, 0, 0, 0, 1]).copy(b, 6);
  b.writeUInt16BE(0x0800, 12);
  b[14] = 0x45; b.writeUInt16BE(36, 16); b[22] = 64; b[23] = 1;
  b.writeUInt32BE(0xc0a86401, 26); b.writeUInt32BE(0xc0a86402, 30);
  b.writeUInt16BE(inetChecksum(b, 14, 34), 24);
  b[34] = 8; b.writeUInt16BE(0x1234, 38); b.writeUInt16BE(1, 40);
  b.writeUInt16BE(inetChecksum(b, 34, 50), 36);
  return b;
}

test('ICMP echo to the guest is answered in place with valid checksums; other MACs are ignored', () => {
  const out: Buffer[] = [];
  const g = new GuestNet({ mac: '52:54:00:12:34:56', ip: '192.168.100.2', prefix: 24 }, (b, len) => out.push(Buffer.from(b.subarray(0, len))));
  g.receive(icmpEcho([0x52, 0x54, 0, 0x12, 0x34, 0x56]), 50);
  assert.is(out.length, 1);
  const r = out[0]!;
  assert.is(r[34], 0, 'echo reply');
  assert.is(inetChecksum(r, 14, 34), 0, 'IP checksum valid');
  assert.is(inetChecksum(r, 34, 50), 0, 'ICMP checksum valid');
  assert.is(r.readUInt32BE(30), 0xc0a86401);
  g.receive(icmpEcho([0x52, 0x54, 0, 0x12, 0x34, 0x57]), 50);
  assert.is(out.length, 1, 'a frame for another MAC is ignored');
});

test.run();
