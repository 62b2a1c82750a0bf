import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  HEADER_SIZE, RpDecoder, StreamDecoder, StreamEncoder, StreamError, encodeRp,
  type DeviceState, type StreamSection,
} from '../stream.js';
import { GuestRam, PAGE_SIZE } from '../../guest/ram.js';

const device: DeviceState = {
  nic: { mac: '52:54:00:12:34:56', rxEnabled: true, queues: 2 },
  guest: {
    ip: '192.168.100.2', prefixLength: 24, arpCache: [{ ip: '192.168.100.1', mac: '02:00:00:00:00:01' }],
    udp: [{ port: 9, received: 10, missing: 1, duplicates: 0, reordered: 2, 'highest-seq': 11 }],
  },
};

function sampleStream(opts: { local?: boolean; netpass?: boolean } = {}): Buffer[] {
  const e = new StreamEncoder(8192);
  e.header({ ramSize: 16 * PAGE_SIZE, local: !!opts.local, netpass: !!opts.netpass, returnPath: true, queues: 2 });
  e.passStart(1);
  e.page(0, Buffer.alloc(PAGE_SIZE, 1));
  e.zeroPage(1).zeroPage(2).zeroPage(3).zeroPage(7);
  e.page(8, Buffer.alloc(PAGE_SIZE, 2));
  e.passEnd(1, 6);
  e.ping(77);
  e.passStart(2);
  e.page(8, Buffer.alloc(PAGE_SIZE, 3));
  e.passEnd(2, 1);
  const parts = [];
  if (opts.local) {
    e.tapLocal([
      { vnetHdr: true, offloadFlags: 0x1f, enabled: true, vnetHdrLen: 12 },
      { vnetHdr: true, offloadFlags: 0x1f, enabled: false, vnetHdrLen: 12 },
    ]);
    parts.push(e.flush());
    e.fdsSent(2);
  }
  e.device(device);
  e.eof();
  if (opts.netpass) {
    e.netpassFrame(1000.5, Buffer.alloc(60, 0xee));
    e.netpassFrame(1001.25, Buffer.alloc(1514, 0xdd));
    e.netpassEnd(2, 3);
  }
  parts.push(e.flush());
  return parts;
}

function decodeAll(d: StreamDecoder, data: Buffer, split: number): StreamSection[] {
  const out: StreamSection[] = [];
  for (let i = 0; i < data.length; i += split) {
    for (const s of d.push(data.subarray(i, i + split))) {
      // Copy page and frame views: they point into the pushed chunk.
      if (s.type === 'page') out.push({ ...s, data: Buffer.from(s.data) });
      else if (s.type === 'netpass-frame') out.push({ ...s, frame: Buffer.from(s.frame) });
      else out.push(s);
    }
  }
  return out;
}

test('round trip of every section, at every chunk split', () => {
  const [data] = sampleStream({ netpass: true });
  const reference = decodeAll(new StreamDecoder(), data!, data!.length);
  assert.equal(reference.map((s) => s.type), [
    'header', 'pass-start', 'page', 'zero', 'zero', 'page', 'pass-end', 'ping', 'pass-start', 'page', 'pass-end',
    'device', 'eof', 'netpass-frame', 'netpass-frame', 'netpass-end',
  ]);
  const zero = reference[3] as Extract<StreamSection, { type: 'zero' }>;
  assert.equal([zero.index, zero.count], [1, 3], 'consecutive zero pages coalesce');
  assert.equal(reference[11], { type: 'device', state: device });
  assert.equal(reference[13], { type: 'netpass-frame', timeMs: 1000.5, frame: Buffer.alloc(60, 0xee) });
  assert.equal(reference[15], { type: 'netpass-end', frames: 2, dropped: 3 });
  for (const split of [1, 3, 5, 31, 32, 33, 4096, 4101, 9000]) {
    const d = new StreamDecoder();
    assert.equal(decodeAll(d, data!, split), reference, `split ${split}`);
    d.end();
    assert.ok(d.done);
  }
});

test('RAM migrated through the stream has the same digest', () => {
  const src = new GuestRam(512 * PAGE_SIZE);
  src.fill(0.3, 5);
  src.markAllDirty();
  const e = new StreamEncoder();
  e.header({ ramSize: src.size, local: false, netpass: false, returnPath: false, queues: 1 });
  e.passStart(1);
  let sent = 0;
  for (const p of src.syncDirty()) { if (src.isZero(p)) e.zeroPage(p); else e.page(p, src.read(p)); sent++; }
  e.passEnd(1, sent).device(device).eof();
  const dst = new GuestRam(512 * PAGE_SIZE);
  dst.write(9, Buffer.alloc(PAGE_SIZE, 0x55)); // stale content a zero marker must clear
  const d = new StreamDecoder({ ramSize: dst.size });
  const data = e.flush();
  for (let i = 0; i < data.length; i += 65536) {
    for (const s of d.push(data.subarray(i, i + 65536))) {
      if (s.type === 'page') dst.write(s.index, s.data);
      else if (s.type === 'zero') for (let k = 0; k < s.count; k++) dst.clear(s.index + k);
    }
  }
  d.end();
  assert.is(dst.digest(), src.digest());
});

test('foreign, byte-swapped and newer streams are named', () => {
  const [data] = sampleStream();
  const expectError = (bytes: Buffer, re: RegExp): void => {
    try {
      new StreamDecoder().push(bytes);
      assert.unreachable('should throw');
    } catch (e) {
      assert.instance(e, StreamError);
      assert.match((e as Error).message, re);
    }
  };
  expectError(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n.....'), /not a switchover migration stream \(magic 0x/);
  const swapped = Buffer.from(data!);
  swapped.subarray(0, 8).reverse();
  expectError(swapped, /byte-swapped stream: produced on a host of the other endianness/);
  const newer = Buffer.from(data!);
  newer.writeUInt32LE(9, 8);
  expectError(newer, /unsupported stream version 9 \(this engine speaks 1\)/);
  const badType = Buffer.from(data!);
  badType[HEADER_SIZE] = 0xc3;
  expectError(badType, new RegExp(`unknown section type 0xc3 at offset ${HEADER_SIZE}`));
  const huge = Buffer.from(data!);
  huge.writeUInt32LE(0xfffffff0, HEADER_SIZE + 1);
  expectError(huge, /bad length 4294967280 for RAM pass start section at offset 32 \(expected 4\)/);
});

test('a foreign magic fails on its first 8 bytes, without waiting for more', () => {
  assert.throws(() => new StreamDecoder().push(Buffer.from('garbage!')), /not a switchover migration stream/);
});

test('truncation is reported with the section it cut', () => {
  const [data] = sampleStream();
  const cut = HEADER_SIZE + 5 + 4 + 5 + 100; // inside the first RAM page section
  const d = new StreamDecoder();
  d.push(data!.subarray(0, cut));
  assert.throws(() => d.end(), /truncated stream: EOF inside RAM page section at offset 41/);
  const d2 = new StreamDecoder();
  d2.push(data!.subarray(0, 10));
  assert.throws(() => d2.end(), /truncated stream: EOF inside the header/);
  const d3 = new StreamDecoder();
  d3.push(data!.subarray(0, HEADER_SIZE + 9));
  assert.throws(() => d3.end(), /truncated stream: channel closed after 41 bytes, before the EOF section/);
});

test('section order is checked: no pages outside a pass, no data after the end', () => {
  const e = new StreamEncoder();
  e.header({ ramSize: 4 * PAGE_SIZE, local: false, netpass: false, returnPath: false, queues: 1 });
  e.page(0, Buffer.alloc(PAGE_SIZE, 1));
  assert.throws(() => new StreamDecoder().push(e.flush()), /RAM page section at offset 32: not allowed here \(outside a RAM pass\)/);
  e.header({ ramSize: 4 * PAGE_SIZE, local: false, netpass: false, returnPath: false, queues: 1 });
  e.passStart(1).page(4, Buffer.alloc(PAGE_SIZE, 1));
  assert.throws(() => new StreamDecoder().push(e.flush()), /page 4 is outside guest RAM \(4 pages\)/);
  const [data] = sampleStream();
  const d = new StreamDecoder();
  assert.throws(() => d.push(Buffer.concat([data!, Buffer.from([1])])), /1 byte\(s\) of data after the end of the stream/);
});

test('destination expectations: RAM size, local, queues', () => {
  const [data] = sampleStream();
  assert.throws(() => new StreamDecoder({ ramSize: PAGE_SIZE }).push(data!), /same -m/);
  assert.throws(() => new StreamDecoder({ local: true }).push(data!), /did not enable the local parameter/);
  assert.throws(() => new StreamDecoder({ queues: 4 }).push(data!), /2 queue\(s\) but this VM has 4/);
  const [local] = sampleStream({ local: true });
  assert.throws(() => new StreamDecoder({ local: false }).push(local!), /does not have local enabled/);
});

test('local migration pauses at the TAP section until the fds are received', () => {
  const [first, rest] = sampleStream({ local: true });
  const d = new StreamDecoder({ local: true, queues: 2 });
  const a = d.push(first!);
  const tap = a[a.length - 1]!;
  assert.is(tap.type, 'tap-local');
  assert.equal((tap as Extract<StreamSection, { type: 'tap-local' }>).queues[1], { vnetHdr: true, enabled: false, vnetHdrLen: 12, offloadFlags: 0x1f });
  assert.is(d.awaitingFds, 2);
  assert.throws(() => d.push(Buffer.from([0])), /while waiting for the 2 TAP fd\(s\): the source must wait for FDS_READY/);
  assert.throws(() => d.fdsReceived(1), /received 1 TAP fd\(s\) but the tap-local section announced 2/);
  d.fdsReceived(2);
  assert.equal(d.push(rest!).map((s) => s.type), ['fds-sent', 'device', 'eof']);
  d.end();
  // Bytes after the TAP section in the same chunk are the fd bytes read as data: refused.
  const d2 = new StreamDecoder();
  assert.throws(() => d2.push(Buffer.concat([first!, Buffer.from([0])])), /after the tap-local section, before FDS_READY/);
});

test('a local stream without its fds cannot reach the device state', () => {
  const e = new StreamEncoder();
  e.header({ ramSize: 4 * PAGE_SIZE, local: true, netpass: false, returnPath: true, queues: 1 });
  e.device(device);
  assert.throws(() => new StreamDecoder().push(e.flush()), /without its tap-local and fds-sent sections/);
});

test('netpass frames only after EOF, and only when the header says so', () => {
  const e = new StreamEncoder();
  e.header({ ramSize: 4 * PAGE_SIZE, local: false, netpass: true, returnPath: true, queues: 1 });
  e.device(device).netpassFrame(1, Buffer.alloc(60));
  assert.throws(() => new StreamDecoder().push(e.flush()), /netpass frames come only after EOF/);
  const [plain] = sampleStream();
  const d = new StreamDecoder();
  d.push(plain!);
  assert.ok(d.stateComplete && d.done);
  const [np] = sampleStream({ netpass: true });
  const d2 = new StreamDecoder();
  d2.push(np!.subarray(0, np!.length - 13));
  assert.ok(d2.stateComplete && !d2.done);
  assert.throws(() => d2.end(), /closed after EOF before the netpass end marker \(2 frames read\)/);
});

test('the netpass variants travel in the header flags, and only with netpass', () => {
  const headerOf = (h: Parameters<StreamEncoder['header']>[0]): StreamSection => {
    const e = new StreamEncoder();
    e.header(h);
    return new StreamDecoder().push(e.flush())[0]!;
  };
  const base = { ramSize: 4 * PAGE_SIZE, local: false, returnPath: true, queues: 1 };
  const h = headerOf({ ...base, netpass: true, netpassTrigger: 'first-tx', netpassOrder: 'backlog-first' });
  assert.ok(h.type === 'header');
  if (h.type !== 'header') return;
  assert.equal([h.header.netpassTrigger, h.header.netpassOrder], ['first-tx', 'backlog-first']);
  const series = headerOf({ ...base, netpass: true });
  assert.equal(series.type === 'header' && [series.header.netpassTrigger, series.header.netpassOrder], ['vm-started', 'as-series']);
  // Without netpass the encoder writes no variant bits (they would mean nothing) ...
  const off = headerOf({ ...base, netpass: false, netpassTrigger: 'first-tx', netpassOrder: 'backlog-first' });
  assert.equal(off.type === 'header' && [off.header.netpassTrigger, off.header.netpassOrder], ['vm-started', 'as-series']);
  // ... and a stream that has them without netpass is refused.
  const e = new StreamEncoder();
  e.header({ ...base, netpass: false });
  const bytes = e.flush();
  bytes.writeUInt32LE(bytes.readUInt32LE(24) | 16, 24);
  assert.throws(() => new StreamDecoder().push(bytes), /header flags 0x00000014 set a netpass variant without the netpass flag/);
});

test('return-path messages round trip at any split and reject garbage', () => {
  const msgs = [
    { type: 'pong', id: 7 }, { type: 'fds-ready', count: 4 }, { type: 'vm-started' },
    { type: 'fail', reason: 'guest RAM size mismatch: ünïcode' }, { type: 'netpass-go' }, { type: 'shut', status: 0 },
  ] as const;
  const data = Buffer.concat(msgs.map((m) => encodeRp(m)));
  for (const split of [1, 2, 5, 100]) {
    const d = new RpDecoder();
    const out = [];
    for (let i = 0; i < data.length; i += split) out.push(...d.push(data.subarray(i, i + split)));
    d.end();
    assert.equal(out, msgs);
  }
  assert.throws(() => new RpDecoder().push(Buffer.from([9, 0, 0, 0])), /unknown return-path message type 9 at offset 0/);
  assert.throws(() => new RpDecoder().push(Buffer.from([2, 0, 9, 0])), /bad length 9 for return-path message type 2/);
  const cut = new RpDecoder();
  cut.push(encodeRp({ type: 'pong', id: 1 }).subarray(0, 5));
  assert.throws(() => cut.end(), /truncated return path/);
});

test('encoder batches pages into large buffers', () => {
  const e = new StreamEncoder();
  e.header({ ramSize: 1024 * PAGE_SIZE, local: false, netpass: false, returnPath: false, queues: 1 });
  e.passStart(1);
  const page = Buffer.alloc(PAGE_SIZE, 1);
  for (let i = 0; i < 1024; i++) e.page(i, page);
  assert.is(e.pending, HEADER_SIZE + 9 + 1024 * (5 + 4 + PAGE_SIZE));
  const out = e.flush();
  assert.is(out.length, HEADER_SIZE + 9 + 1024 * (5 + 4 + PAGE_SIZE));
  assert.is(e.pending, 0);
  assert.is(e.flush().length, 0);
});

test.run();
