import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readSeq, readSeqPayload, SEQ_PAYLOAD_BYTES, writeSeqPayload } from '../seq-payload.js';

const EDGES = [0, 1, 0xffff_ffff, 0x1_0000_0000, 0x1_0000_0001, 1_796_166_174_706_303, Number.MAX_SAFE_INTEGER];

test('the payload is seq then send time, each a big-endian u64, as Node writes BigInts', () => {
  for (const seq of EDGES) {
    for (const timeUs of [0, 1_796_166_174_706_303, Number.MAX_SAFE_INTEGER]) {
      const ours = Buffer.alloc(SEQ_PAYLOAD_BYTES);
      writeSeqPayload(ours, 0, seq, timeUs);
      const node = Buffer.alloc(SEQ_PAYLOAD_BYTES);
      node.writeBigUInt64BE(BigInt(seq), 0);
      node.writeBigUInt64BE(BigInt(timeUs), 8);
      assert.equal(ours, node, `seq ${seq}, time ${timeUs}`);
      assert.equal(readSeqPayload(node, 0), { seq, timeUs });
      assert.is(readSeq(node, 0), seq);
    }
  }
  assert.is(SEQ_PAYLOAD_BYTES, 16);
});

test('read and write at an offset touch only their 16 bytes', () => {
  const b = Buffer.alloc(40, 0xaa);
  writeSeqPayload(b, 11, 0x0102_0304_0506, 42);
  assert.equal([...b.subarray(0, 11)], Array(11).fill(0xaa));
  assert.equal([...b.subarray(27)], Array(13).fill(0xaa));
  assert.equal([...b.subarray(11, 19)], [0, 0, 1, 2, 3, 4, 5, 6]);
  assert.equal(readSeqPayload(b, 11), { seq: 0x0102_0304_0506, timeUs: 42 });
});

test('a negative value or one past the buffer is refused, not wrapped', () => {
  assert.throws(() => writeSeqPayload(Buffer.alloc(16), 0, -1, 0), RangeError);
  assert.throws(() => writeSeqPayload(Buffer.alloc(16), 1, 0, 0), RangeError);
  assert.throws(() => readSeqPayload(Buffer.alloc(15), 0), RangeError);
  assert.throws(() => readSeq(Buffer.alloc(7), 0), RangeError);
  assert.is(readSeq(Buffer.from([0, 0, 0, 0, 0, 0, 0, 9]), 0), 9, 'the seq alone needs only its 8 bytes');
});

test.run();
