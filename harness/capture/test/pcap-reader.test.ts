// The streaming readers, classic pcap and pcapng: link types, byte orders, timestamp
// resolutions, several interfaces and sections, the rarer blocks, and refusing what is not a
// capture with a message that says what to do. Packet counts and timestamps are checked against
// independent readers: pcap-parser (npm) for classic µs files, tshark for pcapng.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readPcap } from '../pcap-reader.js';
import { LINKTYPE_LINUX_SLL, PcapFormatError, type PcapPacket } from '../capture-file.js';
import { formatMac } from '../../../lib/net-addr.js';
import { ethernet, ipv4, icmpEcho, PcapngWriter, sll, writePcap, writePcapng } from '../../../fixtures/pcap-synth.js';
import { FIXTURES } from './fixture-truth.js';

const tmp = mkdtempSync(join(tmpdir(), 'swrd-'));
const MAC = '52:54:00:12:34:56';
const frame = (seq = 1): Buffer => ethernet('ff:ff:ff:ff:ff:ff', MAC, 0x0800, ipv4('10.0.0.1', '10.0.0.2', 1, icmpEcho(8, 1, seq)));
const T = 1_700_000_000_123_456;

function collect(p: PcapPacket): { ts: number; et: number; src: string | null; payload: number } {
  return {
    ts: p.tsMicros, et: p.ethertype, src: p.srcMacOffset >= 0 ? formatMac(p.buf, p.srcMacOffset) : null,
    payload: p.payloadOffset - p.offset,
  };
}

const timesOf = async (file: string): Promise<number[]> => {
  const ts: number[] = [];
  await readPcap(file, (p) => ts.push(p.tsMicros));
  return ts;
};

/** pcap-parser's packets of a classic µs file: its own count and timestamps. */
function pcapParserTimes(file: string): Promise<number[]> {
  const pcapp = createRequire(import.meta.url)('pcap-parser') as { parse(f: string): NodeJS.EventEmitter };
  return new Promise((resolve, reject) => {
    const ts: number[] = [];
    const parser = pcapp.parse(file);
    parser.on('packet', (p: { header: { timestampSeconds: number; timestampMicroseconds: number } }) => {
      ts.push(p.header.timestampSeconds * 1e6 + p.header.timestampMicroseconds);
    });
    parser.on('error', reject);
    parser.on('end', () => resolve(ts));
  });
}

/** tshark's timestamps (µs, from its ns epoch) of the packets on the given interfaces. */
function tsharkTimes(file: string): Array<{ ts: number | null; iface: number | null }> {
  const out = execFileSync('tshark', ['-r', file, '-T', 'fields', '-e', 'frame.time_epoch', '-e', 'frame.interface_id'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  return out.trim().split('\n').filter(Boolean).map((line) => {
    const [epoch = '', iface = ''] = line.split('\t');
    const [s, frac = ''] = epoch.split('.');
    return { ts: epoch ? Number(s) * 1e6 + Number(frac.padEnd(9, '0').slice(0, 6)) : null, iface: iface ? Number(iface) : null };
  });
}

test('every recorded fixture: pcap-parser (classic) and tshark (pcapng) see the same packets at the same times', async () => {
  const files = readdirSync(FIXTURES).filter((f) => /\.pcap(ng)?$/.test(f));
  assert.ok(files.some((f) => f.endsWith('.pcapng')) && files.length >= 8, files.join(' '));
  for (const f of files) {
    const ours = await timesOf(join(FIXTURES, f));
    if (f.endsWith('.pcap')) assert.equal(ours, await pcapParserTimes(join(FIXTURES, f)), f);
    else assert.equal(ours, tsharkTimes(join(FIXTURES, f)).map((x) => x.ts), f);
  }
});

test('Ethernet and Linux SLL v1 headers give ethertype, source MAC and payload offset', async () => {
  const eth = join(tmp, 'eth.pcap');
  writePcap(eth, [{ tsMicros: 1_000_000_123_456, frame: frame() }]);
  const got: ReturnType<typeof collect>[] = [];
  const info = await readPcap(eth, (p) => got.push(collect(p)));
  assert.equal(got, [{ ts: 1_000_000_123_456, et: 0x0800, src: MAC, payload: 14 }]);
  assert.is(info.linkType, 1);
  assert.is(info.format, 'pcap');

  const cooked = join(tmp, 'sll.pcap');
  writePcap(cooked, [{ tsMicros: 5, frame: sll(MAC, 0x0800, ipv4('10.0.0.1', '10.0.0.2', 1, icmpEcho(8, 1, 1)), 4) }], { linkType: LINKTYPE_LINUX_SLL });
  const got2: Array<ReturnType<typeof collect> & { type: number }> = [];
  await readPcap(cooked, (p) => got2.push({ ...collect(p), type: p.sllPacketType }));
  assert.equal(got2, [{ ts: 5, et: 0x0800, src: MAC, payload: 16, type: 4 }]);
});

test('classic pcap in both byte orders, µs and ns, as pcap-parser reads it', async () => {
  const frames = Array.from({ length: 50 }, (_, i) => ({ tsMicros: T + i * 997, frame: frame(i) }));
  for (const [name, opts] of [['le.pcap', {}], ['be.pcap', { bigEndian: true }], ['le-ns.pcap', { nanosecond: true }], ['be-ns.pcap', { bigEndian: true, nanosecond: true }]] as const) {
    const file = join(tmp, name);
    writePcap(file, frames, opts);
    assert.equal(await timesOf(file), frames.map((f) => f.tsMicros), name);
    if (!name.includes('ns')) assert.equal(await pcapParserTimes(file), frames.map((f) => f.tsMicros), `${name}: pcap-parser`);
    assert.is((await readPcap(file, () => undefined)).nanosecond, name.includes('ns'));
  }
});

test('pcapng: two named interfaces, each packet with its interface and link type', async () => {
  const file = join(tmp, 'two.pcapng');
  writePcapng(file, [
    { tsMicros: T, frame: frame(1), iface: 0 },
    { tsMicros: T + 10, frame: sll(MAC, 0x0800, ipv4('10.0.0.1', '10.0.0.2', 1, icmpEcho(8, 1, 1))), iface: 1 },
    { tsMicros: T + 20, frame: frame(2), iface: 0 },
  ], [{ name: 'tap0', description: 'the source TAP' }, { name: 'any', linkType: 113, tsresol: 9 }]);
  const got: Array<[number, number, number, number]> = [];
  const info = await readPcap(file, (p) => got.push([p.tsMicros, p.iface, p.linkType, p.payloadOffset - p.offset]));
  assert.equal(got, [[T, 0, 1, 14], [T + 10, 1, 113, 16], [T + 20, 0, 1, 14]]);
  assert.is(info.format, 'pcapng');
  assert.is(info.linkType, 1);
  assert.is(info.nanosecond, true);
  assert.equal(info.interfaces.map((i) => [i.name, i.description, i.linkType, i.tsUnit, i.packets]), [
    ['tap0', 'the source TAP', 1, 'µs', 2], ['any', undefined, 113, 'ns', 1],
  ]);
  assert.equal(tsharkTimes(file).map((x) => [x.ts, x.iface]), [[T, 0], [T + 10, 1], [T + 20, 0]], 'tshark agrees');
});

test('pcapng timestamps: µs, ns (exact to the µs at any epoch), binary fractions, ms, if_tsoffset, both byte orders', async () => {
  const stamps = [0, 1, 999_999, T, T + 1, 4_102_444_800_000_000 - 1]; // up to 2099-12-31
  for (const [name, iface, exact] of [
    ['us', { tsresol: 6 }, true], ['ns', { tsresol: 9 }, true], ['ps', { tsresol: 12 }, true], ['binary-30', { tsresol: 0x80 | 30 }, false],
    ['ms', { tsresol: 3 }, false], ['offset', { tsoffsetS: 1_600_000_000 }, true],
  ] as const) {
    for (const bigEndian of [false, true]) {
      const file = join(tmp, `ts-${name}-${bigEndian ? 'be' : 'le'}.pcapng`);
      // 64 bits of ps last 213 days from the epoch; an offset cannot take a stamp below zero.
      const input = name === 'offset' ? stamps.filter((s) => s >= 1_600_000_000e6) : name === 'ps' ? stamps.filter((s) => s < 1.8e13) : stamps;
      writePcapng(file, input.map((tsMicros) => ({ tsMicros, frame: frame() })), [iface], { bigEndian });
      const got = await timesOf(file);
      if (exact) assert.equal(got, input, file);
      else if (name === 'ms') assert.equal(got, input.map((s) => Math.floor(s / 1000) * 1000), file);
      else got.forEach((g, i) => assert.ok(Math.abs(g - input[i]!) <= 1, `${file}: ${g} vs ${input[i]}`));
    }
  }
  // A ns count past 2^53 is still exact: 2026-01-01T00:00:00.123456789Z.
  const w = new PcapngWriter(join(tmp, 'ns-exact.pcapng'));
  w.iface({ tsresol: 9 });
  const body = Buffer.alloc(20 + 60);
  const ns = 1_767_225_600_123_456_789n;
  body.writeUInt32LE(0, 0);
  body.writeUInt32LE(Number(ns >> 32n), 4);
  body.writeUInt32LE(Number(ns & 0xffffffffn), 8);
  body.writeUInt32LE(60, 12);
  body.writeUInt32LE(60, 16);
  frame().copy(body, 20, 0, 60);
  w.block(6, body);
  w.close();
  assert.equal(await timesOf(join(tmp, 'ns-exact.pcapng')), [1_767_225_600_123_456]);
});

test('pcapng: simple and obsolete packet blocks, unknown and oversized blocks skipped, statistics, a second section', async () => {
  const file = join(tmp, 'blocks.pcapng');
  const w = new PcapngWriter(file);
  w.block(0x0000000a, Buffer.alloc(16)); // decryption secrets, before any interface
  w.iface({ name: 'eth0', snaplen: 40 });
  w.packet(0, T, frame(1));
  w.packet(0, 0, frame(2), 'spb');                  // no timestamp: the previous packet's
  w.block(0x40000bad, Buffer.alloc(3 << 20, 0x55));  // 3 MiB custom block: bigger than a read chunk
  w.packet(0, T + 5, frame(3), 'opb');
  w.stats(0, T + 6, 42);
  w.section({ bigEndian: true });                    // interface ids start again
  w.iface({ name: 'eth1', tsresol: 9 });
  w.packet(0, T + 7, frame(4));
  w.close();
  const got: Array<[number, number, number]> = [];
  const info = await readPcap(file, (p) => got.push([p.tsMicros, p.iface, p.capLen]));
  assert.equal(got, [[T, 0, 98], [T, 0, 40], [T + 5, 0, 98], [T + 7, 1, 98]], 'the SPB is cut to the snaplen');
  assert.equal(info.interfaces.map((i) => [i.name, i.packets, i.droppedByKernel]), [['eth0', 3, 42], ['eth1', 1, undefined]]);
  assert.is(info.truncated, false);
  assert.is(info.trailing, undefined);
  // tshark lists the custom block as a frame of no interface, and numbers interfaces per section.
  assert.equal(tsharkTimes(file).filter((x) => x.iface !== null).map((x) => x.iface), [0, 0, 0, 0], 'tshark: the same four packets');
});

test('pcapng: a cut last block is truncated, zeros after the blocks are trailing, an interface of another link type is skipped', async () => {
  const file = join(tmp, 'x.pcapng');
  writePcapng(file, [{ tsMicros: T, frame: frame(1) }, { tsMicros: T + 1, frame: frame(2) }], [{ name: 'eth0' }]);
  const whole = readFileSync(file);
  writeFileSync(join(tmp, 'cut.pcapng'), whole.subarray(0, whole.length - 7));
  const cut = await readPcap(join(tmp, 'cut.pcapng'), () => undefined);
  assert.equal([cut.packets, cut.truncated], [1, true]);
  writeFileSync(join(tmp, 'zeros.pcapng'), Buffer.concat([whole, Buffer.alloc(4096)]));
  const zeros = await readPcap(join(tmp, 'zeros.pcapng'), () => undefined);
  assert.equal([zeros.packets, zeros.truncated, zeros.trailing], [2, false, { offset: whole.length, bytes: 4096, reason: 'block length 0' }]);

  const mixed = join(tmp, 'mixed.pcapng');
  writePcapng(mixed, [{ tsMicros: T, frame: frame(1), iface: 1 }, { tsMicros: T + 1, frame: frame(2), iface: 0 }], [{ name: 'wlan0', linkType: 127 }, { name: 'eth0' }]);
  const seen: number[] = [];
  const info = await readPcap(mixed, (p) => seen.push(p.iface));
  assert.equal(seen, [1]);
  assert.equal(info.interfaces.map((i) => [i.decoded, i.packets]), [[false, 1], [true, 1]]);
  assert.is(info.linkType, 1);
  const wifi = join(tmp, 'wifi.pcapng');
  writePcapng(wifi, [{ tsMicros: T, frame: frame(1) }], [{ name: 'wlan0', linkType: 127 }]);
  await readPcap(wifi, () => undefined).then(() => assert.unreachable(), (e: Error) => {
    assert.instance(e, PcapFormatError);
    assert.match(e.message, /link type 127 \(802\.11 radiotap\) is not decoded, so its packets cannot be analysed/);
  });
});

test('not a capture, gzip, empty, an impossible record and a cut-off tail', async () => {
  const junk = join(tmp, 'junk.pcap');
  writeFileSync(junk, Buffer.alloc(100, 7));
  await readPcap(junk, () => undefined).then(() => assert.unreachable(), (e: Error) => {
    assert.instance(e, PcapFormatError);
    assert.match(e.message, /not a capture file: magic 0x07070707 is neither pcap \(a1b2c3d4, a1b23c4d\) nor pcapng \(0a0d0d0a\)/);
  });
  writeFileSync(join(tmp, 'empty.pcap'), '');
  await readPcap(join(tmp, 'empty.pcap'), () => undefined).then(() => assert.unreachable(), (e: Error) => assert.match(e.message, /is empty \(0 bytes\)/));

  const good = join(tmp, 'good.pcap');
  writePcap(good, [{ tsMicros: 1, frame: frame() }, { tsMicros: 2, frame: frame() }]);
  const bytes = readFileSync(good);
  writeFileSync(join(tmp, 'g.pcap.gz'), (await import('node:zlib')).gzipSync(bytes));
  await readPcap(join(tmp, 'g.pcap.gz'), () => undefined).then(() => assert.unreachable(), (e: Error) => assert.match(e.message, /gzip-compressed: decompress it first/));
  const bad = Buffer.from(bytes);
  bad.writeUInt32LE(0x7fffffff, 24 + 8);
  const badPath = join(tmp, 'bad.pcap');
  writeFileSync(badPath, bad);
  await readPcap(badPath, () => undefined).then(() => assert.unreachable(), (e: Error) => assert.match(e.message, /corrupt record 1: captured length/));

  const cut = join(tmp, 'cut.pcap');
  writeFileSync(cut, bytes.subarray(0, bytes.length - 10));
  const info = await readPcap(cut, () => undefined);
  assert.is(info.packets, 1);
  assert.is(info.truncated, true);

  await readPcap(join(tmp, 'missing.pcap'), () => undefined).then(() => assert.unreachable(), (e: NodeJS.ErrnoException) => assert.is(e.code, 'ENOENT'));
});

test('records and blocks that straddle the 1 MiB read chunk are delivered whole', async () => {
  const frames = Array.from({ length: 30_000 }, (_, i) => ({ tsMicros: i, frame: frame() }));
  for (const file of [join(tmp, 'big.pcap'), join(tmp, 'big.pcapng')]) {
    if (file.endsWith('ng')) writePcapng(file, frames);
    else writePcap(file, frames);
    let n = 0;
    let ok = true;
    await readPcap(file, (p) => { if (p.tsMicros !== n++ || p.ethertype !== 0x0800 || p.buf[p.payloadOffset] !== 0x45) ok = false; });
    assert.is(n, 30_000, file);
    assert.ok(ok, file);
  }
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
