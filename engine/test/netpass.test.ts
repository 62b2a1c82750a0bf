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
import { GUEST_IP, GUEST_MAC, TestNet, UDP_TOOL, withNet, type UdpToolResult, type VmOptions, type VmProc } from './testnet.js';

const privileged = requirePrivilege('engine netpass tests');
const ptest = privileged ? test : test.skip;

const VM: VmOptions = { guest: { dirtyRate: 1000 }, memMB: 32 };

/**
 * Migrates src -> a `-S` destination under a UDP stream (to the sink, or to the echo port with
 * `echo`); `cont` 300 ms after completion.
 */
async function migrateUnderUdp(n: TestNet, netpass: boolean, params: MigrationParameters = {}, o: { echo?: boolean; rate?: number; staticNeigh?: boolean } = {}): Promise<{ src: VmProc; dst: VmProc; sent: number; udp: UdpToolResult }> {
  const uri = `unix:${join(n.dir, 'mig.sock')}`;
  const src = await n.startVm('src', n.guestOn(n.tap0, VM));
  // A permanent neighbour entry: the client never ARPs, so a guest on the sink sends nothing.
  // The guest answers a few pings first, so the bridge has learnt its port; before the
  // destination opens its TAP, so none of them waits in that TAP's queue.
  if (o.staticNeigh) {
    await n.inClient(['ip', 'neigh', 'replace', GUEST_IP, 'lladdr', GUEST_MAC, 'dev', n.topo.clientIface, 'nud', 'permanent']);
    assert.is((await n.ping(3, 0.05, 1)).received, 3);
  }
  const dst = await n.startVm('dst', n.guestOn(n.tap1, { ...VM, incoming: uri, paused: true }));
  const c: MigrationCapabilityName[] = ['events', 'return-path', ...(netpass ? ['netpass' as const] : [])];
  for (const q of [src.qmp, dst.qmp]) await setCaps(q, c);
  if (Object.keys(params).length) await src.qmp.execute('migrate-set-parameters', params);
  const rate = o.rate ?? 2000;
  const udp = n.inClient([process.execPath, UDP_TOOL, o.echo ? 'echo' : 'send', GUEST_IP, o.echo ? '7' : '9', String(rate), String(rate * 2)]);
  await new Promise((r) => setTimeout(r, 500));
  await src.qmp.execute('migrate', { uri });
  await waitStatus(dst.qmp, ['completed']);
  await new Promise((r) => setTimeout(r, 300));
  await dst.qmp.execute('cont');
  const out = await udp;
  await new Promise((r) => setTimeout(r, 500));
  const result = JSON.parse(out.stdout) as UdpToolResult;
  return { src, dst, sent: result.sent, udp: result };
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

// The variants of issue 17 (engine/migration/STREAM.md "netpass variants"). Orders are checked
// where they are decided: the destination guest's own sequence counters (port 9), or the
// client's count of echoes that came after a higher seq (port 7).

ptest('x-netpass-order=backlog-first: the destination guest gets the whole backlog before any newer frame', () => withNet(1, async (n) => {
  const { src, dst, sent } = await migrateUnderUdp(n, true, { 'x-netpass-order': 'backlog-first' }, { rate: 4000 });
  const mig = await src.qmp.execute('query-migrate');
  assert.ok(mig.netpass!.cached > 500, `cached ${mig.netpass!.cached}`);
  const sink = await guestUdp(dst.qmp);
  assert.equal({ received: sink.received, missing: sink.missing, reordered: sink.reordered }, { received: sent, missing: 0, reordered: 0 });
  const held = (await dst.qmp.execute('query-migrate'))['x-netpass-held']!;
  assert.ok(held.rx.held > 0, `frames of the destination's own TAP were held: ${JSON.stringify(held.rx)}`);
}));

ptest('x-netpass-trigger=first-tx: forwarding waits for the guest\'s first frame, whose frames leave after the backlog', () => withNet(1, async (n) => {
  const { src, dst, udp } = await migrateUnderUdp(n, true, { 'x-netpass-trigger': 'first-tx' }, { echo: true, rate: 1000 });
  const mig = await src.qmp.execute('query-migrate');
  assert.ok(mig.netpass!.cached > 150, `cached ${mig.netpass!.cached}`);
  assert.is(mig.netpass!.forwarded, mig.netpass!.cached);
  assert.is(udp.unique, udp.sent, 'every echo came back');
  assert.not.match(src.stderr(), /sent nothing within/, 'forwarding started on NETPASS_GO, not on the fallback');
  const held = (await dst.qmp.execute('query-migrate'))['x-netpass-held']!;
  assert.ok(held.tx.held > 0 && held.tx.dropped === 0, `the guest's frames were held: ${JSON.stringify(held.tx)}`);
  assert.is(held.rx.held, 0, 'as-series order: nothing received was held');
  assert.not.match(dst.stderr(), /releasing the/, 'the hold ended with the end marker, not on its timer');
}));

ptest('x-netpass-trigger=first-tx, a guest that sends nothing: the source forwards after its wait and says so', () => withNet(1, async (n) => {
  const { src, dst, sent } = await migrateUnderUdp(n, true, { 'x-netpass-trigger': 'first-tx' }, { staticNeigh: true });
  assert.match(src.stderr(), /the destination guest sent nothing within 1000 ms of VM_STARTED \(x-netpass-trigger=first-tx\); forwarding the cache now/);
  const sink = await guestUdp(dst.qmp);
  assert.equal({ received: sink.received, missing: sink.missing }, { received: sent, missing: 0 });
  const g = await dst.qmp.execute('x-query-guest-net');
  assert.ok(g['netpass-injected']!['max-delay-ms'] >= 1300, `the backlog came after cont (300 ms) + the wait (1000 ms): ${g['netpass-injected']!['max-delay-ms']} ms`);
}));

ptest('x-netpass-max-age-ms: frames older than the limit are not forwarded, and exactly those are missing in the guest', () => withNet(1, async (n) => {
  const { src, dst, sent } = await migrateUnderUdp(n, true, { 'x-netpass-max-age-ms': 150 });
  const np = (await src.qmp.execute('query-migrate')).netpass!;
  assert.ok((np['x-expired'] ?? 0) > 100, `expired ${np['x-expired']}: a 300 ms late cont leaves frames older than 150 ms`);
  assert.is(np.forwarded + np['x-expired']!, np.cached, 'each cached frame is forwarded or expired');
  // The cache also holds the window's other frames (the client's ARP), so a few expired frames
  // may not be datagrams; every missing datagram is an expired frame.
  const sink = await guestUdp(dst.qmp);
  assert.is(sink.received + sink.missing, sent);
  assert.ok(sink.missing <= np['x-expired']! && sink.missing >= np['x-expired']! - 5, `missing ${sink.missing}, expired ${np['x-expired']}`);
  const inj = (await dst.qmp.execute('x-query-guest-net'))['netpass-injected']!;
  // The age is taken when the source forwards, the delay when the destination injects.
  assert.ok(inj['max-delay-ms'] <= 150 + 100, `injected at most ${inj['max-delay-ms']} ms late`);
}));

ptest('the netpass variants are parameters with QEMU-style checks', () => withNet(1, async (n) => {
  const src = await n.startVm('src', n.guestOn(n.tap0, VM));
  const p = await src.qmp.execute('query-migrate-parameters');
  assert.equal([p['x-netpass-trigger'], p['x-netpass-order'], p['x-netpass-max-age-ms']], ['vm-started', 'as-series', 0]);
  const bad = await qmpError(src.qmp.execute('migrate-set-parameters', { 'x-netpass-order': 'newest-first' as never }));
  assert.match(bad.desc, /Parameter 'x-netpass-order' does not accept value 'newest-first'/);
  const age = await qmpError(src.qmp.execute('migrate-set-parameters', { 'x-netpass-max-age-ms': -1 }));
  assert.match(age.desc, /x-netpass-max-age-ms' expects an integer in the range of 0 to 60000/);
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
