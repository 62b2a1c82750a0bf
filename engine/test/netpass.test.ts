// netpass on real networking (bridge layout, tap0 -> tap1): frames that reach the stopped
// source are cached and, after VM_STARTED, delivered by the destination; a failed switchover
// hands them to the source's own guest. A `-S` destination resumed 300 ms late makes the
// switchover window long enough that every run has frames in it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { requirePrivilege } from '../../fixtures/privilege.js';
import type { MigrationCapabilityName, MigrationParameters } from '../../lib/qmp-protocol.js';
import { guestUdp, qmpError, setCaps, waitStatus } from './qmp-steps.js';
import { GUEST_IP, TestNet, UDP_TOOL, withNet, type VmOptions, type VmProc } from './testnet.js';

const privileged = requirePrivilege('engine netpass tests');
const ptest = privileged ? test : test.skip;

const VM: VmOptions = { guest: { dirtyRate: 1000 }, memMB: 32 };

/** Migrates src -> a `-S` destination under a UDP stream to the sink; `cont` 300 ms after completion. */
async function migrateUnderUdp(n: TestNet, netpass: boolean, params: MigrationParameters = {}): Promise<{ src: VmProc; dst: VmProc; sent: number }> {
  const uri = `unix:${join(n.dir, 'mig.sock')}`;
  const src = await n.startVm('src', n.guestOn(n.tap0, VM));
  const dst = await n.startVm('dst', n.guestOn(n.tap1, { ...VM, incoming: uri, paused: true }));
  const c: MigrationCapabilityName[] = ['events', 'return-path', ...(netpass ? ['netpass' as const] : [])];
  for (const q of [src.qmp, dst.qmp]) await setCaps(q, c);
  if (Object.keys(params).length) await src.qmp.execute('migrate-set-parameters', params);
  const udp = n.inClient([process.execPath, UDP_TOOL, 'send', GUEST_IP, '9', '2000', '4000']);
  await new Promise((r) => setTimeout(r, 500));
  await src.qmp.execute('migrate', { uri });
  await waitStatus(dst.qmp, ['completed']);
  await new Promise((r) => setTimeout(r, 300));
  await dst.qmp.execute('cont');
  const out = await udp;
  await new Promise((r) => setTimeout(r, 500));
  return { src, dst, sent: (JSON.parse(out.stdout) as { sent: number }).sent };
}

ptest('netpass on: frames of the switchover window are cached, forwarded and counted by the destination guest', () => withNet(1, async (n) => {
  const { src, dst, sent } = await migrateUnderUdp(n, true);
  const mig = await src.qmp.execute('query-migrate');
  assert.is(mig.status, 'completed');
  assert.ok(mig.netpass!.cached > 0, `cached ${mig.netpass!.cached}`);
  assert.is(mig.netpass!.forwarded, mig.netpass!.cached);
  assert.is(mig.netpass!.dropped, 0);
  const g = await dst.qmp.execute('x-query-guest-net');
  const sink = g.udp.find((u) => u.port === 9)!;
  assert.equal({ received: sink.received, missing: sink.missing }, { received: sent, missing: 0 });
  assert.ok(g['netpass-injected']!.frames >= mig.netpass!.cached - 5, 'injected frames are reported');
  assert.ok(g['netpass-injected']!['max-delay-ms'] >= 300, 'and how late they were');
}));

ptest('netpass off: the same switchover loses the frames that reached the stopped source', () => withNet(1, async (n) => {
  const { dst, sent } = await migrateUnderUdp(n, false);
  const sink = await guestUdp(dst.qmp);
  assert.ok(sink.missing > 0 && sink.received < sent, `received ${sink.received} of ${sent}`);
}));

ptest('a full cache drops the newest frames and counts them', () => withNet(1, async (n) => {
  const { src } = await migrateUnderUdp(n, true, { 'netpass-max-packets': 20 });
  const mig = await src.qmp.execute('query-migrate');
  // The bound is on frames held at once: 20 fill it while the destination waits for `cont`,
  // the rest of that window is dropped; after VM_STARTED draining makes room again.
  assert.ok(mig.netpass!.cached >= 20, `cached ${mig.netpass!.cached}`);
  assert.ok(mig.netpass!.dropped > 100, `dropped ${mig.netpass!.dropped}`);
  assert.is(mig.netpass!.forwarded, mig.netpass!.cached);
}));

ptest('cancel after caching: the source resumes and its own guest gets the cached frames', () => withNet(1, async (n) => {
  const uri = `unix:${join(n.dir, 'mig.sock')}`;
  const src = await n.startVm('src', n.guestOn(n.tap0, VM));
  const dst = await n.startVm('dst', n.guestOn(n.tap1, { ...VM, incoming: uri }));
  await setCaps(src.qmp, ['events', 'return-path', 'netpass', 'pause-before-switchover']);
  await setCaps(dst.qmp, ['events', 'return-path', 'netpass']);
  assert.is((await n.ping(3, 0.05, 1)).received, 3, 'the client knows the guest MAC before the guest stops');
  await src.qmp.execute('migrate', { uri });
  await waitStatus(src.qmp, ['pre-switchover']);
  const udp = await n.udp('send', 9, 1000, 300);
  const cachedInfo = await src.qmp.execute('query-migrate');
  assert.ok(cachedInfo.netpass!.cached >= 290, `cached ${cachedInfo.netpass!.cached} while paused`);
  await src.qmp.execute('migrate_cancel');
  await waitStatus(src.qmp, ['cancelled']);
  assert.is((await src.qmp.execute('query-status')).status, 'running');
  const sink = await guestUdp(src.qmp);
  assert.equal({ received: sink.received, missing: sink.missing }, { received: udp.sent, missing: 0 });
}));

ptest('netpass needs the return path, and refuses a vhost=on netdev', () => withNet(1, async (n) => {
  const src = await n.startVm('src', { nic: { ifname: n.tap0, vhost: true }, guest: { ip: `${GUEST_IP}/24`, dirtyRate: 1000 }, memMB: 16 });
  const noRp = await qmpError(setCaps(src.qmp, ['netpass']));
  assert.match(noRp.desc, /netpass requires capability return-path/);
  await setCaps(src.qmp, ['return-path', 'netpass']);
  const vhost = await qmpError(src.qmp.execute('migrate', { uri: `unix:${join(n.dir, 'x.sock')}` }));
  assert.match(vhost.desc, /vhost=on/);
  assert.ok((await src.qmp.execute('query-migrate-capabilities')).some((c) => c.capability === 'netpass'));
}));

test.run();
