// Live migration between two engine VMs on real TAPs (tap0 -> tap1 on one bridge), driven over
// QMP as a harness drives QEMU: a full migration under ping, ping-pong, and each fault.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import { join } from 'node:path';
import { requirePrivilege } from '../../fixtures/privilege.js';
import type { TestQmp } from './qmp.js';
import { GUEST_MAC, TestNet, type VmProc } from './testnet.js';

const privileged = requirePrivilege('engine migration tests');
const ptest = privileged ? test : test.skip;

interface MigInfo { status?: string; downtime?: number; 'expected-downtime'?: number; 'error-desc'?: string; ram?: { transferred: number; remaining: number; 'dirty-sync-count': number; normal: number; duplicate: number } }

async function waitStatus(q: TestQmp, want: string[], timeoutMs = 60000): Promise<MigInfo> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = await q.ok<MigInfo>('query-migrate');
    if (info.status && want.includes(info.status)) return info;
    if (Date.now() > deadline) throw new Error(`migration status ${info.status} after ${timeoutMs} ms, wanted ${want.join('|')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function setCaps(q: TestQmp, caps: string[]): Promise<void> {
  await q.ok('migrate-set-capabilities', { capabilities: caps.map((c) => ({ capability: c, state: true })) });
}

async function withNet(taps: number, fn: (n: TestNet) => Promise<void>): Promise<void> {
  const n = TestNet.create(taps);
  try { await fn(n); } finally { await n.destroy(); }
}

const GUEST = 'ip=192.168.100.2/24,dirty-rate=2000,fill=0.25';

async function startPair(n: TestNet, srcExtra: string[] = [], dstExtra: string[] = [], guest = GUEST, mem = '64M'): Promise<{ src: VmProc; dst: VmProc; uri: string }> {
  const uri = `unix:${join(n.dir, 'mig.sock')}`;
  const src = await n.startVm('src', [...TestNet.nicArgs('tap0', [], guest), '-m', mem, ...srcExtra]);
  const dst = await n.startVm('dst', [...TestNet.nicArgs('tap1', [], guest), '-m', mem, '-incoming', uri, ...dstExtra]);
  return { src, dst, uri };
}

ptest('full migration under ping: RAM equal at stop, guest state kept, downtime to VM_STARTED, announce', () => withNet(2, async (n) => {
  const { src, dst, uri } = await startPair(n, [], ['-S']);
  await n.udp('send', 9, 1000, 300);
  const ping = n.ping(400, 0.01, 1);
  await new Promise((r) => setTimeout(r, 1000));
  for (const q of [src.qmp, dst.qmp]) await setCaps(q, ['events', 'return-path']);
  await src.qmp.ok('migrate', { uri });
  const done = await waitStatus(src.qmp, ['completed', 'failed']);
  assert.is(done.status, 'completed', JSON.stringify(done));
  assert.ok(src.qmp.events.some((e) => e.event === 'MIGRATION_PASS'), 'MIGRATION_PASS events');
  assert.equal(src.qmp.events.filter((e) => e.event === 'MIGRATION').map((e) => (e.data as { status: string }).status), ['setup', 'active', 'completed']);
  assert.is((await src.qmp.ok<{ status: string }>('query-status')).status, 'postmigrate');
  await waitStatus(dst.qmp, ['completed']);
  assert.is((await dst.qmp.ok<{ status: string }>('query-status')).status, 'paused');
  const a = await src.qmp.ok<{ digest: string; 'nonzero-pages': number }>('x-query-ram-digest');
  const b = await dst.qmp.ok<{ digest: string; 'nonzero-pages': number }>('x-query-ram-digest');
  assert.ok(a['nonzero-pages'] > 1000);
  assert.is(b.digest, a.digest, 'destination RAM equals the source RAM at stop');
  await new Promise((r) => setTimeout(r, 300));
  await dst.qmp.ok('cont');
  await dst.qmp.waitEvent('RESUME');
  // VM_STARTED arrives after cont: downtime covers the 300 ms the destination stayed paused.
  await src.qmp.waitFor(() => false, 300, 'settle').catch(() => {});
  const after = await src.qmp.ok<MigInfo>('query-migrate');
  assert.ok((after.downtime ?? 0) >= 300, `downtime ${after.downtime} counts until VM_STARTED`);
  const pr = await ping;
  const tail = await n.ping(20, 0.01, 1);
  assert.is(tail.received, 20, 'the migrated guest answers on tap1');
  assert.ok(pr.received > 0);
  const g = await dst.qmp.ok<{ mac: string; udp: Array<{ port: number; received: number }>; 'arp-cache': unknown[] }>('x-query-guest-net');
  assert.is(g.udp.find((u) => u.port === 9)!.received, 300, 'UDP sink counters migrated');
  assert.ok(g['arp-cache'].length >= 1, 'ARP cache migrated');
}));

ptest('the destination announces with QEMU\'s RARP schedule, then the guest\'s gratuitous ARP, and sends nothing with the guest MAC before', () => withNet(2, async (n) => {
  const { src, dst, uri } = await startPair(n);
  const dump = n.spawnInHost(['tcpdump', '-i', 'tap1', '-e', '-n', '-l', '-tt', 'ether', 'src', GUEST_MAC]);
  let out = '';
  dump.stdout!.on('data', (d) => { out += d; });
  try {
    await new Promise<void>((resolve) => {
      let err = '';
      dump.stderr!.on('data', (d) => { err += d; if (/listening on/.test(err)) resolve(); });
      setTimeout(resolve, 5000);
    });
    for (const q of [src.qmp, dst.qmp]) await setCaps(q, ['events', 'return-path']);
    await src.qmp.ok('migrate', { uri });
    assert.is((await waitStatus(src.qmp, ['completed', 'failed'])).status, 'completed');
    await dst.qmp.waitEvent('RESUME');
    await new Promise((r) => setTimeout(r, 1500));
  } finally {
    dump.kill('SIGINT');
    await new Promise((r) => dump.on('close', r));
  }
  const lines = out.trim().split('\n').filter(Boolean);
  const kinds = lines.map((l) => (/Reverse ARP|0x8035/.test(l) ? 'rarp' : /ARP.*Request who-has 192\.168\.100\.2 tell 192\.168\.100\.2/.test(l) ? 'garp' : 'other'));
  assert.equal(kinds, ['rarp', 'rarp', 'rarp', 'rarp', 'rarp', 'garp'], out);
  const t = lines.map((l) => Number(l.split(' ')[0]) * 1000);
  // QEMU's schedule with the defaults: 0, +50, +150, +250, +350 ms (qemu_announce_timer_step).
  const gaps = t.slice(1, 5).map((x, i) => x - t[i]!);
  assert.ok(gaps[0]! >= 40 && gaps[3]! >= 340, `announce gaps ${gaps.join(',')}`);
}));

ptest('ping-pong A->B->A->B: each hop is a full migration to a fresh process', () => withNet(2, async (n) => {
  let cur = await n.startVm('hop0', [...TestNet.nicArgs('tap0', [], GUEST), '-m', '64M']);
  await n.udp('send', 9, 1000, 100);
  for (let hop = 1; hop <= 3; hop++) {
    const uri = `unix:${join(n.dir, `hop${hop}.sock`)}`;
    const next = await n.startVm(`hop${hop}`, [...TestNet.nicArgs(`tap${hop % 2}`, [], GUEST), '-m', '64M', '-incoming', uri]);
    for (const q of [cur.qmp, next.qmp]) await setCaps(q, ['events', 'return-path']);
    await cur.qmp.ok('migrate', { uri });
    const info = await waitStatus(cur.qmp, ['completed', 'failed']);
    assert.is(info.status, 'completed', `hop ${hop}: ${JSON.stringify(info)}`);
    await next.qmp.waitEvent('RESUME');
    await cur.qmp.ok('quit');
    await cur.exited;
    const p = await n.ping(10, 0.05, 1);
    assert.is(p.received, 10, `hop ${hop}: guest answers after migration`);
    cur = next;
  }
  const g = await cur.qmp.ok<{ udp: Array<{ port: number; received: number }> }>('x-query-guest-net');
  assert.is(g.udp.find((u) => u.port === 9)!.received, 100);
}));

ptest('over tcp with pause-before-switchover: pre-switchover waits for migrate-continue, then device, completed', () => withNet(2, async (n) => {
  const uri = 'tcp:127.0.0.1:47123';
  const src = await n.startVm('src', [...TestNet.nicArgs('tap0', [], GUEST), '-m', '64M']);
  const dst = await n.startVm('dst', [...TestNet.nicArgs('tap1', [], GUEST), '-m', '64M', '-incoming', 'defer']);
  await setCaps(src.qmp, ['events', 'return-path', 'pause-before-switchover']);
  await setCaps(dst.qmp, ['events']);
  await dst.qmp.ok('migrate-incoming', { uri });
  const again = await dst.qmp.execute('migrate-incoming', { uri });
  assert.match((again.error as { desc: string }).desc, /already been started/);
  await src.qmp.ok('migrate', { uri });
  await waitStatus(src.qmp, ['pre-switchover']);
  assert.is((await src.qmp.ok<{ status: string }>('query-status')).status, 'finish-migrate');
  await src.qmp.ok('migrate-continue', { state: 'pre-switchover' });
  assert.is((await waitStatus(src.qmp, ['completed', 'failed'])).status, 'completed');
  const st = src.qmp.events.filter((e) => e.event === 'MIGRATION').map((e) => (e.data as { status: string }).status);
  assert.equal(st, ['setup', 'active', 'pre-switchover', 'device', 'completed']);
  await dst.qmp.waitEvent('RESUME');
  assert.equal(dst.qmp.events.filter((e) => e.event === 'MIGRATION').map((e) => (e.data as { status: string }).status), ['active', 'completed']);
  assert.is((await n.ping(5, 0.05, 1)).received, 5);
}));

ptest('migrate_cancel during precopy gives cancelled and the source keeps running', () => withNet(2, async (n) => {
  const { src, uri } = await startPair(n, [], [], 'ip=192.168.100.2/24,dirty-rate=2000,fill=0.5');
  await setCaps(src.qmp, ['events']);
  await src.qmp.ok('migrate-set-parameters', { 'max-bandwidth': 4 * 2 ** 20 });
  const t0 = performance.now();
  await src.qmp.ok('migrate', { uri });
  await waitStatus(src.qmp, ['active']);
  await new Promise((r) => setTimeout(r, 1000));
  const mid = await src.qmp.ok<MigInfo>('query-migrate');
  const elapsed = (performance.now() - t0) / 1000;
  // max-bandwidth holds: at most the allowance of the elapsed time plus one 1 MiB write in flight.
  assert.ok(mid.ram!.transferred <= 4 * 2 ** 20 * elapsed + 2 ** 20 + 65536, `${mid.ram!.transferred} bytes in ${elapsed.toFixed(2)} s at 4 MiB/s`);
  assert.ok(mid.ram!.transferred > 0);
  await src.qmp.ok('migrate_cancel');
  const info = await waitStatus(src.qmp, ['cancelled'], 10000);
  assert.is(info.status, 'cancelled');
  const st = src.qmp.events.filter((e) => e.event === 'MIGRATION').map((e) => (e.data as { status: string }).status);
  assert.equal(st.slice(-2), ['cancelling', 'cancelled']);
  assert.is((await src.qmp.ok<{ status: string }>('query-status')).status, 'running');
  assert.is((await n.ping(10, 0.05, 1)).received, 10);
}));

ptest('a destination killed mid-precopy gives failed; the source runs on', () => withNet(2, async (n) => {
  const { src, dst, uri } = await startPair(n, [], [], 'ip=192.168.100.2/24,dirty-rate=2000,fill=0.5');
  await src.qmp.ok('migrate-set-parameters', { 'max-bandwidth': 4 * 2 ** 20 });
  await src.qmp.ok('migrate', { uri });
  await waitStatus(src.qmp, ['active']);
  await new Promise((r) => setTimeout(r, 300));
  dst.proc.kill('SIGKILL');
  const info = await waitStatus(src.qmp, ['failed'], 15000);
  assert.ok(info['error-desc'], 'failed with a reason');
  assert.is((await src.qmp.ok<{ status: string }>('query-status')).status, 'running');
  assert.is((await n.ping(10, 0.05, 1)).received, 10);
}));

ptest('a channel cut mid-stream gives failed on the source; the destination fails and exits', () => withNet(2, async (n) => {
  const { src, dst, uri } = await startPair(n, [], [], 'ip=192.168.100.2/24,dirty-rate=2000,fill=0.5');
  // A relay between the two, cut in the middle of precopy.
  const relayPath = join(n.dir, 'relay.sock');
  const conns: net.Socket[] = [];
  const relay = net.createServer((a) => {
    const b = net.connect(uri.slice(5));
    conns.push(a, b);
    a.pipe(b); b.pipe(a);
    a.on('error', () => {}); b.on('error', () => {});
  });
  await new Promise<void>((r) => relay.listen(relayPath, r));
  try {
    await src.qmp.ok('migrate-set-parameters', { 'max-bandwidth': 4 * 2 ** 20 });
    await src.qmp.ok('migrate', { uri: `unix:${relayPath}` });
    await waitStatus(src.qmp, ['active']);
    await new Promise((r) => setTimeout(r, 400));
    for (const c of conns) c.destroy();
    const info = await waitStatus(src.qmp, ['failed'], 15000);
    assert.ok(info['error-desc']);
    assert.is((await src.qmp.ok<{ status: string }>('query-status')).status, 'running');
    assert.is(await dst.exited, 1);
    assert.match(dst.stderr(), /load of migration failed: truncated stream/);
    assert.is((await n.ping(10, 0.05, 1)).received, 10);
  } finally {
    relay.close();
  }
}));

ptest('a guest dirtying faster than the bandwidth never converges; expected-downtime tells the truth; cancel works', () => withNet(2, async (n) => {
  // 16 MiB that the vCPU rewrites within a second, against 4 MiB/s: each pass needs ~4 s.
  const { src, uri } = await startPair(n, [], [], 'ip=192.168.100.2/24,dirty-rate=20000', '16M');
  await setCaps(src.qmp, ['events']);
  await src.qmp.ok('migrate-set-parameters', { 'max-bandwidth': 4 * 2 ** 20, 'downtime-limit': 300 });
  await src.qmp.ok('migrate', { uri });
  await src.qmp.waitFor(() => src.qmp.events.filter((e) => e.event === 'MIGRATION_PASS').length >= 2, 60000, 'a second pass');
  await new Promise((r) => setTimeout(r, 500));
  const info = await src.qmp.ok<MigInfo>('query-migrate');
  assert.is(info.status, 'active');
  assert.ok((info['expected-downtime'] ?? 0) > 300, `expected-downtime ${info['expected-downtime']} exceeds the limit`);
  // It is the remaining bytes at the measured bandwidth, which cannot beat max-bandwidth.
  const floor = ((info.ram!.remaining * 1000) / (4 * 2 ** 20)) * 0.5;
  assert.ok(info['expected-downtime']! >= floor, `expected-downtime ${info['expected-downtime']} vs remaining ${info.ram!.remaining}`);
  await src.qmp.ok('migrate_cancel');
  await waitStatus(src.qmp, ['cancelled'], 10000);
  assert.is((await src.qmp.ok<{ status: string }>('query-status')).status, 'running');
}));

ptest('migrating where nobody listens fails with a clear error and the source runs on', () => withNet(1, async (n) => {
  const src = await n.startVm('src', [...TestNet.nicArgs('tap0'), '-m', '16M']);
  await src.qmp.ok('migrate', { uri: `unix:${join(n.dir, 'nobody.sock')}` });
  const info = await waitStatus(src.qmp, ['failed'], 10000);
  assert.match(info['error-desc'] ?? '', /Connection refused/);
  assert.is((await src.qmp.ok<{ status: string }>('query-status')).status, 'running');
  assert.is((await n.ping(5, 0.05, 1)).received, 5);
}));

test.run();
