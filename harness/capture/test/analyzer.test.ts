// The analyzer against captures with known truth: real captures recorded by
// fixtures/make-pcaps.ts (truth from ping / the UDP peer / nftables counters), and synthetic
// ones for cases a real run cannot produce on demand (announces, MAC flapping, duplicates, seq
// wrap). Several capture points, and holes in the request stream: capture-points.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { analyzeCaptures, analyzePcap } from '../analyzer.js';
import { LINKTYPE_LINUX_SLL2 } from '../capture-file.js';
import { announceFrame, ethernet, icmpEcho, ipv4, sll2, udpStream, writePcap } from '../../../fixtures/pcap-synth.js';
import { ETHERTYPE_IPV4 } from '../../../lib/net-addr.js';
import { analyzeFixture, assertTruth, loadTruths } from './fixture-truth.js';

const tmp = mkdtempSync(join(tmpdir(), 'swpcap-'));
const truths = loadTruths();

test('the fixture set covers loss, delay, in flight, holes, UDP both ways, SLL, SLL2 and a two-interface pcapng', () => {
  const kinds = new Set(truths.map((t) => `${t.kind}/${t.mode}`));
  assert.ok(kinds.has('ping/request-reply') && kinds.has('udp/request-reply') && kinds.has('udp/one-way'));
  const links = new Set(truths.map((t) => t.linkType));
  assert.ok(links.has(1) && links.has(113) && links.has(276), `link types ${[...links].join(',')}`);
  assert.ok(truths.some((t) => t.lostSeqs.length > 0));
  assert.ok(truths.some((t) => t.delayedSeqs.length > 0));
  assert.ok(truths.some((t) => t.inFlightSeqs.length > 0));
  assert.ok(truths.some((t) => t.notOnWireSeqs?.length && t.senderLog));
  assert.ok(truths.some((t) => t.pcap.endsWith('.pcapng') && t.split && t.lastSeen));
});

for (const truth of truths) {
  test(`${truth.pcap}: lost, delayed, in-flight and not-on-wire sets equal the ground truth`, async () => {
    const a = await analyzeFixture(truth);
    assert.is(a.linkType, truth.linkType);
    assert.is(a.truncated, false);
    const f = assertTruth(a, truth);
    if (truth.lostSeqs.length || truth.delayedSeqs.length) {
      assert.ok(f.outageMs > 0 && f.outageStartMs !== null && f.outageEndMs! > f.outageStartMs);
      assert.ok(f.maxGapMs > f.baselineRttMs, 'a loss or delay leaves a gap between replies');
    } else {
      assert.is(f.outageMs, 0);
    }
    assert.is(f.packets?.length, f.sent);
    assert.is(f.packets!.filter((p) => p.state === 'lost').length, f.lost);
  });
}

const CLIENT = '02:00:00:00:00:01';
const GUEST = '52:54:00:12:34:56';
const T0 = 1_700_000_000_000_000;
const ping = (type: 0 | 8, seq: number, id = 7, vlan?: number): Buffer => type === 8
  ? ethernet(GUEST, CLIENT, ETHERTYPE_IPV4, ipv4('192.168.100.1', '192.168.100.2', 1, icmpEcho(8, id, seq)), vlan)
  : ethernet(CLIENT, GUEST, ETHERTYPE_IPV4, ipv4('192.168.100.2', '192.168.100.1', 1, icmpEcho(0, id, seq)), vlan);

test('synthetic: outage window, delay rule, duplicates, reordering, in flight, relative times', async () => {
  const frames: Array<{ tsMicros: number; frame: Buffer }> = [];
  for (let s = 0; s < 300; s++) {
    const t = T0 + s * 10_000;
    frames.push({ tsMicros: t, frame: ping(8, s) });
    if (s >= 100 && s < 110) continue;                                           // lost: 100 ms of slots
    const rtt = s >= 150 && s < 153 ? 40_000 : 100;                              // 40 ms late: delayed
    frames.push({ tsMicros: t + rtt, frame: ping(0, s) });
    if (s === 50) frames.push({ tsMicros: t + 200, frame: ping(0, s) });         // a duplicate
  }
  frames.sort((x, y) => x.tsMicros - y.tsMicros);
  const file = join(tmp, 'synth.pcap');
  writePcap(file, frames);
  const a = await analyzePcap(file, { t0Micros: T0 + 1_000_000 });
  const f = a.flows[0]!;
  assert.equal(f.lostSeqs, [100, 101, 102, 103, 104, 105, 106, 107, 108, 109]);
  assert.equal(f.delayedSeqs, [150, 151, 152]);
  assert.is(f.baselineRttMs, 0.1);
  assert.is(f.maxAddedLatencyMs, 39.9);
  assert.is(f.duplicates, 1);
  // Replies to 150..152 arrive after those of 151..155: 151 and 152 overtake nothing, but each
  // late reply lands behind a higher seq already delivered.
  assert.is(f.reordered, 3);
  // Unanswered requests close to the end are in flight: none here, every tail request answered.
  assert.is(f.inFlight, 0);
  // Two windows: the lost slots (0..100 ms) and, 400 ms later, the delayed burst (500..560 ms).
  // They are too far apart to join; the outage is the longer one.
  assert.is(f.outageStartMs, 0, 'first lost request at t0 + 1 s = 0 ms');
  assert.is(f.outageEndMs, 100, 'the slot of the last lost request ends when seq 110 is sent');
  assert.is(f.outageMs, 100);
  assert.is(a.startMs, -1000);
});

test('synthetic: unanswered tail is in flight, not lost; window is configurable', async () => {
  const frames: Array<{ tsMicros: number; frame: Buffer }> = [];
  for (let s = 0; s < 100; s++) {
    frames.push({ tsMicros: T0 + s * 20_000, frame: ping(8, s) });
    if (s < 80) frames.push({ tsMicros: T0 + s * 20_000 + 50, frame: ping(0, s) });
  }
  const file = join(tmp, 'tail.pcap');
  writePcap(file, frames);
  const f = (await analyzePcap(file)).flows[0]!;
  assert.is(f.lost, 0);
  assert.is(f.inFlight, 20);
  const g = (await analyzePcap(file, { inFlightWindowMs: 190 })).flows[0]!;
  assert.equal(g.inFlightSeqs, [90, 91, 92, 93, 94, 95, 96, 97, 98, 99]);
  assert.equal(g.lostSeqs, [80, 81, 82, 83, 84, 85, 86, 87, 88, 89]);
});

test('synthetic: ICMP seq wraps past 65535 and VLAN-tagged frames are decoded', async () => {
  const frames: Array<{ tsMicros: number; frame: Buffer }> = [];
  for (let i = 0; i < 40; i++) {
    const seq = (65520 + i) & 0xffff;
    frames.push({ tsMicros: T0 + i * 1000, frame: ping(8, seq, 9, 100) });
    if (i !== 20) frames.push({ tsMicros: T0 + i * 1000 + 30, frame: ping(0, seq, 9, 100) });
  }
  for (let i = 0; i < 2000; i++) frames.push({ tsMicros: T0 + 40_000 + i * 1000, frame: ping(8, 999, 10) });
  const file = join(tmp, 'wrap.pcap');
  writePcap(file, frames);
  const a = await analyzePcap(file);
  const f = a.flows.find((x) => x.flow.endsWith('id=9'))!;
  assert.is(f.sent, 40);
  assert.equal(f.lostSeqs, [65540], 'seq 4 after the wrap is 65540 unwrapped');
  assert.is(a.flows.find((x) => x.flow.endsWith('id=10'))!.duplicateRequests, 1999);
});

test('synthetic: announce timeline and MAC flapping before handover', async () => {
  const frames = [
    { tsMicros: T0 + 1000, frame: ping(0, 1) },                                   // guest MAC before handover
    { tsMicros: T0 + 50_000, frame: announceFrame('rarp', GUEST) },
    { tsMicros: T0 + 100_000, frame: announceFrame('garp', GUEST, '192.168.100.2') },
    { tsMicros: T0 + 150_000, frame: announceFrame('rarp', GUEST) },
  ];
  const file = join(tmp, 'announce.pcap');
  writePcap(file, frames);
  const a = await analyzePcap(file, { t0Micros: T0, iface: 'tap1', guestMac: GUEST, handoverMicros: T0 + 40_000 });
  assert.equal(a.announces.map((x) => [x.t, x.kind, x.mac, x.iface]), [
    [50, 'rarp', GUEST, 'tap1'], [100, 'garp', GUEST, 'tap1'], [150, 'rarp', GUEST, 'tap1'],
  ]);
  assert.is(a.macFlapping, true);
  assert.equal(a.flappingFrames, [{ t: 1, mac: GUEST }]);
  const late = await analyzePcap(file, { t0Micros: T0, guestMac: GUEST, handoverMicros: T0 });
  assert.is(late.macFlapping, false);
  await analyzePcap(file, { guestMac: 'nope' }).then(() => assert.unreachable('bad MAC accepted'), (e: Error) => {
    assert.match(e.message, /not a MAC address/);
  });
  await analyzeCaptures([]).then(() => assert.unreachable('no files accepted'), (e: Error) => assert.match(e.message, /no capture files/));
});

test('synthetic: one-way UDP stream judged by gaps, latency from the sender clock', async () => {
  const frames: Array<{ tsMicros: number; frame: Buffer }> = [];
  for (let s = 1; s <= 100; s++) {
    if (s >= 40 && s < 45) continue;
    const sent = T0 + s * 10_000;
    const lat = s >= 60 && s < 62 ? 30_000 : 500;
    frames.push({ tsMicros: sent + lat, frame: ethernet(CLIENT, GUEST, ETHERTYPE_IPV4, ipv4('192.168.100.2', '192.168.100.1', 17, udpStream(5000, 9, s, sent))) });
  }
  // A stray datagram with a 16-byte payload (think mDNS) is not a stream.
  frames.push({ tsMicros: T0 + 5000, frame: ethernet(CLIENT, GUEST, ETHERTYPE_IPV4, ipv4('192.168.100.2', '224.0.0.251', 17, udpStream(5353, 5353, 0xdead, 1))) });
  frames.sort((x, y) => x.tsMicros - y.tsMicros);
  const file = join(tmp, 'oneway.pcap');
  writePcap(file, frames);
  const a = await analyzePcap(file);
  assert.is(a.flows.length, 1);
  assert.is(a.unsequencedUdpFlows, 1);
  const f = a.flows[0]!;
  assert.is(f.mode, 'one-way');
  assert.is(f.sent, 100);
  assert.equal(f.lostSeqs, [40, 41, 42, 43, 44]);
  assert.equal(f.delayedSeqs, [60, 61]);
  assert.is(f.baselineRttMs, 0.5);
  assert.is(f.inFlight, 0);
});

test('synthetic SLL2 (-i any): a forwarded packet seen on two interfaces counts once', async () => {
  const frames: Array<{ tsMicros: number; frame: Buffer }> = [];
  const req = (s: number): Buffer => ipv4('192.168.100.1', '192.168.100.2', 1, icmpEcho(8, 3, s));
  const rep = (s: number): Buffer => ipv4('192.168.100.2', '192.168.100.1', 1, icmpEcho(0, 3, s));
  for (let s = 0; s < 50; s++) {
    const t = T0 + s * 10_000;
    frames.push({ tsMicros: t, frame: sll2(4, CLIENT, ETHERTYPE_IPV4, req(s)) });          // veth in
    frames.push({ tsMicros: t + 10, frame: sll2(7, CLIENT, ETHERTYPE_IPV4, req(s), 4) });  // tap out
    if (s === 20) continue;
    frames.push({ tsMicros: t + 50, frame: sll2(7, GUEST, ETHERTYPE_IPV4, rep(s)) });      // tap in
    frames.push({ tsMicros: t + 60, frame: sll2(4, GUEST, ETHERTYPE_IPV4, rep(s), 4) });   // veth out
  }
  const file = join(tmp, 'any.pcap');
  writePcap(file, frames, { linkType: LINKTYPE_LINUX_SLL2 });
  const f = (await analyzePcap(file, { inFlightWindowMs: 100 })).flows[0]!;
  assert.is(f.sent, 50);
  assert.equal(f.lostSeqs, [20]);
  assert.is(f.duplicates, 0);
  assert.is(f.duplicateRequests, 0);
  assert.is(f.otherInterfaceCopies, 99);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
