// Local migration on real networking: the destination takes over the source's open TAP fds
// over the UNIX channel (SCM_RIGHTS), so no second TAP and no network switch is needed, and
// the frames that queue in the kernel while the guest is paused are read by the destination.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { requirePrivilege } from '../../fixtures/privilege.js';
import { guestUdp, qmpError, setCaps, waitStatus } from './qmp-steps.js';
import { GUEST_IP, GUEST_MAC, TestNet, UDP_TOOL, withNet, type VmOptions } from './testnet.js';

const privileged = requirePrivilege('engine local-migration tests');
const ptest = privileged ? test : test.skip;

const GUEST = { ip: `${GUEST_IP}/24`, dirtyRate: 1000 };

function srcVm(n: TestNet, queues: number): VmOptions {
  return { nic: { ifname: n.tap0, queues, mac: GUEST_MAC, localMigration: true }, guest: GUEST, memMB: 32 };
}
function dstVm(queues: number, uri: string, mac = GUEST_MAC): VmOptions {
  return { nic: { incomingFds: true, queues, mac, localMigration: true }, guest: GUEST, memMB: 32, incoming: uri };
}

async function localMigration(queues: number): Promise<void> {
  await withNet(queues, async (n) => {
    const uri = `unix:${join(n.dir, 'mig.sock')}`;
    const src = await n.startVm('src', srcVm(n, queues));
    const dst = await n.startVm('dst', { ...dstVm(queues, uri), paused: true });
    for (const q of [src.qmp, dst.qmp]) {
      await setCaps(q, ['events', 'return-path']);
      await q.execute('migrate-set-parameters', { local: true });
    }
    const ping = n.ping(1500, 0.001, 1);
    const udp = n.inClient([process.execPath, UDP_TOOL, 'send', GUEST_IP, '9', '1000', '1500']);
    await new Promise((r) => setTimeout(r, 400));
    await src.qmp.execute('migrate', { uri });
    const info = await waitStatus(src.qmp, ['completed', 'failed']);
    assert.is(info.status, 'completed', JSON.stringify(info));
    await waitStatus(dst.qmp, ['completed']);
    // The guest stays paused 200 ms: its frames wait in the TAP's kernel queue, for the destination.
    await new Promise((r) => setTimeout(r, 200));
    await dst.qmp.execute('cont');
    const p = await ping;
    const sent = (JSON.parse((await udp).stdout) as { sent: number }).sent;
    await new Promise((r) => setTimeout(r, 300));
    assert.is(p.received, p.sent, `ping: ${p.out}`);
    const sink = await guestUdp(dst.qmp);
    assert.equal({ received: sink.received, missing: sink.missing }, { received: sent, missing: 0 });
    assert.is((await src.qmp.execute('query-status')).status, 'postmigrate');
    // The source can go: the destination holds its own references to the TAP queues.
    await src.qmp.execute('quit');
    await src.exited;
    assert.is((await n.ping(20, 0.01, 1)).received, 20);
  });
}

ptest('local migration hands the TAP fd over; nothing is lost, even with the destination paused 200 ms', () => localMigration(1));

ptest('a 4-queue TAP moves all four fds', () => localMigration(4));

ptest('a destination that is not set up for local migration fails with a message; the source runs on its TAP', () => withNet(1, async (n) => {
  const uri = `unix:${join(n.dir, 'mig.sock')}`;
  const src = await n.startVm('src', srcVm(n, 1));
  const dst = await n.startVm('dst', n.guestOn(n.tap1, { guest: { dirtyRate: 1000 }, memMB: 32, incoming: uri }));
  await src.qmp.execute('migrate-set-parameters', { local: true });
  await src.qmp.execute('migrate', { uri });
  const info = await waitStatus(src.qmp, ['failed']);
  assert.ok(info['error-desc']);
  assert.is(await dst.exited, 1);
  assert.match(dst.stderr(), /the source migrates locally \(passes TAP fds\) but this destination does not have local enabled/);
  assert.is((await src.qmp.execute('query-status')).status, 'running');
  assert.is((await n.ping(10, 0.05, 1)).received, 10);
}));

ptest('a failure after the fds were passed: the destination closes its copies, the source resumes on the same TAP', () => withNet(1, async (n) => {
  const uri = `unix:${join(n.dir, 'mig.sock')}`;
  const src = await n.startVm('src', srcVm(n, 1));
  // A different MAC makes the device state, which follows the fds, fail to load.
  const dst = await n.startVm('dst', dstVm(1, uri, '52:54:00:00:00:99'));
  for (const q of [src.qmp, dst.qmp]) await q.execute('migrate-set-parameters', { local: true });
  await setCaps(src.qmp, ['return-path']);
  await src.qmp.execute('migrate', { uri });
  const info = await waitStatus(src.qmp, ['failed']);
  assert.match(info['error-desc'] ?? '', /MAC/);
  assert.is(await dst.exited, 1);
  assert.match(dst.stderr(), /source NIC MAC 52:54:00:12:34:56 differs/);
  assert.is((await src.qmp.execute('query-status')).status, 'running');
  assert.is((await n.ping(20, 0.01, 1)).received, 20, 'the source answers on its own TAP fd');
}));

ptest('local with a tcp: URI is refused before anything happens', () => withNet(1, async (n) => {
  const src = await n.startVm('src', srcVm(n, 1));
  await src.qmp.execute('migrate-set-parameters', { local: true });
  const r = await qmpError(src.qmp.execute('migrate', { uri: 'tcp:127.0.0.1:4444' }));
  assert.is(r.desc, 'Migration requires a UNIX domain socket as transport, because local is enabled');
  assert.equal(await src.qmp.execute('query-migrate'), {});
  assert.is((await src.qmp.execute('query-status')).status, 'running');
}));

test.run();
