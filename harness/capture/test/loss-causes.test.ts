// The loss attribution (loss-causes.ts) on hand-made evidence: each cause where the captures,
// the counters and the VM states put it, the STOP and RESUME corrections, the counter bounds,
// and that the causes of every flow add up to its lost count, on random runs too.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { announceFrame, ethernet, icmpEcho, ipv4, writePcap } from '../../../fixtures/pcap-synth.js';
import { attributeLoss, tapPeriods, type LossEvidence, type TapPeriod, type VmLife } from '../loss-causes.js';
import { analyzePcap, type PcapFlow, type SeqEvidence } from '../analyzer.js';
import { ETHERTYPE_IPV4 } from '../../../lib/net-addr.js';
import { SeededRandom } from '../../../fixtures/seeded-random.js';
import type { LossCause } from '../../scenario/types.js';

const GUEST = '192.168.100.2';
const CLIENT = '192.168.100.1';

function flow(name: string, lostSeqs: number[], o: Partial<PcapFlow> = {}): PcapFlow {
  return {
    kind: 'udp', flow: name, mode: 'request-reply', sender: CLIENT, sent: 1000, received: 1000 - lostSeqs.length,
    lost: lostSeqs.length, lostSeqs, delayed: 0, delayedSeqs: [], maxAddedLatencyMs: 0, duplicates: 0, reordered: 0,
    reorderedMaxDepth: 0, addedDelayMs: null, outageMs: 0, outageStartMs: null, outageEndMs: null, maxGapMs: 1, inFlight: 0, inFlightSeqs: [], baselineRttMs: 0.1,
    orphanReplies: 0, duplicateRequests: 0, otherInterfaceCopies: 0, notOnWire: 0, notOnWireSeqs: [], ...o,
  };
}

/** Requests seen at t = seq ms (those in `requests`), replies 0.1 ms later (those in `replies`). */
function seen(requests: Iterable<number>, replies: Iterable<number> = [], replyAt = (seq: number): number => seq + 0.1): SeqEvidence {
  return {
    requestAt: new Map([...requests].map((q) => [q, q])),
    replyAt: new Map([...replies].map((q) => [q, replyAt(q)])),
  };
}

const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);
const without = (xs: number[], drop: number[]): number[] => xs.filter((x) => !drop.includes(x));

function evidence(o: Partial<LossEvidence> & Pick<LossEvidence, 'flows' | 'taps' | 'periods'>): LossEvidence {
  return {
    tapTxDropped: {}, clientVeth: { name: 'vc', txDropped: 0 }, arpUnresolvedDiscards: 0, layout: 'bridge', guestIp: GUEST, ...o,
  };
}

const brief = (cs: LossCause[]): Array<[string, string | undefined, string | undefined, number]> =>
  cs.map((c) => [c.cause, c.where, c.vm, c.count]);

test('tapPeriods: a source runs then stops; a target is paused until RESUME; a local target takes the TAP over', () => {
  const vms: VmLife[] = [
    { name: 'src', tap: 'tap0', incoming: false, fromMs: -500, events: [{ tMs: 100, event: 'STOP' }] },
    { name: 'dst1', tap: 'tap0', incoming: true, fromMs: 120, events: [{ tMs: 300, event: 'RESUME' }] },
    { name: 'never', tap: 'tap0', incoming: true, fromMs: Infinity, events: [] },
  ];
  assert.equal(tapPeriods(vms).map((p) => [p.tap, p.vm, p.fromMs, p.state]), [
    ['tap0', 'src', -500, 'running'], ['tap0', 'src', 100, 'stopped'], ['tap0', 'dst1', 120, 'paused'], ['tap0', 'dst1', 300, 'running'],
    ['tap0', 'never', Infinity, 'paused'],
  ]);
  // A VM's events once another took its TAP are not the TAP's (the source resumed elsewhere).
  const late = tapPeriods([
    { name: 'src', tap: 'tap0', incoming: false, fromMs: 0, events: [{ tMs: 10, event: 'STOP' }, { tMs: 50, event: 'RESUME' }] },
    { name: 'dst', tap: 'tap0', incoming: true, fromMs: 20, events: [] },
  ]);
  assert.equal(late.map((p) => [p.vm, p.state]), [['src', 'running'], ['src', 'stopped'], ['dst', 'paused']]);
  // A target that was stopped before it ever ran is still `paused`, not a stopped source.
  assert.equal(tapPeriods([{ name: 'd', tap: 't1', incoming: true, fromMs: 0, events: [{ tMs: 5, event: 'STOP' }] }]).map((p) => p.state), ['paused', 'paused']);
});

test('bridge baseline: frames that reached the stopped source are stopped-source, also those queued just before STOP', () => {
  // Source STOP at 100 ms; it answered every request up to seq 98; 99 came in before STOP but was
  // never read, so it sat in the queue when the source stopped.
  const lost = range(99, 131);
  const periods: TapPeriod[] = [{ tap: 'tap0', vm: 'src', fromMs: -1000, state: 'running' }, { tap: 'tap0', vm: 'src', fromMs: 100, state: 'stopped' }];
  const [causes] = attributeLoss(evidence({
    flows: [flow('udp echo', lost)], periods, tapTxDropped: { tap0: 5000 },
    taps: [{ tap: 'tap0', seen: new Map([['udp echo', seen(range(0, 131), range(0, 99))]]) }, { tap: 'tap1', seen: new Map() }],
  }));
  assert.equal(brief(causes!), [['stopped-source', 'tap0', undefined, 32]]);
  assert.equal(causes![0]!.seqs, lost);
});

test('a frame dropped while its VM ran is tap-queue running-too-slow, bounded by tx_dropped; the rest unknown', () => {
  // The VM answered 40 and later, so 20, 21 and 22 (never answered) were dropped while it ran.
  const periods: TapPeriod[] = [{ tap: 'tap0', vm: 'src', fromMs: -1000, state: 'running' }];
  const [causes] = attributeLoss(evidence({
    flows: [flow('f', [20, 21, 22])], periods, tapTxDropped: { tap0: 2 },
    taps: [{ tap: 'tap0', seen: new Map([['f', seen(range(0, 100), without(range(0, 100), [20, 21, 22]))]]) }],
  }));
  assert.equal(brief(causes!), [['tap-queue', 'tap0', 'running-too-slow', 2], ['unknown', 'tap0', undefined, 1]]);
  assert.equal(causes![0]!.seqs, [20, 21], 'the counter goes to the earliest');
});

test('local migration with a late cont: overflow while the target is paused, and while it drains that backlog, is tap-queue paused', () => {
  // tap0: the source runs until STOP at 100, the target holds the TAP from 110 (paused) and runs
  // from RESUME at 300. The queue filled during the pause: 200..299 were dropped. After RESUME
  // the target answers the queued frames until 320, so 300..304, dropped behind them, are the
  // pause's doing too; 400 is dropped with the backlog long gone: too slow.
  const periods = tapPeriods([
    { name: 'src', tap: 'tap0', incoming: false, fromMs: -1000, events: [{ tMs: 100, event: 'STOP' }] },
    { name: 'dst1', tap: 'tap0', incoming: true, fromMs: 110, events: [{ tMs: 300, event: 'RESUME' }] },
  ]);
  const dropped = [...range(200, 305), 400];
  const answered = without(range(0, 500), dropped);
  // Frames queued before RESUME are answered in order up to 320 ms.
  const replyAt = (q: number): number => (q < 300 ? 300 + (q - 100) / 10 : q + 0.1);
  const [causes] = attributeLoss(evidence({
    flows: [flow('f', dropped)], periods, tapTxDropped: { tap0: 200 },
    taps: [{ tap: 'tap0', seen: new Map([['f', seen(range(0, 500), answered, replyAt)]]) }],
  }));
  assert.equal(brief(causes!), [['tap-queue', 'tap0', 'paused', 105], ['tap-queue', 'tap0', 'running-too-slow', 1]]);
});

test('reply-lost: the VM answered on a TAP, the client never saw it; one-way streams by direction', () => {
  const periods: TapPeriod[] = [{ tap: 'tap1', vm: 'dst', fromMs: 0, state: 'running' }];
  const guestStream = 'udp 192.168.100.2:5000>192.168.100.1:5009';
  const clientStream = 'udp 192.168.100.1:4000>192.168.100.2:9';
  const causes = attributeLoss(evidence({
    flows: [
      flow('echo', [5]),
      flow(guestStream, [7, 8], { mode: 'one-way', sender: GUEST }),
      flow(clientStream, [3, 4], { mode: 'one-way', sender: CLIENT }),
    ],
    periods,
    taps: [{ tap: 'tap1', seen: new Map([['echo', seen(range(0, 10), range(0, 10))], [guestStream, seen([7])], [clientStream, seen([4])]]) }],
  }));
  assert.equal(brief(causes[0]!), [['reply-lost', 'tap1', undefined, 1]]);
  assert.equal(brief(causes[1]!), [['reply-lost', 'tap1', undefined, 1], ['not-on-wire', 'guest', undefined, 1]]);
  // A client stream's gap on the client side never went out, unless a TAP saw it after all.
  assert.equal(brief(causes[2]!), [['not-on-wire', 'vc', undefined, 1], ['unknown', 'vc', undefined, 1]]);
});

test('a hole in the client\'s request stream that no TAP saw never left the client: not-on-wire, outside every counter', () => {
  const periods: TapPeriod[] = [{ tap: 'tap0', vm: 'src', fromMs: -1000, state: 'running' }];
  const taps = [{ tap: 'tap0', seen: new Map([['f', seen([...range(0, 10), 12], range(0, 10))]]) }];
  // 10..14 lost: 10, 11, 13 and 14 are holes ping logged as sent; 12 reached tap0 after all.
  const [causes] = attributeLoss(evidence({
    flows: [flow('f', range(10, 15), { notOnWire: 4, notOnWireSeqs: [10, 11, 13, 14] })], periods, taps,
    clientVeth: { name: 'vc', txDropped: 5 }, tapTxDropped: { tap0: 5 },
  }));
  assert.equal(brief(causes!), [['not-on-wire', 'vc', undefined, 4], ['tap-queue', 'tap0', 'running-too-slow', 1]]);
  assert.equal(causes![0]!.seqs, [10, 11, 13, 14]);
});

test('on no TAP: the client veth, then (routed only) the host ARP queue, each within its counter', () => {
  const periods: TapPeriod[] = [{ tap: 'tap0', vm: 'src', fromMs: -1000, state: 'running' }];
  const taps = [{ tap: 'tap0', seen: new Map([['f', seen(range(0, 10), range(0, 10))]]) }];
  const lost = range(10, 20);
  const routed = attributeLoss(evidence({
    flows: [flow('f', lost)], periods, taps, layout: 'routed', clientVeth: { name: 'vc', txDropped: 2 }, arpUnresolvedDiscards: 5,
  }))[0]!;
  assert.equal(brief(routed), [['host-arp-queue', undefined, undefined, 5], ['unknown', undefined, undefined, 3], ['veth-queue', 'vc', undefined, 2]]);
  const bridge = attributeLoss(evidence({ flows: [flow('f', lost)], periods, taps, arpUnresolvedDiscards: 5 }))[0]!;
  assert.equal(brief(bridge), [['unknown', undefined, undefined, 10]], 'the bridge layout has no host ARP queue on the path');
});

test('ping seqs match across captures modulo 2^16 (each capture unwraps from its own first packet)', () => {
  const periods: TapPeriod[] = [{ tap: 'tap0', vm: 'src', fromMs: -1000, state: 'running' }, { tap: 'tap0', vm: 'src', fromMs: 100, state: 'stopped' }];
  // The client capture unwrapped past 65535; the TAP capture started after the wrap.
  const [causes] = attributeLoss(evidence({
    flows: [flow('icmp', [65536 + 150], { kind: 'ping' })], periods,
    taps: [{ tap: 'tap0', seen: new Map([['icmp', { requestAt: new Map([[150, 150]]), replyAt: new Map() }]]) }],
  }));
  assert.equal(brief(causes!), [['stopped-source', 'tap0', undefined, 1]]);
  assert.equal(causes![0]!.seqs, [65686]);
});

test('from pcaps: a TAP captured both ways gives per-seq evidence; only the guest\'s own frames are announces', async () => {
  const GUEST_MAC = '52:54:00:12:34:56', CLIENT_MAC = '02:00:00:00:00:01', T0 = 1_700_000_000_000_000;
  const req = (seq: number): Buffer => ethernet(GUEST_MAC, CLIENT_MAC, ETHERTYPE_IPV4, ipv4(CLIENT, GUEST, 1, icmpEcho(8, 7, seq)));
  const rep = (seq: number): Buffer => ethernet(CLIENT_MAC, GUEST_MAC, ETHERTYPE_IPV4, ipv4(GUEST, CLIENT, 1, icmpEcho(0, 7, seq)));
  const client: Array<{ tsMicros: number; frame: Buffer }> = [];
  const tap: Array<{ tsMicros: number; frame: Buffer }> = [];
  // 100 pings 1 ms apart; the source STOPs at 60 ms: 60.. reach its TAP and are never answered.
  for (let q = 0; q < 100; q++) {
    const t = T0 + q * 1000;
    client.push({ tsMicros: t, frame: req(q) });
    tap.push({ tsMicros: t + 20, frame: req(q) });
    if (q < 60) {
      tap.push({ tsMicros: t + 40, frame: rep(q) });
      client.push({ tsMicros: t + 60, frame: rep(q) });
    }
  }
  // An announce-shaped frame sent towards the VM (another host's) is not the VM's announce.
  tap.push({ tsMicros: T0 + 99_500, frame: announceFrame('rarp', CLIENT_MAC) });
  tap.push({ tsMicros: T0 + 99_600, frame: announceFrame('rarp', GUEST_MAC) });
  const dir = mkdtempSync(join(tmpdir(), 'swloss-'));
  writePcap(join(dir, 'client.pcap'), client);
  writePcap(join(dir, 'tap0.pcap'), tap);
  const c = await analyzePcap(join(dir, 'client.pcap'), { t0Micros: T0, inFlightWindowMs: 10 });
  const t = await analyzePcap(join(dir, 'tap0.pcap'), { t0Micros: T0, iface: 'tap0', seqEvidence: true, guestMac: GUEST_MAC });
  assert.equal(t.announces.map((a) => a.mac), [GUEST_MAC]);
  const name = c.flows[0]!.flow;
  assert.is(c.flows[0]!.sender, CLIENT);
  const ev = t.seen!.get(name)!;
  assert.is(ev.requestAt.size, 100);
  assert.is(ev.replyAt.size, 60);
  assert.is(ev.requestAt.get(70), 70.02);
  const periods: TapPeriod[] = [{ tap: 'tap0', vm: 'src', fromMs: -1, state: 'running' }, { tap: 'tap0', vm: 'src', fromMs: 60.5, state: 'stopped' }];
  const [causes] = attributeLoss(evidence({ flows: c.flows, periods, taps: [{ tap: 'tap0', seen: t.seen! }] }));
  assert.equal(brief(causes!), [['stopped-source', 'tap0', undefined, c.flows[0]!.lost]]);
  assert.ok(c.flows[0]!.lost >= 20, `lost ${c.flows[0]!.lost}`);
});

test('the causes of every flow add up to its lost count and cover exactly its lost seqs (500 random runs)', () => {
  for (let run = 0; run < 500; run++) {
    const rnd = new SeededRandom(run + 1);
    const r = (): number => rnd.next();
    const states = ['running', 'paused', 'stopped'] as const;
    const periods: TapPeriod[] = [];
    for (const tap of ['tap0', 'tap1']) {
      let t = -100 + r() * 200;
      for (let i = 0; i < 1 + Math.floor(r() * 4); i++) {
        periods.push({ tap, vm: `vm${i}`, fromMs: t, state: rnd.pick(states) });
        t += r() * 300;
      }
    }
    const flows: PcapFlow[] = [];
    const taps = [{ tap: 'tap0', seen: new Map<string, SeqEvidence>() }, { tap: 'tap1', seen: new Map<string, SeqEvidence>() }];
    for (let fi = 0; fi < 1 + Math.floor(r() * 3); fi++) {
      const name = `flow${fi}`;
      const mode = r() < 0.3 ? 'one-way' : 'request-reply';
      const lost = range(0, 400).filter(() => r() < 0.2);
      flows.push(flow(name, lost, { mode, kind: r() < 0.5 ? 'ping' : 'udp', sender: rnd.pick([GUEST, CLIENT]) }));
      for (const x of taps) {
        const req = range(0, 400).filter(() => r() < 0.6);
        x.seen.set(name, { requestAt: new Map(req.map((q) => [q, q * (0.5 + r())])), replyAt: new Map(req.filter(() => r() < 0.5).map((q) => [q, q + r() * 50])) });
      }
    }
    // tap1's counter may even have gone down (a recreated link): it bounds nothing then.
    const tapTxDropped: Record<string, number> = { tap0: Math.floor(r() * 100), tap1: Math.floor(r() * 100) - 20 };
    const veth = Math.floor(r() * 20), arp = Math.floor(r() * 50);
    const layout = rnd.pick(['bridge', 'routed'] as const);
    const causes = attributeLoss(evidence({
      flows, taps, periods, layout, tapTxDropped, clientVeth: { name: 'vc', txDropped: veth }, arpUnresolvedDiscards: arp,
    }));
    flows.forEach((f, i) => {
      const cs = causes[i]!;
      assert.is(cs.reduce((n, c) => n + c.count, 0), f.lost, `run ${run} ${f.flow}: counts`);
      for (const c of cs) assert.is(c.seqs.length, c.count);
      assert.equal(cs.flatMap((c) => c.seqs).sort((a, b) => a - b), f.lostSeqs, `run ${run} ${f.flow}: seqs`);
    });
    const all = causes.flat();
    const total = (pred: (c: LossCause) => boolean): number => all.filter(pred).reduce((n, c) => n + c.count, 0);
    for (const tap of ['tap0', 'tap1']) {
      assert.ok(total((c) => c.cause === 'tap-queue' && c.where === tap) <= Math.max(0, tapTxDropped[tap]!), `run ${run}: ${tap} within tx_dropped`);
    }
    assert.ok(total((c) => c.cause === 'veth-queue') <= veth, `run ${run}: within the veth's tx_dropped`);
    assert.ok(total((c) => c.cause === 'host-arp-queue') <= (layout === 'routed' ? arp : 0), `run ${run}: within unresolved_discards`);
  }
});

test.run();
