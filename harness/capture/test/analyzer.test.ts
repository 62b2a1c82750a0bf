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

// ---- measures per flow (issue 17 item 3): reorder depth, added-delay percentiles, deadline ----

type Frame = { tsMicros: number; frame: Buffer };

/**
 * 40 pings 10 ms apart, answered 100 µs later, except 3 and 5: their replies come at 95 and
 * 96 ms, after 9's (90.1 ms) and before 10 is sent. So 0..9 are delivered, then 3 and 5 late.
 * `replyDelay` places each reply at a second point (e.g. the client after tap0).
 */
function reorderedPings(replyDelay = 0): Frame[] {
  const frames: Frame[] = [];
  for (let q = 0; q < 40; q++) {
    const t = T0 + q * 10_000;
    frames.push({ tsMicros: t, frame: ping(8, q) });
    const at = q === 3 ? T0 + 95_000 : q === 5 ? T0 + 96_000 : t + 100;
    frames.push({ tsMicros: at + replyDelay, frame: ping(0, q) });
  }
  return frames.sort((x, y) => x.tsMicros - y.tsMicros);
}

test('reorderedMaxDepth: 0..9 delivered, then 3 and 5: reordered 2, depth 9 - 3 = 6 (5 is 4 behind)', async () => {
  const file = join(tmp, 'reorder.pcap');
  writePcap(file, reorderedPings());
  const f = (await analyzePcap(file)).flows[0]!;
  assert.is(f.reordered, 2);
  assert.is(f.reorderedMaxDepth, 6);
  // Both late replies are delayed too: 3 by 65 ms, 5 by 46 ms (minus the 0.1 ms baseline).
  assert.equal(f.delayedSeqs, [3, 5]);
  assert.equal(f.addedDelayMs, { p50: 45.9, p99: 64.9, max: 64.9 });
  // Nothing reordered: depth 0, and no delayed packet: null.
  const plain = join(tmp, 'in-order.pcap');
  writePcap(plain, Array.from({ length: 30 }, (_, q) => [
    { tsMicros: T0 + q * 10_000, frame: ping(8, q) }, { tsMicros: T0 + q * 10_000 + 100, frame: ping(0, q) },
  ]).flat());
  const g = (await analyzePcap(plain)).flows[0]!;
  assert.is(g.reordered, 0);
  assert.is(g.reorderedMaxDepth, 0);
  assert.is(g.addedDelayMs, null);
  assert.not.ok('lostOrLate' in g || 'deadlineMs' in g, 'no deadline: neither field');
});

test('reorderedMaxDepth: the merged view of two capture points gives the single point\'s depth', async () => {
  // tap0 sees each reply first; the client 20 µs later: the client is where arrivals are judged.
  const requests = (f: Frame[]): Frame[] => f.filter((x) => x.frame.readUInt8(14 + 20) === 8);
  const tap0 = reorderedPings().map((x) => (x.frame.readUInt8(14 + 20) === 8 ? { ...x, tsMicros: x.tsMicros + 20 } : x));
  const client = [...requests(reorderedPings()), ...reorderedPings(20).filter((x) => x.frame.readUInt8(14 + 20) === 0)]
    .sort((x, y) => x.tsMicros - y.tsMicros);
  writePcap(join(tmp, 'r-client.pcap'), client);
  writePcap(join(tmp, 'r-tap0.pcap'), tap0.sort((x, y) => x.tsMicros - y.tsMicros));
  const a = await analyzeCaptures([{ path: join(tmp, 'r-client.pcap') }, { path: join(tmp, 'r-tap0.pcap') }], { deadlineMs: 50 });
  assert.is(a.points.length, 2);
  const f = a.flows[0]!;
  assert.ok(f.otherInterfaceCopies > 0, 'merged: the other point\'s copies were seen');
  assert.is(f.reordered, 2);
  assert.is(f.reorderedMaxDepth, 6);
  assert.equal(f.delayedSeqs, [3, 5]);
  // The same deadline over the merged account: 3 (64.9 ms) is late, 5 (45.9 ms) is not.
  assert.is(f.lostOrLate, 1);
  assert.is(f.deadlineMs, 50);
});

/**
 * 293 pings 10 ms apart with a 0.1 ms RTT, except: 30..34 answered 3 ms late (above no delay
 * threshold: max(5 ms, 5 x 0.1 ms) = 5 ms), 40..46 never answered (lost), 50..249 delayed by
 * 6..205 ms (each value once, shuffled over the seqs), 290..292 unanswered at the end (in flight
 * with a 100 ms window).
 */
function delayedSet(): Frame[] {
  const frames: Frame[] = [];
  for (let q = 0; q < 293; q++) {
    const t = T0 + q * 10_000;
    frames.push({ tsMicros: t, frame: ping(8, q) });
    if ((q >= 40 && q < 47) || q >= 290) continue;
    const added = q >= 30 && q < 35 ? 3 : q >= 50 && q < 250 ? 6 + (((q - 50) * 37) % 200) : 0;
    frames.push({ tsMicros: t + 100 + added * 1000, frame: ping(0, q) });
  }
  return frames.sort((x, y) => x.tsMicros - y.tsMicros);
}

test('addedDelayMs: nearest-rank p50/p99/max over the delayed packets only', async () => {
  const file = join(tmp, 'delayed-set.pcap');
  writePcap(file, delayedSet());
  const f = (await analyzePcap(file, { inFlightWindowMs: 100 })).flows[0]!;
  assert.is(f.baselineRttMs, 0.1);
  assert.is(f.delayed, 200);
  assert.is(f.maxAddedLatencyMs, 205);
  // 200 values 6..205: p50 the 100th smallest (105), p99 the 198th (203), max 205. Counting the
  // five 3 ms packets too would make p50 the 103rd of 205, 103.
  assert.equal(f.addedDelayMs, { p50: 105, p99: 203, max: 205 });
});

test('lostOrLate: lost plus answered later than the deadline, in flight not counted; the deadline is echoed', async () => {
  const file = join(tmp, 'deadline.pcap');
  writePcap(file, delayedSet());
  const at = async (deadlineMs?: number) => (await analyzePcap(file, { inFlightWindowMs: 100, deadlineMs })).flows[0]!;
  const f = await at(100.5);
  assert.is(f.lost, 7);
  assert.is(f.inFlight, 3);
  // Added 101..205 ms: 105 packets above 100.5 ms, plus the 7 lost; the 3 in flight are not known late.
  assert.is(f.lostOrLate, 112);
  assert.is(f.deadlineMs, 100.5);
  assert.is((await at(101)).lostOrLate, 7 + 104, 'late means above the deadline, not at it');
  // Below the delay threshold the deadline still judges every answer: the five 3 ms ones are late at 2 ms.
  assert.is((await at(2)).lostOrLate, 7 + 200 + 5);
  assert.is((await at(500)).lostOrLate, 7, 'nothing answered that late: only the lost');
  const none = await at(undefined);
  assert.is(none.lostOrLate, undefined);
  assert.is(none.deadlineMs, undefined);
  for (const bad of [0, -1, Number.NaN]) {
    await analyzePcap(file, { deadlineMs: bad }).then(() => assert.unreachable(`deadline ${bad} accepted`),
      (e: Error) => assert.match(e.message, /deadlineMs must be a positive number of ms/));
  }
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
