// Fuzzing the capture readers and the analyzer (issue 15: robust on anything): seeded mutations
// of a real classic pcap and of pcapng files (two interfaces, both byte orders, the rarer block
// types) must each end in an analysis or a PcapFormatError / AnalysisLimitError: no other
// exception, no hang. A failure names its seed and case, which reproduce anywhere.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AnalysisLimitError, analyzeCaptures } from '../analyzer.js';
import { PcapFormatError } from '../capture-file.js';
import { ethernet, icmpEcho, ipv4, PcapngWriter, sll2, udpStream } from '../../../fixtures/pcap-synth.js';
import { SeededRandom } from '../../../fixtures/seeded-random.js';
import { ETHERTYPE_IPV4 } from '../../../lib/net-addr.js';
import { FIXTURES } from './fixture-truth.js';

const tmp = mkdtempSync(join(tmpdir(), 'swfuzz-'));
const CASES = 400;
const CASE_TIMEOUT_MS = 10_000;

function pcapngSeed(bigEndian: boolean): Buffer {
  const file = join(tmp, `seed-${bigEndian}.pcapng`);
  const w = new PcapngWriter(file, { bigEndian });
  w.iface({ name: 'client', description: 'veth' });
  w.iface({ name: 'any', linkType: 276, tsresol: 9, tsoffsetS: 5 });
  const T = 1_700_000_000_000_000;
  for (let q = 0; q < 40; q++) {
    const req = ipv4('192.168.100.1', '192.168.100.2', 1, icmpEcho(8, 7, q));
    w.packet(0, T + q * 1000, ethernet('52:54:00:12:34:56', '02:00:00:00:00:01', ETHERTYPE_IPV4, req), q % 7 === 3 ? 'opb' : 'epb');
    w.packet(1, T + q * 1000 + 30, sll2(4, '02:00:00:00:00:01', ETHERTYPE_IPV4, ipv4('192.168.100.2', '192.168.100.1', 1, icmpEcho(0, 7, q))));
    w.packet(0, T + q * 1000 + 50, ethernet('52:54:00:12:34:56', '02:00:00:00:00:01', ETHERTYPE_IPV4, ipv4('192.168.100.1', '192.168.100.2', 17, udpStream(4000, 7, q, T))));
    if (q === 20) { w.packet(0, 0, Buffer.alloc(60, 1), 'spb'); w.block(0x40000bad, Buffer.alloc(30, 2)); }
  }
  w.stats(0, T + 50_000, 3);
  w.section({ bigEndian: !bigEndian });
  w.iface({ name: 'tap0' });
  w.packet(0, T + 60_000, ethernet('52:54:00:12:34:56', '02:00:00:00:00:01', ETHERTYPE_IPV4, ipv4('192.168.100.1', '192.168.100.2', 1, icmpEcho(8, 7, 41))));
  w.close();
  return readFileSync(file);
}

/** One mutation: flipped bytes, an interesting u32, a cut, a repeated or inserted range. */
function mutate(seed: Buffer, r: SeededRandom): Buffer {
  let b = Buffer.from(seed);
  for (let n = r.int(1, 3); n > 0; n--) {
    const at = r.int(0, Math.max(0, b.length - 4));
    switch (r.int(0, 5)) {
      case 0:
        for (let k = r.int(1, 8); k > 0; k--) b[r.int(0, b.length - 1)] = r.int(0, 255);
        break;
      case 1: {
        const v = r.pick([0, 1, 4, 12, 16, 28, 0xffff, 0x7fffffff, 0xffffffff, 0x0a0d0d0a, 0x1a2b3c4d, 0x4d3c2b1a, r.int(0, 2 ** 32 - 1)]);
        if (r.next() < 0.5) b.writeUInt32LE(v >>> 0, at); else b.writeUInt32BE(v >>> 0, at);
        break;
      }
      case 2:
        b = b.subarray(0, r.int(0, b.length));
        break;
      case 3: {
        const from = r.int(0, b.length - 1);
        const part = b.subarray(from, Math.min(b.length, from + r.int(1, 400)));
        b = Buffer.concat([b.subarray(0, at), part, b.subarray(at)]);
        break;
      }
      case 4:
        b = Buffer.concat([b.subarray(0, at), r.bytes(r.int(1, 64)), b.subarray(at)]);
        break;
      default:
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + r.int(1, 200)))]);
    }
  }
  return b;
}

async function fuzz(name: string, seed: Buffer, seedNo: number): Promise<{ analysed: number; refused: number }> {
  const r = new SeededRandom(seedNo);
  let analysed = 0, refused = 0;
  for (let i = 0; i < CASES; i++) {
    const file = join(tmp, `${name}-${i}`);
    writeFileSync(file, mutate(seed, r));
    const what = `${name} seed ${seedNo} case ${i}`;
    let timer: NodeJS.Timeout | undefined;
    const hang = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no end after ${CASE_TIMEOUT_MS} ms`)), CASE_TIMEOUT_MS); });
    try {
      const a = await Promise.race([analyzeCaptures([{ path: file }]), hang]);
      analysed++;
      for (const f of a.flows) assert.is(f.received + f.lost + f.inFlight, f.sent, `${what}: ${f.flow} adds up`);
      assert.ok(a.packets >= 0 && a.points.every((p) => p.packets > 0), what);
    } catch (e) {
      if (!(e instanceof PcapFormatError || e instanceof AnalysisLimitError)) {
        throw new Error(`${what}: ${(e as Error).stack ?? String(e)}`);
      }
      refused++;
    } finally {
      clearTimeout(timer);
      rmSync(file, { force: true });
    }
  }
  return { analysed, refused };
}

test(`classic pcap: ${CASES} mutations of a real capture end in an analysis or a format error`, async () => {
  const seed = readFileSync(join(FIXTURES, 'ping-drop-window.pcap')).subarray(0, 24 + 40 * 114);
  const { analysed, refused } = await fuzz('pcap', seed, 1501);
  assert.ok(analysed > 50 && refused > 20, `analysed ${analysed}, refused ${refused}: both paths are exercised`);
});

for (const bigEndian of [false, true]) {
  test(`pcapng (${bigEndian ? 'big' : 'little'}-endian first section): ${CASES} mutations end in an analysis or a format error`, async () => {
    const { analysed, refused } = await fuzz(`pcapng-${bigEndian ? 'be' : 'le'}`, pcapngSeed(bigEndian), bigEndian ? 1503 : 1502);
    assert.ok(analysed > 50 && refused > 20, `analysed ${analysed}, refused ${refused}: both paths are exercised`);
  });
}

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
