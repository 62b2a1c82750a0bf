// The streaming pcap reader: link types, byte orders, nanosecond files, and refusing what
// is not a pcap with a message that says what to do.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatMac, readPcap, PcapFormatError, type PcapPacket } from '../pcap-reader.js';
import { ethernet, ipv4, icmpEcho, sll, writePcap } from '../../../fixtures/pcap-synth.js';

const root = fileURLToPath(new URL('../../../../', import.meta.url));
const fixtures = join(root, 'fixtures', 'pcaps');
const tmp = mkdtempSync(join(tmpdir(), 'swrd-'));
const MAC = '52:54:00:12:34:56';
const frame = (): Buffer => ethernet('ff:ff:ff:ff:ff:ff', MAC, 0x0800, ipv4('10.0.0.1', '10.0.0.2', 1, icmpEcho(8, 1, 1)));

function collect(p: PcapPacket): { ts: number; et: number; src: string | null; payload: number } {
  return {
    ts: p.tsMicros, et: p.ethertype, src: p.srcMacOffset >= 0 ? formatMac(p.buf, p.srcMacOffset) : null,
    payload: p.payloadOffset - p.offset,
  };
}

test('every fixture pcap has as many packets as tcpdump -r counts', async () => {
  for (const f of readdirSync(fixtures).filter((x) => x.endsWith('.pcap'))) {
    const out = execFileSync('tcpdump', ['-nn', '-r', join(fixtures, f)], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
    const info = await readPcap(join(fixtures, f), () => undefined);
    assert.is(info.packets, out.trim().split('\n').length, f);
  }
});

test('Ethernet and Linux SLL v1 headers give ethertype, source MAC and payload offset', async () => {
  const eth = join(tmp, 'eth.pcap');
  writePcap(eth, [{ tsMicros: 1_000_000_123_456, frame: frame() }]);
  const got: ReturnType<typeof collect>[] = [];
  const info = await readPcap(eth, (p) => got.push(collect(p)));
  assert.equal(got, [{ ts: 1_000_000_123_456, et: 0x0800, src: MAC, payload: 14 }]);
  assert.is(info.linkType, 1);

  const cooked = join(tmp, 'sll.pcap');
  writePcap(cooked, [{ tsMicros: 5, frame: sll(MAC, 0x0800, ipv4('10.0.0.1', '10.0.0.2', 1, icmpEcho(8, 1, 1)), 4) }], 113);
  const got2: Array<ReturnType<typeof collect> & { type: number }> = [];
  await readPcap(cooked, (p) => got2.push({ ...collect(p), type: p.sllPacketType }));
  assert.equal(got2, [{ ts: 5, et: 0x0800, src: MAC, payload: 16, type: 4 }]);
});

test('big-endian and nanosecond files', async () => {
  const le = join(tmp, 'le.pcap');
  writePcap(le, [{ tsMicros: 2_000_001, frame: frame() }]);
  const b = readFileSync(le);
  // Rewrite as a big-endian nanosecond file: magic a1b23c4d, all header fields swapped.
  const be = Buffer.from(b);
  be.writeUInt32BE(0xa1b23c4d, 0);
  be.writeUInt16BE(2, 4); be.writeUInt16BE(4, 6);
  be.writeUInt32BE(b.readUInt32LE(16), 16); be.writeUInt32BE(1, 20);
  be.writeUInt32BE(2, 24); be.writeUInt32BE(1500, 28);
  be.writeUInt32BE(b.readUInt32LE(32), 32); be.writeUInt32BE(b.readUInt32LE(36), 36);
  const bePath = join(tmp, 'be-ns.pcap');
  writeFileSync(bePath, be);
  const ts: number[] = [];
  const info = await readPcap(bePath, (p) => ts.push(p.tsMicros));
  assert.equal(ts, [2_000_001]);
  assert.is(info.nanosecond, true);
});

test('not a pcap, pcapng, an impossible record and a cut-off tail', async () => {
  const junk = join(tmp, 'junk.pcap');
  writeFileSync(junk, Buffer.alloc(100, 7));
  await readPcap(junk, () => undefined).then(() => assert.unreachable(), (e: Error) => {
    assert.instance(e, PcapFormatError);
    assert.match(e.message, /not a pcap file: magic 0x07070707/);
  });
  const ng = join(tmp, 'x.pcapng');
  writeFileSync(ng, Buffer.from('0a0d0d0a1c0000004d3c2b1a', 'hex'));
  await readPcap(ng, () => undefined).then(() => assert.unreachable(), (e: Error) => assert.match(e.message, /pcapng.*tcpdump -r IN -w OUT.pcap/));

  const good = join(tmp, 'good.pcap');
  writePcap(good, [{ tsMicros: 1, frame: frame() }, { tsMicros: 2, frame: frame() }]);
  const bytes = readFileSync(good);
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

test('records that straddle the 1 MiB read chunk are delivered whole', async () => {
  const big = join(tmp, 'big.pcap');
  const frames = Array.from({ length: 30_000 }, (_, i) => ({ tsMicros: i, frame: frame() }));
  writePcap(big, frames);
  let n = 0;
  let ok = true;
  await readPcap(big, (p) => { n++; if (p.ethertype !== 0x0800 || p.buf[p.payloadOffset] !== 0x45) ok = false; });
  assert.is(n, 30_000);
  assert.ok(ok);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
