import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { requirePrivilege } from '../../../fixtures/privilege.js';
import { CaptureError, parseTcpdumpStats, startCapture } from '../../capture/tcpdump.js';
import { createTopology, type Topology } from '../../net/topology.js';
import { parsePingOutput, startPing } from '../ping.js';
import { startUdpStream } from '../udp.js';
import { parseArgs } from '../udp-stream.js';

const privileged = requirePrivilege('capture and traffic tests');

test('parsePingOutput reads iputils -D -O output, errors, DUPs and the summary', () => {
  const out = [
    'PING 192.168.100.2 (192.168.100.2) 56(84) bytes of data.',
    '[1795305460.718418] 64 bytes from 192.168.100.2: icmp_seq=1 ttl=64 time=0.024 ms',
    '[1795305460.922146] no answer yet for icmp_seq=2',
    '[1795305461.126137] no answer yet for icmp_seq=3',
    '[1795305461.130000] 64 bytes from 192.168.100.2: icmp_seq=3 ttl=64 time=204 ms',
    '[1795305461.330000] 64 bytes from 192.168.100.2: icmp_seq=4 ttl=64 time=0.05 ms',
    '[1795305461.330100] 64 bytes from 192.168.100.2: icmp_seq=4 ttl=64 time=0.06 ms (DUP!)',
    '[1795305464.330000] From 192.168.100.1 icmp_seq=5 Destination Host Unreachable',
    '',
    '--- 192.168.100.2 ping statistics ---',
    '5 packets transmitted, 3 received, +1 duplicates, +1 errors, 40% packet loss, time 812ms',
    'rtt min/avg/max/mdev = 0.024/51.033/204.000/88.312 ms',
  ].join('\n');
  const r = parsePingOutput(out);
  assert.is(r.target, '192.168.100.2');
  assert.is(r.transmitted, 5);
  assert.is(r.received, 3);
  assert.is(r.duplicates, 1);
  assert.is(r.errors, 1);
  assert.is(r.lossPct, 40);
  assert.is(r.timeMs, 812);
  assert.equal(r.rtt, { min: 0.024, avg: 51.033, max: 204, mdev: 88.312 });
  assert.equal(r.replies.map((x) => [x.seq, x.dup]), [[1, false], [3, false], [4, false], [4, true]]);
  assert.is(r.replies[0]!.t, 1795305460718.418);
  assert.is(r.replies[1]!.rttMs, 204);
  assert.equal(r.noAnswerYet.map((x) => x.seq), [2, 3]);
  assert.equal(r.icmpErrors, [{ t: 1795305464330, from: '192.168.100.1', seq: 5, text: 'Destination Host Unreachable' }]);
  assert.equal(r.lostSeqs, [2, 5]);
  // Killed before the summary: the highest seq bounds what was sent.
  const cut = parsePingOutput(out.split('\n').slice(0, 5).join('\n'));
  assert.is(cut.transmitted, 3);
  assert.equal(cut.lostSeqs, [2]);
});

test('parseTcpdumpStats reads the counters, and their absence is an error', () => {
  const err = 'tcpdump: listening on x, link-type EN10MB (Ethernet), snapshot length 256 bytes\n42 packets captured\n43 packets received by filter\n1 packet dropped by kernel\n';
  assert.equal(parseTcpdumpStats(err), { captured: 42, receivedByFilter: 43, droppedByKernel: 1 });
  assert.throws(() => parseTcpdumpStats('tcpdump: oops'), (e: Error) => e instanceof CaptureError);
});

test('udp-stream arguments are checked and bounded', () => {
  assert.equal(parseArgs(['--dst', '192.168.100.2', '--rate', '10000', '--count', '5', '--duration-ms', '100']),
    { dst: '192.168.100.2', port: 7, rate: 10000, count: 5, durationMs: 100, listenPort: 0, lingerMs: 1000 });
  assert.throws(() => parseArgs(['--dst', '$(id)', '--rate', '1', '--count', '1', '--duration-ms', '1']), /--dst must be an IPv4 address/);
  assert.throws(() => parseArgs(['--dst', '10.0.0.1', '--rate', '1', '--count', '1']), /--duration-ms is required/);
  assert.throws(() => parseArgs(['--dst', '10.0.0.1', '--rate', '1', '--count', '1', '--duration-ms', '9999999']), /--duration-ms must be an integer from 1 to 600000/);
});

/** A UDP echo on port 7 at the guest address inside the host netns (no VM needed). */
async function startEcho(topo: Topology, ip: string): Promise<void> {
  const script = `const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>s.send(m,r.port,r.address));` +
    `s.bind(7,${JSON.stringify(ip)},()=>console.log('ready'));setTimeout(()=>process.exit(0),60000);`;
  const child = topo.spawn('host', [process.execPath, '-e', script]);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('udp echo did not start')), 10_000);
    child.stdout!.on('data', () => { clearTimeout(timer); resolve(); });
    child.once('exit', (c) => { clearTimeout(timer); reject(new Error(`udp echo exited ${c}`)); });
  });
}

test('capture on both ends of the veth while ping runs; ping output and tcpdump agree', async () => {
  if (!privileged) return;
  const topo = await createTopology({ layout: 'bridge', queues: 1 });
  try {
    await topo.exec('host', ['ip', 'addr', 'add', `${topo.guestIp}/24`, 'dev', topo.bridge!]);
    const clientPcap = join(topo.runDir, 'client.pcap'), hostPcap = join(topo.runDir, 'host.pcap');
    const c1 = await startCapture(topo, 'client', topo.clientIface, clientPcap, { filter: ['icmp'] });
    const c2 = await startCapture(topo, 'host', topo.names.vethHost, hostPcap, { filter: ['icmp'] });
    const ping = await startPing(topo, { dst: topo.guestIp, intervalMs: 10, count: 30 }).result;
    assert.is(ping.transmitted, 30);
    assert.is(ping.received, 30);
    assert.equal(ping.lostSeqs, []);
    assert.equal(ping.replies.map((r) => r.seq), Array.from({ length: 30 }, (_, i) => i + 1));
    assert.ok(ping.replies.every((r) => r.t > 1.6e12 && r.ttl === 64));
    const s1 = await c1.stop(), s2 = await c2.stop();
    assert.is(s1.captured, 60, 'client side: 30 requests + 30 replies');
    assert.is(s2.captured, 60);
    assert.is(s1.droppedByKernel, 0);
    assert.ok(statSync(clientPcap).size > 24 + 60 * 16);
  } finally {
    await topo.teardown();
  }
  await topo.verifyClean();
});

test('a tcpdump that cannot start, or dies mid-run, is a CaptureError', async () => {
  if (!privileged) return;
  const topo = await createTopology({ layout: 'bridge', queues: 1 });
  try {
    const bad = await startCapture(topo, 'host', 'nosuchif0', join(topo.runDir, 'x.pcap')).then(() => undefined, (e: Error) => e);
    assert.instance(bad, CaptureError);
    assert.match(bad!.message, /tcpdump on nosuchif0 .*exit/);
    const inj = await startCapture(topo, 'host', 'tap0; rm -rf /', join(topo.runDir, 'y.pcap')).then(() => undefined, (e: Error) => e);
    assert.match(inj!.message, /invalid interface name/);
    const cap = await startCapture(topo, 'host', topo.tap0, join(topo.runDir, 'tap0.pcap'));
    process.kill(cap.pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 300));
    assert.instance(cap.died, CaptureError);
    const err = await cap.stop().then(() => undefined, (e: Error) => e);
    assert.instance(err, CaptureError);
    assert.match(err!.message, /exited on its own \(signal SIGKILL\)/);
  } finally {
    await topo.teardown();
  }
  await topo.verifyClean();
});

test('ping to an address nobody answers: every seq lost, -O lines parsed (routed layout)', async () => {
  if (!privileged) return;
  const topo = await createTopology({ layout: 'routed', queues: 1 });
  try {
    const r = await startPing(topo, { dst: topo.guestIp, intervalMs: 50, count: 5 }).result;
    assert.is(r.transmitted, 5);
    assert.is(r.received, 0);
    assert.equal(r.lostSeqs, [1, 2, 3, 4, 5]);
    assert.ok(r.noAnswerYet.length >= 3, JSON.stringify(r.noAnswerYet));
  } finally {
    await topo.teardown();
  }
});

test('udp-stream to a UDP echo in the host netns: every seq echoed; guest→client receive-only', async () => {
  if (!privileged) return;
  const topo = await createTopology({ layout: 'bridge', queues: 1 });
  try {
    await topo.exec('host', ['ip', 'addr', 'add', `${topo.guestIp}/24`, 'dev', topo.bridge!]);
    await startEcho(topo, topo.guestIp);
    const run = startUdpStream(topo, { dst: topo.guestIp, port: 7, rate: 2000, count: 1000, durationMs: 10_000, lingerMs: 300 });
    assert.ok((await run.ready) > 0);
    const s = await run.result;
    assert.is(s.sent, 1000);
    assert.is(s.endedBy, 'count');
    const echo = s.flows.find((f) => f.echo)!;
    assert.is(echo.from, `${topo.guestIp}:7`);
    assert.is(echo.received, 1000);
    assert.equal(echo.lostSeqs, []);
    assert.is(echo.duplicates, 0);
    assert.ok(echo.rttMs!.min >= 0 && echo.rttMs!.max >= echo.rttMs!.min);

    // The other direction: a receive-only stream in the client, a sender in the host netns.
    const rx = startUdpStream(topo, { dst: topo.guestIp, rate: 1, count: 0, durationMs: 5_000, listenPort: 5555, lingerMs: 0 });
    assert.is(await rx.ready, 5555);
    const tx = startUdpStream(topo, { ns: 'host', dst: topo.clientIp, port: 5555, rate: 5000, count: 500, durationMs: 5_000, lingerMs: 0 });
    assert.is((await tx.result).sent, 500);
    const got = await rx.stop();
    assert.is(got.endedBy, 'signal');
    const flow = got.flows.find((f) => f.from.startsWith(`${topo.guestIp}:`))!;
    assert.is(flow.received, 500);
    assert.is(flow.highestSeq, 499);
    assert.equal(flow.lostSeqs, []);
  } finally {
    await topo.teardown();
  }
  await topo.verifyClean();
});

test('udp-stream sustains 10,000 datagrams/s (measured, printed)', async () => {
  if (!privileged) return;
  const topo = await createTopology({ layout: 'bridge', queues: 1 });
  try {
    await topo.exec('host', ['ip', 'addr', 'add', `${topo.guestIp}/24`, 'dev', topo.bridge!]);
    await startEcho(topo, topo.guestIp);
    const s = await startUdpStream(topo, { dst: topo.guestIp, rate: 10_000, count: 10_000, durationMs: 10_000, lingerMs: 500 }).result;
    assert.is(s.sent, 10_000);
    const secs = (s.lastSendUs - s.firstSendUs) / 1e6;
    const echo = s.flows.find((f) => f.echo)!;
    console.log(`udp-stream: 10000 sent in ${secs.toFixed(3)} s (${Math.round(9999 / secs)}/s), ${echo.received} echoed, max rtt ${echo.rttMs?.max.toFixed(2)} ms`);
    assert.ok(echo.received > 0);
  } finally {
    await topo.teardown();
  }
  assert.not.ok(existsSync(topo.runDir));
});

test.run();
