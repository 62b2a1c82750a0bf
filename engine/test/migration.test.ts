// Live migration between two engine VMs on real TAPs (tap0 -> tap1 on one bridge), driven over
// QMP as a harness drives QEMU: a full migration under ping, ping-pong, and each fault.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import { join } from 'node:path';
import { requirePrivilege } from '../../fixtures/privilege.js';
import type { EngineGuest } from '../../lib/engine-argv.js';
import type { QmpClient } from '../../lib/qmp-client.js';
import { qmpError, setCaps, waitStatus } from './qmp-steps.js';
import { GUEST_IP, GUEST_MAC, TestNet, withNet, type VmOptions, type VmProc } from './testnet.js';

const privileged = requirePrivilege('engine migration tests');
const ptest = privileged ? test : test.skip;

const GUEST: EngineGuest = { dirtyRate: 2000, fill: 0.25 };

/** MIGRATION event statuses seen so far, in order. */
const migrationStatuses = (q: QmpClient): string[] => q.events.flatMap((e) => (e.event === 'MIGRATION' ? [e.data.status] : []));

interface Pair { src: VmProc; dst: VmProc; uri: string }

/** src on tap0, dst on tap1 listening on a UNIX socket; `dst: { paused: true }` for -S. */
async function startPair(n: TestNet, o: { dst?: VmOptions; guest?: EngineGuest; memMB?: number } = {}): Promise<Pair> {
  const uri = `unix:${join(n.dir, 'mig.sock')}`;
  const common = { guest: o.guest ?? GUEST, memMB: o.memMB ?? 64 };
  const src = await n.startVm('src', n.guestOn(n.tap0, common));
  const dst = await n.startVm('dst', n.guestOn(n.tap1, { ...common, incoming: uri, ...o.dst }));
  return { src, dst, uri };
}

ptest('full migration under ping: RAM equal at stop, guest state kept, downtime to VM_STARTED, announce', () => withNet(1, async (n) => {
  const { src, dst, uri } = await startPair(n, { dst: { paused: true } });
  await n.udp('send', 9, 1000, 300);
  const ping = n.ping(400, 0.01, 1);
  await new Promise((r) => setTimeout(r, 1000));
  for (const q of [src.qmp, dst.qmp]) await setCaps(q, ['events', 'return-path']);
  await src.qmp.execute('migrate', { uri });
  const done = await waitStatus(src.qmp, ['completed', 'failed']);
  assert.is(done.status, 'completed', JSON.stringify(done));
  assert.ok(src.qmp.events.some((e) => e.event === 'MIGRATION_PASS'), 'MIGRATION_PASS events');
  assert.equal(migrationStatuses(src.qmp), ['setup', 'active', 'completed']);
  assert.is((await src.qmp.execute('query-status')).status, 'postmigrate');
  await waitStatus(dst.qmp, ['completed']);
  assert.is((await dst.qmp.execute('query-status')).status, 'paused');
  const a = await src.qmp.execute('x-query-ram-digest');
  const b = await dst.qmp.execute('x-query-ram-digest');
  assert.ok(a['nonzero-pages'] > 1000);
  assert.is(b.digest, a.digest, 'destination RAM equals the source RAM at stop');
  await new Promise((r) => setTimeout(r, 300));
  await dst.qmp.execute('cont');
  await dst.qmp.waitEvent('RESUME', undefined, 30_000, 0);
  // VM_STARTED arrives after cont: downtime covers the 300 ms the destination stayed paused.
  await new Promise((r) => setTimeout(r, 300));
  const after = await src.qmp.execute('query-migrate');
  assert.ok((after.downtime ?? 0) >= 300, `downtime ${after.downtime} counts until VM_STARTED`);
  const pr = await ping;
  const tail = await n.ping(20, 0.01, 1);
  assert.is(tail.received, 20, 'the migrated guest answers on tap1');
  assert.ok(pr.received > 0);
  const g = await dst.qmp.execute('x-query-guest-net');
  assert.is(g.udp.find((u) => u.port === 9)!.received, 300, 'UDP sink counters migrated');
  assert.ok(g['arp-cache'].length >= 1, 'ARP cache migrated');
}));

ptest('the destination announces with QEMU\'s RARP schedule, then the guest\'s gratuitous ARP, and sends nothing with the guest MAC before', () => withNet(1, async (n) => {
  const { src, dst, uri } = await startPair(n);
  const dump = n.spawnInHost(['tcpdump', '-i', n.tap1, '-e', '-n', '-l', '-tt', 'ether', 'src', GUEST_MAC]);
  let out = '';
  dump.stdout!.on('data', (d) => { out += d; });
  try {
    await new Promise<void>((resolve) => {
      let err = '';
      dump.stderr!.on('data', (d) => { err += d; if (/listening on/.test(err)) resolve(); });
      setTimeout(resolve, 5000);
    });
    for (const q of [src.qmp, dst.qmp]) await setCaps(q, ['events', 'return-path']);
    await src.qmp.execute('migrate', { uri });
    assert.is((await waitStatus(src.qmp, ['completed', 'failed'])).status, 'completed');
    await dst.qmp.waitEvent('RESUME', undefined, 30_000, 0);
    await new Promise((r) => setTimeout(r, 1500));
  } finally {
    dump.kill('SIGINT');
    await new Promise((r) => dump.on('close', r));
  }
  const lines = out.trim().split('\n').filter(Boolean);
  const kinds = lines.map((l) => (/Reverse ARP|0x8035/.test(l) ? 'rarp' : new RegExp(`ARP.*Request who-has ${GUEST_IP} tell ${GUEST_IP}`).test(l) ? 'garp' : 'other'));
  assert.equal(kinds, ['rarp', 'rarp', 'rarp', 'rarp', 'rarp', 'garp'], out);
  const t = lines.map((l) => Number(l.split(' ')[0]) * 1000);
  // QEMU's schedule with the defaults: 0, +50, +150, +250, +350 ms (qemu_announce_timer_step).
  const gaps = t.slice(1, 5).map((x, i) => x - t[i]!);
  assert.ok(gaps[0]! >= 40 && gaps[3]! >= 340, `announce gaps ${gaps.join(',')}`);
}));

ptest('ping-pong A->B->A->B: each hop is a full migration to a fresh process', () => withNet(1, async (n) => {
  let cur = await n.startVm('hop0', n.guestOn(n.tap0, { guest: GUEST, memMB: 64 }));
  await n.udp('send', 9, 1000, 100);
  for (let hop = 1; hop <= 3; hop++) {
    const uri = `unix:${join(n.dir, `hop${hop}.sock`)}`;
    const next = await n.startVm(`hop${hop}`, n.guestOn(hop % 2 ? n.tap1 : n.tap0, { guest: GUEST, memMB: 64, incoming: uri }));
    for (const q of [cur.qmp, next.qmp]) await setCaps(q, ['events', 'return-path']);
    await cur.qmp.execute('migrate', { uri });
    const info = await waitStatus(cur.qmp, ['completed', 'failed']);
    assert.is(info.status, 'completed', `hop ${hop}: ${JSON.stringify(info)}`);
    await next.qmp.waitEvent('RESUME', undefined, 30_000, 0);
    await cur.qmp.execute('quit');
    await cur.exited;
    const p = await n.ping(10, 0.05, 1);
    assert.is(p.received, 10, `hop ${hop}: guest answers after migration`);
    cur = next;
  }
  const g = await cur.qmp.execute('x-query-guest-net');
  assert.is(g.udp.find((u) => u.port === 9)!.received, 100);
}));

ptest('over tcp with pause-before-switchover: pre-switchover waits for migrate-continue, then device, completed', () => withNet(1, async (n) => {
  const uri = 'tcp:127.0.0.1:47123';
  const src = await n.startVm('src', n.guestOn(n.tap0, { guest: GUEST, memMB: 64 }));
  const dst = await n.startVm('dst', n.guestOn(n.tap1, { guest: GUEST, memMB: 64, incoming: 'defer' }));
  await setCaps(src.qmp, ['events', 'return-path', 'pause-before-switchover']);
  await setCaps(dst.qmp, ['events']);
  await dst.qmp.execute('migrate-incoming', { uri });
  assert.match((await qmpError(dst.qmp.execute('migrate-incoming', { uri }))).desc, /already been started/);
  await src.qmp.execute('migrate', { uri });
  await waitStatus(src.qmp, ['pre-switchover']);
  assert.is((await src.qmp.execute('query-status')).status, 'finish-migrate');
  await src.qmp.execute('migrate-continue', { state: 'pre-switchover' });
  assert.is((await waitStatus(src.qmp, ['completed', 'failed'])).status, 'completed');
  assert.equal(migrationStatuses(src.qmp), ['setup', 'active', 'pre-switchover', 'device', 'completed']);
  await dst.qmp.waitEvent('RESUME', undefined, 30_000, 0);
  assert.equal(migrationStatuses(dst.qmp), ['active', 'completed']);
  assert.is((await n.ping(5, 0.05, 1)).received, 5);
}));

ptest('migrate_cancel during precopy gives cancelled and the source keeps running', () => withNet(1, async (n) => {
  const { src, uri } = await startPair(n, { guest: { dirtyRate: 2000, fill: 0.5 } });
  await setCaps(src.qmp, ['events']);
  await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 4 * 2 ** 20 });
  const t0 = performance.now();
  await src.qmp.execute('migrate', { uri });
  await waitStatus(src.qmp, ['active']);
  await new Promise((r) => setTimeout(r, 1000));
  const mid = await src.qmp.execute('query-migrate');
  const elapsed = (performance.now() - t0) / 1000;
  // max-bandwidth holds: at most the allowance of the elapsed time plus one 1 MiB write in flight.
  assert.ok(mid.ram!.transferred <= 4 * 2 ** 20 * elapsed + 2 ** 20 + 65536, `${mid.ram!.transferred} bytes in ${elapsed.toFixed(2)} s at 4 MiB/s`);
  assert.ok(mid.ram!.transferred > 0);
  await src.qmp.execute('migrate_cancel');
  const info = await waitStatus(src.qmp, ['cancelled'], 10000);
  assert.is(info.status, 'cancelled');
  assert.equal(migrationStatuses(src.qmp).slice(-2), ['cancelling', 'cancelled']);
  assert.is((await src.qmp.execute('query-status')).status, 'running');
  assert.is((await n.ping(10, 0.05, 1)).received, 10);
}));

ptest('a destination killed mid-precopy gives failed; the source runs on', () => withNet(1, async (n) => {
  const { src, dst, uri } = await startPair(n, { guest: { dirtyRate: 2000, fill: 0.5 } });
  await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 4 * 2 ** 20 });
  await src.qmp.execute('migrate', { uri });
  await waitStatus(src.qmp, ['active']);
  await new Promise((r) => setTimeout(r, 300));
  dst.proc.kill('SIGKILL');
  const info = await waitStatus(src.qmp, ['failed'], 15000);
  assert.ok(info['error-desc'], 'failed with a reason');
  assert.is((await src.qmp.execute('query-status')).status, 'running');
  assert.is((await n.ping(10, 0.05, 1)).received, 10);
}));

ptest('a channel cut mid-stream gives failed on the source; the destination fails and exits', () => withNet(1, async (n) => {
  const { src, dst, uri } = await startPair(n, { guest: { dirtyRate: 2000, fill: 0.5 } });
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
    await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 4 * 2 ** 20 });
    await src.qmp.execute('migrate', { uri: `unix:${relayPath}` });
    await waitStatus(src.qmp, ['active']);
    await new Promise((r) => setTimeout(r, 400));
    for (const c of conns) c.destroy();
    const info = await waitStatus(src.qmp, ['failed'], 15000);
    assert.ok(info['error-desc']);
    assert.is((await src.qmp.execute('query-status')).status, 'running');
    assert.is(await dst.exited, 1);
    assert.match(dst.stderr(), /load of migration failed: truncated stream/);
    assert.is((await n.ping(10, 0.05, 1)).received, 10);
  } finally {
    relay.close();
  }
}));

ptest('a guest dirtying faster than the bandwidth never converges; expected-downtime tells the truth; cancel works', () => withNet(1, async (n) => {
  // 16 MiB that the vCPU rewrites within a second, against 4 MiB/s: each pass needs ~4 s.
  const { src, uri } = await startPair(n, { guest: { dirtyRate: 20000 }, memMB: 16 });
  await setCaps(src.qmp, ['events']);
  await src.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 4 * 2 ** 20, 'downtime-limit': 300 });
  await src.qmp.execute('migrate', { uri });
  await src.qmp.waitEvent('MIGRATION_PASS', (d) => d.pass >= 2, 60_000, 0);
  await new Promise((r) => setTimeout(r, 500));
  const info = await src.qmp.execute('query-migrate');
  assert.is(info.status, 'active');
  assert.ok((info['expected-downtime'] ?? 0) > 300, `expected-downtime ${info['expected-downtime']} exceeds the limit`);
  // It is the remaining bytes at the measured bandwidth, which cannot beat max-bandwidth.
  const floor = ((info.ram!.remaining * 1000) / (4 * 2 ** 20)) * 0.5;
  assert.ok(info['expected-downtime']! >= floor, `expected-downtime ${info['expected-downtime']} vs remaining ${info.ram!.remaining}`);
  await src.qmp.execute('migrate_cancel');
  await waitStatus(src.qmp, ['cancelled'], 10000);
  assert.is((await src.qmp.execute('query-status')).status, 'running');
}));

ptest('migrating where nobody listens fails with a clear error and the source runs on', () => withNet(1, async (n) => {
  const src = await n.startVm('src', n.guestOn(n.tap0, { memMB: 16 }));
  await src.qmp.execute('migrate', { uri: `unix:${join(n.dir, 'nobody.sock')}` });
  const info = await waitStatus(src.qmp, ['failed'], 10000);
  assert.match(info['error-desc'] ?? '', /Connection refused/);
  assert.is((await src.qmp.execute('query-status')).status, 'running');
  assert.is((await n.ping(5, 0.05, 1)).received, 5);
}));

test.run();
