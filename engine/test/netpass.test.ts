// netpass on real networking (bridge layout, tap0 -> tap1): frames that reach the stopped
// source are cached and, after VM_STARTED, delivered by the destination; a failed switchover
// hands them to the source's own guest. A `-S` destination resumed 300 ms late makes the
// switchover window long enough that every run has frames in it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { requirePrivilege } from '../../fixtures/privilege.js';
import type { TestQmp } from './qmp.js';
import { TestNet, UDP_TOOL, GUEST_IP, type VmProc } from './testnet.js';

const privileged = requirePrivilege('engine netpass tests');
const ptest = privileged ? test : test.skip;

interface Sink { port: number; received: number; missing: number; duplicates: number }
interface GuestInfo { udp: Sink[]; 'netpass-injected'?: { frames: number; 'max-delay-ms': number } }
interface MigInfo { status?: string; netpass?: { cached: number; forwarded: number; dropped: number } }

async function waitStatus(q: TestQmp, want: string[], timeoutMs = 60000): Promise<MigInfo> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = await q.ok<MigInfo>('query-migrate');
    if (info.status && want.includes(info.status)) return info;
    if (Date.now() > deadline) throw new Error(`migration status ${info.status}, wanted ${want.join('|')}`);
    await new Promise((r) => setTimeout(r, 30));
  }
}

const caps = (names: string[]) => ({ capabilities: names.map((c) => ({ capability: c, state: true })) });
const GUEST = `ip=${GUEST_IP}/24,dirty-rate=1000`;

async function withNet(fn: (n: TestNet) => Promise<void>): Promise<void> {
  const n = TestNet.create(2);
  try { await fn(n); } finally { await n.destroy(); }
}

/** Migrates src -> a `-S` destination under a UDP stream to the sink; `cont` 300 ms after completion. */
async function migrateUnderUdp(n: TestNet, netpass: boolean, params: Record<string, number> = {}): Promise<{ src: VmProc; dst: VmProc; sent: number }> {
  const uri = `unix:${join(n.dir, 'mig.sock')}`;
  const src = await n.startVm('src', [...TestNet.nicArgs('tap0', [], GUEST), '-m', '32M']);
  const dst = await n.startVm('dst', [...TestNet.nicArgs('tap1', [], GUEST), '-m', '32M', '-incoming', uri, '-S']);
  const c = ['events', 'return-path', ...(netpass ? ['netpass'] : [])];
  for (const q of [src.qmp, dst.qmp]) await q.ok('migrate-set-capabilities', caps(c));
  if (Object.keys(params).length) await src.qmp.ok('migrate-set-parameters', params);
  const udp = n.inClient([process.execPath, UDP_TOOL, 'send', GUEST_IP, '9', '2000', '4000']);
  await new Promise((r) => setTimeout(r, 500));
  await src.qmp.ok('migrate', { uri });
  await waitStatus(dst.qmp, ['completed']);
  await new Promise((r) => setTimeout(r, 300));
  await dst.qmp.ok('cont');
  const out = await udp;
  await new Promise((r) => setTimeout(r, 500));
  return { src, dst, sent: (JSON.parse(out.stdout) as { sent: number }).sent };
}

ptest('netpass on: frames of the switchover window are cached, forwarded and counted by the destination guest', () => withNet(async (n) => {
  const { src, dst, sent } = await migrateUnderUdp(n, true);
  const mig = await src.qmp.ok<MigInfo>('query-migrate');
  assert.is(mig.status, 'completed');
  assert.ok(mig.netpass!.cached > 0, `cached ${mig.netpass!.cached}`);
  assert.is(mig.netpass!.forwarded, mig.netpass!.cached);
  assert.is(mig.netpass!.dropped, 0);
  const g = await dst.qmp.ok<GuestInfo>('x-query-guest-net');
  const sink = g.udp.find((u) => u.port === 9)!;
  assert.equal({ received: sink.received, missing: sink.missing }, { received: sent, missing: 0 });
  assert.ok(g['netpass-injected']!.frames >= mig.netpass!.cached - 5, 'injected frames are reported');
  assert.ok(g['netpass-injected']!['max-delay-ms'] >= 300, 'and how late they were');
}));

ptest('netpass off: the same switchover loses the frames that reached the stopped source', () => withNet(async (n) => {
  const { dst, sent } = await migrateUnderUdp(n, false);
  const sink = (await dst.qmp.ok<GuestInfo>('x-query-guest-net')).udp.find((u) => u.port === 9)!;
  assert.ok(sink.missing > 0 && sink.received < sent, `received ${sink.received} of ${sent}`);
}));

ptest('a full cache drops the newest frames and counts them', () => withNet(async (n) => {
  const { src } = await migrateUnderUdp(n, true, { 'netpass-max-packets': 20 });
  const mig = await src.qmp.ok<MigInfo>('query-migrate');
  // The bound is on frames held at once: 20 fill it while the destination waits for `cont`,
  // the rest of that window is dropped; after VM_STARTED draining makes room again.
  assert.ok(mig.netpass!.cached >= 20, `cached ${mig.netpass!.cached}`);
  assert.ok(mig.netpass!.dropped > 100, `dropped ${mig.netpass!.dropped}`);
  assert.is(mig.netpass!.forwarded, mig.netpass!.cached);
}));

ptest('cancel after caching: the source resumes and its own guest gets the cached frames', () => withNet(async (n) => {
  const uri = `unix:${join(n.dir, 'mig.sock')}`;
  const src = await n.startVm('src', [...TestNet.nicArgs('tap0', [], GUEST), '-m', '32M']);
  const dst = await n.startVm('dst', [...TestNet.nicArgs('tap1', [], GUEST), '-m', '32M', '-incoming', uri]);
  await src.qmp.ok('migrate-set-capabilities', caps(['events', 'return-path', 'netpass', 'pause-before-switchover']));
  await dst.qmp.ok('migrate-set-capabilities', caps(['events', 'return-path', 'netpass']));
  assert.is((await n.ping(3, 0.05, 1)).received, 3, 'the client knows the guest MAC before the guest stops');
  await src.qmp.ok('migrate', { uri });
  await waitStatus(src.qmp, ['pre-switchover']);
  const udp = await n.udp('send', 9, 1000, 300);
  const cachedInfo = await src.qmp.ok<MigInfo>('query-migrate');
  assert.ok(cachedInfo.netpass!.cached >= 290, `cached ${cachedInfo.netpass!.cached} while paused`);
  await src.qmp.ok('migrate_cancel');
  await waitStatus(src.qmp, ['cancelled']);
  assert.is((await src.qmp.ok<{ status: string }>('query-status')).status, 'running');
  const sink = (await src.qmp.ok<GuestInfo>('x-query-guest-net')).udp.find((u) => u.port === 9)!;
  assert.equal({ received: sink.received, missing: sink.missing }, { received: udp.sent, missing: 0 });
}));

ptest('netpass needs the return path, and refuses a vhost=on netdev', () => withNet(async (n) => {
  const src = await n.startVm('src', ['-netdev', 'tap,id=n0,ifname=tap0,script=no,downscript=no,vhost=on',
    '-device', 'virtio-net-pci,netdev=n0', '-guest', GUEST, '-m', '16M']);
  const noRp = await src.qmp.execute('migrate-set-capabilities', caps(['netpass']));
  assert.match((noRp.error as { desc: string }).desc, /netpass requires capability return-path/);
  await src.qmp.ok('migrate-set-capabilities', caps(['return-path', 'netpass']));
  const vhost = await src.qmp.execute('migrate', { uri: `unix:${join(n.dir, 'x.sock')}` });
  assert.match((vhost.error as { desc: string }).desc, /vhost=on/);
  assert.ok((await src.qmp.ok<Array<{ capability: string }>>('query-migrate-capabilities')).some((c) => c.capability === 'netpass'));
}));

test.run();
