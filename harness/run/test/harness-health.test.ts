// The harness's view of its own health: the kernel counter parsers (on the kernel's own text
// formats, and on a real topology), the generator figures, the bottleneck reasons that turn a
// verdict into `error`, and the one-line loss summary of the table.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { requirePrivilege } from '../../../fixtures/privilege.js';
import { countersDelta, parseArpUnresolvedDiscards, parseLinkStats, parseSnmpUdp, readKernelCounters } from '../../net/kernel-counters.js';
import { renderHtmlReport } from '../../report/html.js';
import { lossCausesLine, renderResultsTable } from '../../report/table.js';
import { generatorHealth } from '../health.js';
import { createTopology } from '../../net/topology.js';
import type { UdpStreamSummary } from '../../traffic/udp.js';
import type { RunHealth, Scenario } from '../../scenario/types.js';
import { harnessBottlenecks } from '../../verdict/verdict.js';
import { fakeResult } from '../../report/test/fake-result.js';

const SNMP = `Ip: Forwarding DefaultTTL InReceives
Ip: 1 64 1234
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
Udp: 126 0 7 127 5 2 0 0 0
UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
UdpLite: 0 0 0 0 0 0 0 0 0
`;
const ARP = `entries  allocs   destroys hash_grows lookups  hits     res_failed rcv_probes_mcast rcv_probes_ucast periodic_gc_runs forced_gc_runs unresolved_discards table_fulls
00000002 0000004a 0000004e 00000000   0000015f 0000002c 00000000   00000000         00000000         00000000         00000000       0000001a            00000000
00000002 0000006d 00000067 00000000   000001a4 0000004b 00000000   00000000         00000000         00000018         00000000       00000101            00000000
`;
const LINKS = JSON.stringify([
  { ifindex: 5, ifname: 'sot0', txqlen: 1000, stats64: { rx: { dropped: 0 }, tx: { packets: 10, dropped: 42 } } },
  { ifindex: 6, ifname: 'sovc', stats64: { tx: { dropped: 3 } } },
]);

test('kernel counter parsers: ip -s -j link, /proc/net/snmp Udp, arp_cache hex columns summed over CPUs', () => {
  assert.equal(parseLinkStats(LINKS), { sot0: { txqueuelen: 1000, txDropped: 42 }, sovc: { txqueuelen: 0, txDropped: 3 } });
  assert.equal(parseSnmpUdp(SNMP), { inErrors: 7, rcvbufErrors: 5, sndbufErrors: 2 });
  assert.is(parseArpUnresolvedDiscards(ARP), 0x1a + 0x101);
  assert.throws(() => parseLinkStats('not json'), /no JSON/);
  assert.throws(() => parseSnmpUdp('Ip: a\nIp: 1\n'), /no Udp: lines/);
  assert.throws(() => parseArpUnresolvedDiscards('entries allocs\n1 2\n'), /unresolved_discards/);
  const before = { links: parseLinkStats(LINKS), udp: { host: parseSnmpUdp(SNMP), client: parseSnmpUdp(SNMP) }, arpUnresolvedDiscards: 10 };
  const after = {
    links: { ...before.links, sot0: { txqueuelen: 500, txDropped: 100 } },
    udp: { host: before.udp.host, client: { ...before.udp.client, rcvbufErrors: 9 } }, arpUnresolvedDiscards: 25,
  };
  const d = countersDelta(before, after);
  assert.equal(d.links.sot0, { txqueuelen: 500, txDropped: 58 }, 'txqueuelen as read after, drops as a delta');
  assert.is(d.udp.client.rcvbufErrors, 4);
  assert.is(d.arpUnresolvedDiscards, 15);
});

const summary = (o: Partial<UdpStreamSummary>): UdpStreamSummary => ({
  dst: '192.168.100.2', port: 7, listenPort: 40000, rate: 10_000, sent: 10_001, sendErrors: 0, sendBlocked: 0,
  achievedRate: 10_000, cpuMs: 120, sendMs: 1000, socketDrops: 0, rcvbufBytes: 1 << 22,
  firstSendUs: 1_000_000, lastSendUs: 2_000_000, flows: [], endedBy: 'signal', ...o,
});

test('generator figures are the ones the generator measured itself', () => {
  assert.equal(generatorHealth(summary({ achievedRate: 9_000.4, socketDrops: 3 })), {
    askedRate: 10_000, achievedRate: 9_000, sent: 10_001, sendMs: 1000, socketDrops: 3, sendErrors: 0, sendBlocked: 0, cpuMs: 120,
  });
});

function healthy(): RunHealth {
  return {
    taps: [{ name: 'sot0', txqueuelen: 1000, txDropped: 0 }, { name: 'sot1', txqueuelen: 1000, txDropped: 0 }],
    clientVeth: { name: 'sovc', txDropped: 0 },
    udp: { host: { inErrors: 0, rcvbufErrors: 0, sndbufErrors: 0 }, client: { inErrors: 0, rcvbufErrors: 0, sndbufErrors: 0 } },
    arpUnresolvedDiscards: 0,
    captures: [{ iface: 'sovc', captured: 20_000, droppedByKernel: 0 }],
    generators: [{ askedRate: 10_000, achievedRate: 9_990, sent: 10_000, sendMs: 1000, socketDrops: 0, sendErrors: 0, sendBlocked: 0, cpuMs: 100 }],
    engineStalls: [
      { vm: 'src', role: 'source', tap: 'sot0', phase: 'active', maxMs: 50 },
      // Inside the downtime window: the source is stopped in `device`, whatever it does then.
      { vm: 'src', role: 'source', tap: 'sot0', phase: 'device', maxMs: 900 },
    ],
  };
}
const FLOWS: Scenario['traffic']['flows'] = [{ kind: 'ping', intervalMs: 1 }, { kind: 'udp', rate: 10_000, direction: 'to-guest' }];

test('bottlenecks: a healthy run has none; each part that could not keep up is named with what to do', () => {
  const r = fakeResult({ lost: 3 });
  r.health = healthy();
  assert.equal(harnessBottlenecks(r, FLOWS), []);
  assert.equal(harnessBottlenecks(fakeResult(), FLOWS), [], 'no health recorded, nothing to say');

  const h = healthy();
  h.generators[0]!.achievedRate = 6_000;
  h.udp.client.rcvbufErrors = 40;
  h.captures[0]!.droppedByKernel = 12;
  // 100 ms at 11,000 frames/s is 1,100 frames: more than the 1,000-frame queue of sot0.
  h.engineStalls.push({ vm: 'dst1', role: 'destination', tap: 'sot1', phase: 'completed', maxMs: 100 });
  r.health = h;
  r.traffic[0]!.lossCauses = [{ cause: 'tap-queue', where: 'sot1', vm: 'running-too-slow', count: 3, seqs: [700, 701, 702] }];
  const why = harnessBottlenecks(r, FLOWS);
  assert.is(why.length, 5, why.join('\n'));
  assert.match(why[0]!, /UDP generator sent 6,000\/s of the 10,000\/s asked \(60%\).*--set rate=N/);
  assert.match(why[1]!, /RcvbufErrors 40/);
  assert.match(why[2]!, /tcpdump on sovc dropped 12 packets/);
  assert.match(why[3]!, /3 packets were dropped at the queue of sot1 while its VM was running/);
  assert.match(why[4]!, /destination VM dst1 stalled 100 ms in its completed phase.*11,000 packets\/s.*1000-frame queue of sot1/);
  // The same stall at a tenth of the rate fits in the queue.
  h.engineStalls.pop();
  assert.not.ok(harnessBottlenecks(r, [{ kind: 'udp', rate: 1_000, direction: 'to-guest' }]).some((x) => /stalled/.test(x)));
});

test('table and HTML: one line per scenario with losses, causes largest first, merged over flows', () => {
  const r = fakeResult({ lost: 37 });
  r.traffic[0]!.lossCauses = [
    { cause: 'stopped-source', where: 'tap0', count: 30, seqs: [] },
    { cause: 'tap-queue', where: 'tap1', vm: 'paused', count: 2, seqs: [] },
  ];
  r.traffic.push({ ...r.traffic[0]!, lost: 5, lossCauses: [{ cause: 'stopped-source', where: 'tap0', count: 5, seqs: [] }] });
  r.traffic[0]!.lost = 32;
  assert.is(lossCausesLine(r.traffic), 'lost 37: 35 stopped-source (tap0), 2 tap-queue tap1 (paused)');
  assert.is(lossCausesLine(fakeResult().traffic), undefined);
  assert.match(renderResultsTable([r]), /\n  lost 37: 35 stopped-source \(tap0\), 2 tap-queue tap1 \(paused\)\n/);
  r.health = healthy();
  const html = renderHtmlReport([r]);
  assert.is(html.match(/<li data-loss-cause="stopped-source" data-count="(\d+)"/g)?.length, 2, 'one entry per flow');
  assert.match(html, /<li data-loss-cause="tap-queue" data-count="2">2 tap-queue tap1 \(paused\)/);
  assert.match(html, /<dl class="numbers" data-health>.*sot0 tx_dropped \(txqueuelen 1000\)/s);
  assert.not.match(renderHtmlReport([fakeResult()]), /data-health|data-loss-cause/, 'nothing to show, nothing shown');
});

if (requirePrivilege('kernel counters of a real topology')) {
  test('a real topology: both TAPs and the client veth, txqueuelen as the kernel has it, the UDP and ARP counters', async () => {
    const topo = await createTopology({ layout: 'routed', queues: 1 });
    try {
      const c = await readKernelCounters(topo);
      for (const tap of [topo.tap0, topo.tap1]) {
        assert.ok(c.links[tap], `${tap} read`);
        assert.ok(c.links[tap]!.txqueuelen > 0, `${tap} has a queue`);
      }
      const shown = JSON.parse((await topo.exec('host', ['ip', '-j', 'link', 'show', 'dev', topo.tap0])).stdout) as Array<{ txqlen: number }>;
      assert.is(c.links[topo.tap0]!.txqueuelen, shown[0]!.txqlen);
      assert.ok(c.links[topo.clientIface], 'client veth read in the client netns');
      assert.ok(Number.isInteger(c.udp.client.rcvbufErrors) && Number.isInteger(c.arpUnresolvedDiscards));
    } finally {
      await topo.teardown();
    }
  });
}

test.run();
