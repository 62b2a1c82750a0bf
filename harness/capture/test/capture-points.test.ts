// Several capture points merged into one account (issue 15): a pcapng of two named interfaces
// and the same packets as two pcaps give the same figures; a lost packet is placed at the last
// point that saw it; a hole in the request stream is `notOnWire`, and lost only where the
// sender's log says it was sent. Real captures from fixtures/make-pcaps.ts (a router captured
// on both its interfaces by dumpcap; ping with its requests dropped at the sender's output
// hook), and synthetic ones for the cases a real run cannot make on demand.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { analyzeCaptures, captureFilesIn, type PcapAnalysis } from '../analyzer.js';
import { LINKTYPE_LINUX_SLL2 } from '../capture-file.js';
import { ethernet, icmpEcho, ipv4, sll2, udpStream, writePcap, writePcapng } from '../../../fixtures/pcap-synth.js';
import { ETHERTYPE_IPV4 } from '../../../lib/net-addr.js';
import { analyzeFixture, assertTruth, FIXTURES, truthNamed } from './fixture-truth.js';

const tmp = mkdtempSync(join(tmpdir(), 'swpoints-'));
const CLIENT_MAC = '02:00:00:00:00:01', GUEST_MAC = '52:54:00:12:34:56';
const CLIENT = '192.168.100.1', GUEST = '192.168.100.2';
const T0 = 1_700_000_000_000_000;
const req = (seq: number): Buffer => ethernet(GUEST_MAC, CLIENT_MAC, ETHERTYPE_IPV4, ipv4(CLIENT, GUEST, 1, icmpEcho(8, 7, seq)));
const rep = (seq: number): Buffer => ethernet(CLIENT_MAC, GUEST_MAC, ETHERTYPE_IPV4, ipv4(GUEST, CLIENT, 1, icmpEcho(0, 7, seq)));
const udpReq = (seq: number): Buffer => ethernet(GUEST_MAC, CLIENT_MAC, ETHERTYPE_IPV4, ipv4(CLIENT, GUEST, 17, udpStream(40000, 7, seq, 0)));
const udpRep = (seq: number): Buffer => ethernet(CLIENT_MAC, GUEST_MAC, ETHERTYPE_IPV4, ipv4(GUEST, CLIENT, 17, udpStream(7, 40000, seq, 0)));
type Frame = { tsMicros: number; frame: Buffer };
const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);

/** The figures two analyses of the same packets must share, whatever the files were. */
function figures(a: PcapAnalysis): unknown {
  return {
    flows: a.flows, announces: a.announces, packets: a.packets, startMs: a.startMs, endMs: a.endMs, t0Micros: a.t0Micros,
    points: a.points.map((p) => [p.name, p.linkType, p.packets, p.startMs, p.endMs]),
  };
}

/**
 * 200 pings 1 ms apart seen on the client veth and on tap0 (20 µs later), answered on tap0 and
 * then on the client. 100..109 reach tap0 and are never answered (the stopped source); 150..154
 * die between the client and tap0; the replies to 170..172 leave tap0 and never reach the client.
 */
function clientAndTap0(): { client: Frame[]; tap0: Frame[] } {
  const client: Frame[] = [], tap0: Frame[] = [];
  for (let q = 0; q < 200; q++) {
    const t = T0 + q * 1000;
    client.push({ tsMicros: t, frame: req(q) });
    if (q >= 150 && q < 155) continue;
    tap0.push({ tsMicros: t + 20, frame: req(q) });
    if (q >= 100 && q < 110) continue;
    tap0.push({ tsMicros: t + 40, frame: rep(q) });
    if (q >= 170 && q < 173) continue;
    client.push({ tsMicros: t + 60, frame: rep(q) });
  }
  return { client, tap0 };
}

test('a pcapng of two named interfaces gives the same figures as the same packets in two pcaps (real: dumpcap on a router)', async () => {
  const truth = truthNamed('ping-router-drop.json');
  const ng = await analyzeFixture(truth);
  const split = await analyzeFixture(truth, await captureFilesIn(join(FIXTURES, truth.split!)));
  assert.equal(ng.points.map((p) => [p.name, p.ifName]), [['rin', 'rin'], ['rout', 'rout']], 'named by if_name');
  assert.equal(split.points.map((p) => [p.name, p.ifName]), [['rin', undefined], ['rout', undefined]], 'named by file stem');
  assert.equal(figures(split), figures(ng));
  assertTruth(ng, truth);
  assertTruth(split, truth, `${truth.split}/`);
});

test('a pcapng of two named interfaces gives the same figures as the same packets in two pcaps (synthetic, any byte order and resolution)', async () => {
  const { client, tap0 } = clientAndTap0();
  writePcap(join(tmp, 'client.pcap'), client);
  writePcap(join(tmp, 'tap0.pcap'), tap0);
  const pcaps = await analyzeCaptures([{ path: join(tmp, 'client.pcap') }, { path: join(tmp, 'tap0.pcap') }], { inFlightWindowMs: 10 });
  const frames = [...client.map((f) => ({ ...f, iface: 0 })), ...tap0.map((f) => ({ ...f, iface: 1 }))].sort((a, b) => a.tsMicros - b.tsMicros);
  for (const [name, ifaces, opts] of [
    ['le-us.pcapng', [{ name: 'client' }, { name: 'tap0' }], {}],
    ['be-ns.pcapng', [{ name: 'client', tsresol: 9 }, { name: 'tap0', tsresol: 9 }], { bigEndian: true }],
  ] as const) {
    writePcapng(join(tmp, name), frames, [...ifaces], opts);
    const ng = await analyzeCaptures([{ path: join(tmp, name) }], { inFlightWindowMs: 10 });
    assert.equal(figures(ng), figures(pcaps), name);
  }
  const f = pcaps.flows[0]!;
  assert.is(f.sent, 200);
  assert.equal(f.lostSeqs, [...range(100, 110), ...range(150, 155), ...range(170, 173)]);
  assert.is(f.otherInterfaceCopies, 195 + 185, 'every tap0 sighting is a copy of one the client saw');
  assert.is(f.baselineRttMs, 0.06, 'RTT as the client saw it');
});

test('a lost packet is placed at the last capture point that saw it, request or reply (two points merged)', async () => {
  const { client, tap0 } = clientAndTap0();
  writePcap(join(tmp, 'client.pcap'), client);
  writePcap(join(tmp, 'tap0.pcap'), tap0);
  const f = (await analyzeCaptures([{ path: join(tmp, 'client.pcap') }, { path: join(tmp, 'tap0.pcap') }], { inFlightWindowMs: 10 })).flows[0]!;
  assert.equal(f.lastSeen, [
    { where: 'tap0', as: 'request', count: 10, seqs: range(100, 110) },
    { where: 'client', as: 'request', count: 5, seqs: range(150, 155) },
    { where: 'tap0', as: 'reply', count: 3, seqs: range(170, 173) },
  ]);
  // Alone, each point tells half of it: tap0 sees the replies 170..172 and the client never did.
  const tapOnly = (await analyzeCaptures([{ path: join(tmp, 'tap0.pcap') }], { inFlightWindowMs: 10 })).flows[0]!;
  assert.equal(tapOnly.lostSeqs, range(100, 110));
  assert.is(tapOnly.lastSeen, undefined, 'one capture point: nothing to place');
});

test('points that share no packets (tap0, tap1: no client capture): a reply on either counts, each packet once', async () => {
  const tap0: Frame[] = [], tap1: Frame[] = [];
  for (let q = 0; q < 300; q++) {
    const t = T0 + q * 1000;
    const before = q < 150;
    // Until the bridge learns the new port it floods: 145..154 reach both TAPs.
    if (before || q < 155) tap0.push({ tsMicros: t + 20, frame: req(q) });
    if (!before || q >= 145) tap1.push({ tsMicros: t + 21, frame: req(q) });
    if (q >= 140 && q < 145) continue; // the source stopped: never answered
    (before ? tap0 : tap1).push({ tsMicros: t + 40, frame: rep(q) });
  }
  writePcap(join(tmp, 'tap0.pcap'), tap0);
  writePcap(join(tmp, 'tap1.pcap'), tap1);
  const a = await analyzeCaptures([{ path: join(tmp, 'tap0.pcap') }, { path: join(tmp, 'tap1.pcap') }], { inFlightWindowMs: 10 });
  const f = a.flows[0]!;
  assert.is(f.sent, 300);
  assert.equal(f.lostSeqs, range(140, 145));
  assert.is(f.received, 295);
  assert.is(f.otherInterfaceCopies, 10, 'the flooded requests, once each');
  assert.equal(f.lastSeen, [{ where: 'tap0', as: 'request', count: 5, seqs: range(140, 145) }]);
});

test('a request hole is notOnWire: lost only where the sender log says it was sent; the outage covers it either way', async () => {
  const frames: Frame[] = [];
  for (let q = 1; q <= 300; q++) {
    const t = T0 + q * 1000;
    if (q >= 100 && q < 120) continue; // ping could not send these: the address was moving
    frames.push({ tsMicros: t, frame: req(q) }, { tsMicros: t + 50, frame: rep(q) });
    frames.push({ tsMicros: t + 200, frame: udpReq(q - 1) });
    if (q !== 250) frames.push({ tsMicros: t + 250, frame: udpRep(q - 1) });
  }
  writePcap(join(tmp, 'holes.pcap'), frames);
  const bare = await analyzeCaptures([{ path: join(tmp, 'holes.pcap') }], { inFlightWindowMs: 10 });
  const icmp = bare.flows.find((f) => f.kind === 'ping')!;
  assert.equal(icmp.notOnWireSeqs, range(100, 120));
  assert.is(icmp.notOnWire, 20);
  assert.is(icmp.lost, 0, 'no log: not counted as lost');
  assert.is(icmp.sent, 280, 'nor as sent');
  assert.is(icmp.sentConfirmedBy, undefined);
  assert.is(icmp.packets!.length, icmp.sent);
  // t0 is seq 1's request: the hole's slots span from seq 100's send time to seq 120's.
  assert.equal([icmp.outageStartMs, icmp.outageEndMs, icmp.outageMs], [99, 119, 20], 'the outage covers the hole');
  const udp = bare.flows.find((f) => f.kind === 'udp')!;
  assert.equal(udp.notOnWireSeqs, range(99, 119));
  assert.equal(udp.lostSeqs, [249]);

  const logged = await analyzeCaptures([{ path: join(tmp, 'holes.pcap') }], {
    inFlightWindowMs: 10,
    senderLogs: [
      { kind: 'ping', to: GUEST, firstSeq: 1, lastSeq: 300, source: 'ping -O' },
      { kind: 'udp', to: GUEST, port: 7, firstSeq: 0, lastSeq: 109, source: 'generator' },
    ],
  });
  const icmp2 = logged.flows.find((f) => f.kind === 'ping')!;
  assert.equal(icmp2.lostSeqs, range(100, 120));
  assert.is(icmp2.sent, 300);
  assert.is(icmp2.sentConfirmedBy, 'ping -O');
  assert.equal(icmp2.notOnWireSeqs, range(100, 120));
  assert.is(icmp2.packets!.filter((p) => p.state === 'lost').length, 20);
  assert.is(icmp2.outageMs, icmp.outageMs, 'the outage is the same either way');
  const udp2 = logged.flows.find((f) => f.kind === 'udp')!;
  assert.equal(udp2.lostSeqs, [...range(99, 110), 249], 'only the seqs the generator log covers');
  // A log for another destination confirms nothing.
  const other = await analyzeCaptures([{ path: join(tmp, 'holes.pcap') }], { senderLogs: [{ kind: 'ping', to: '10.0.0.9', firstSeq: 1, lastSeq: 300, source: 'x' }] });
  assert.is(other.flows.find((f) => f.kind === 'ping')!.lost, 0);
});

test('a request hole in a real capture: requests dropped at the sender\'s output hook (ping -O log)', async () => {
  const truth = truthNamed('ping-not-on-wire.json');
  const logged = assertTruth(await analyzeFixture(truth), truth);
  assert.ok(logged.sentConfirmedBy?.startsWith('ping output'));
  const bare = (await analyzeCaptures([{ path: join(FIXTURES, truth.pcap) }])).flows.find((f) => f.kind === 'ping')!;
  assert.equal(bare.notOnWireSeqs, truth.notOnWireSeqs);
  assert.equal(bare.lostSeqs, [], 'without the log the holes are not loss');
  assert.is(bare.sent, truth.sent - truth.notOnWireSeqs!.length);
  assert.ok(bare.outageMs > 0 && bare.outageMs === logged.outageMs);
});

test('Linux SLL2 (-i any): each ifindex is a capture point, named @ifN, and a packet seen on both counts once', async () => {
  const frames: Frame[] = [];
  const r = (s: number): Buffer => ipv4(CLIENT, GUEST, 1, icmpEcho(8, 3, s));
  const p = (s: number): Buffer => ipv4(GUEST, CLIENT, 1, icmpEcho(0, 3, s));
  for (let s = 0; s < 50; s++) {
    const t = T0 + s * 10_000;
    frames.push({ tsMicros: t, frame: sll2(4, CLIENT_MAC, ETHERTYPE_IPV4, r(s)) });
    frames.push({ tsMicros: t + 10, frame: sll2(7, CLIENT_MAC, ETHERTYPE_IPV4, r(s), 4) });
    if (s === 20) continue;
    frames.push({ tsMicros: t + 50, frame: sll2(7, GUEST_MAC, ETHERTYPE_IPV4, p(s)) });
    frames.push({ tsMicros: t + 60, frame: sll2(4, GUEST_MAC, ETHERTYPE_IPV4, p(s), 4) });
  }
  writePcap(join(tmp, 'any.pcap'), frames, { linkType: LINKTYPE_LINUX_SLL2 });
  const a = await analyzeCaptures([{ path: join(tmp, 'any.pcap') }], { inFlightWindowMs: 100 });
  assert.equal(a.points.map((x) => [x.name, x.ifindex]), [['any@if4', 4], ['any@if7', 7]]);
  const f = a.flows[0]!;
  assert.equal(f.lostSeqs, [20]);
  assert.is(f.baselineRttMs, 0.06, 'judged at the requester\'s interface');
  assert.equal(f.lastSeen, [{ where: 'any@if7', as: 'request', count: 1, seqs: [20] }]);
});

test('capture point names: given, if_name, stem, #N for unnamed interfaces; clashes get the file stem', async () => {
  const { client, tap0 } = clientAndTap0();
  mkdirp(join(tmp, 'a'));
  mkdirp(join(tmp, 'b'));
  writePcapng(join(tmp, 'a', 'host1.pcapng'), [...client.map((f) => ({ ...f, iface: 0 })), ...tap0.map((f) => ({ ...f, iface: 1 }))].sort((x, y) => x.tsMicros - y.tsMicros), [{ name: 'eth0' }, {}]);
  writePcapng(join(tmp, 'b', 'host2.pcapng'), tap0, [{ name: 'eth0' }]);
  const a = await analyzeCaptures([{ path: join(tmp, 'a', 'host1.pcapng') }, { path: join(tmp, 'b', 'host2.pcapng') }]);
  assert.equal(a.points.map((p) => p.name), ['host1:eth0', 'host1#1', 'host2:eth0']);
  const named = await analyzeCaptures([{ path: join(tmp, 'b', 'host2.pcapng'), name: 'tap0' }]);
  assert.equal(named.points.map((p) => p.name), ['tap0']);
  assert.is(named.iface, 'tap0');
  await captureFilesIn(join(tmp, 'nothing-here')).then(() => assert.unreachable(), (e: NodeJS.ErrnoException) => assert.is(e.code, 'ENOENT'));
  mkdirp(join(tmp, 'empty'));
  await captureFilesIn(join(tmp, 'empty')).then(() => assert.unreachable(), (e: Error) => assert.match(e.message, /holds no \*\.pcap or \*\.pcapng file/));
});

function mkdirp(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
}

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
