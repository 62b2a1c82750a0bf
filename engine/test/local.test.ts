// Local migration on real networking: the destination takes over the source's open TAP fds
// over the UNIX channel (SCM_RIGHTS), so no second TAP and no network switch is needed, and
// the frames that queue in the kernel while the guest is paused are read by the destination.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { requirePrivilege } from '../../fixtures/privilege.js';
import type { TestQmp } from './qmp.js';
import { GUEST_IP, GUEST_MAC, TestNet, UDP_TOOL } from './testnet.js';

const privileged = requirePrivilege('engine local-migration tests');
const ptest = privileged ? test : test.skip;

interface MigInfo { status?: string; 'error-desc'?: string }
interface GuestInfo { udp: Array<{ port: number; received: number; missing: number }> }

async function waitStatus(q: TestQmp, want: string[], timeoutMs = 60000): Promise<MigInfo> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = await q.ok<MigInfo>('query-migrate');
    if (info.status && want.includes(info.status)) return info;
    if (Date.now() > deadline) throw new Error(`migration status ${info.status}, wanted ${want.join('|')}`);
    await new Promise((r) => setTimeout(r, 30));
  }
}

const GUEST = `ip=${GUEST_IP}/24,dirty-rate=1000`;
const caps = (names: string[]) => ({ capabilities: names.map((c) => ({ capability: c, state: true })) });

function srcArgs(queues: number): string[] {
  return ['-netdev', `tap,id=n0,ifname=tap0,script=no,downscript=no${queues > 1 ? `,queues=${queues}` : ''}`,
    '-device', `virtio-net-pci,netdev=n0,mac=${GUEST_MAC},local-migration=on`, '-guest', GUEST, '-m', '32M'];
}
function dstArgs(queues: number, uri: string): string[] {
  return ['-netdev', `tap,id=n0,incoming-fds=on,script=no,downscript=no${queues > 1 ? `,queues=${queues}` : ''}`,
    '-device', `virtio-net-pci,netdev=n0,mac=${GUEST_MAC},local-migration=on`, '-guest', GUEST, '-m', '32M', '-incoming', uri];
}

async function localMigration(queues: number): Promise<void> {
  const n = TestNet.create(1, queues > 1);
  try {
    const uri = `unix:${join(n.dir, 'mig.sock')}`;
    const src = await n.startVm('src', srcArgs(queues));
    const dst = await n.startVm('dst', [...dstArgs(queues, uri), '-S']);
    for (const q of [src.qmp, dst.qmp]) {
      await q.ok('migrate-set-capabilities', caps(['events', 'return-path']));
      await q.ok('migrate-set-parameters', { local: true });
    }
    const ping = n.ping(1500, 0.001, 1);
    const udp = n.inClient([process.execPath, UDP_TOOL, 'send', GUEST_IP, '9', '1000', '1500']);
    await new Promise((r) => setTimeout(r, 400));
    await src.qmp.ok('migrate', { uri });
    const info = await waitStatus(src.qmp, ['completed', 'failed']);
    assert.is(info.status, 'completed', JSON.stringify(info));
    await waitStatus(dst.qmp, ['completed']);
    // The guest stays paused 200 ms: its frames wait in the TAP's kernel queue, for the destination.
    await new Promise((r) => setTimeout(r, 200));
    await dst.qmp.ok('cont');
    const p = await ping;
    const sent = (JSON.parse((await udp).stdout) as { sent: number }).sent;
    await new Promise((r) => setTimeout(r, 300));
    assert.is(p.received, p.sent, `ping: ${p.out}`);
    const sink = (await dst.qmp.ok<GuestInfo>('x-query-guest-net')).udp.find((u) => u.port === 9)!;
    assert.equal({ received: sink.received, missing: sink.missing }, { received: sent, missing: 0 });
    assert.is((await src.qmp.ok<{ status: string }>('query-status')).status, 'postmigrate');
    // The source can go: the destination holds its own references to the TAP queues.
    await src.qmp.ok('quit');
    await src.exited;
    assert.is((await n.ping(20, 0.01, 1)).received, 20);
  } finally {
    await n.destroy();
  }
}

ptest('local migration hands the TAP fd over; nothing is lost, even with the destination paused 200 ms', () => localMigration(1));

ptest('a 4-queue TAP moves all four fds', () => localMigration(4));

ptest('a destination that is not set up for local migration fails with a message; the source runs on its TAP', async () => {
  const n = TestNet.create(2);
  try {
    const uri = `unix:${join(n.dir, 'mig.sock')}`;
    const src = await n.startVm('src', srcArgs(1));
    const dst = await n.startVm('dst', [...TestNet.nicArgs('tap1', [], GUEST), '-m', '32M', '-incoming', uri]);
    await src.qmp.ok('migrate-set-parameters', { local: true });
    await src.qmp.ok('migrate', { uri });
    const info = await waitStatus(src.qmp, ['failed']);
    assert.ok(info['error-desc']);
    assert.is(await dst.exited, 1);
    assert.match(dst.stderr(), /the source migrates locally \(passes TAP fds\) but this destination does not have local enabled/);
    assert.is((await src.qmp.ok<{ status: string }>('query-status')).status, 'running');
    assert.is((await n.ping(10, 0.05, 1)).received, 10);
  } finally {
    await n.destroy();
  }
});

ptest('a failure after the fds were passed: the destination closes its copies, the source resumes on the same TAP', async () => {
  const n = TestNet.create(1);
  try {
    const uri = `unix:${join(n.dir, 'mig.sock')}`;
    const src = await n.startVm('src', srcArgs(1));
    // A different MAC makes the device state, which follows the fds, fail to load.
    const dst = await n.startVm('dst', dstArgs(1, uri).map((a) => a.replace(GUEST_MAC, '52:54:00:00:00:99')));
    for (const q of [src.qmp, dst.qmp]) await q.ok('migrate-set-parameters', { local: true });
    await src.qmp.ok('migrate-set-capabilities', caps(['return-path']));
    await src.qmp.ok('migrate', { uri });
    const info = await waitStatus(src.qmp, ['failed']);
    assert.match(info['error-desc'] ?? '', /MAC/);
    assert.is(await dst.exited, 1);
    assert.match(dst.stderr(), /source NIC MAC 52:54:00:12:34:56 differs/);
    assert.is((await src.qmp.ok<{ status: string }>('query-status')).status, 'running');
    assert.is((await n.ping(20, 0.01, 1)).received, 20, 'the source answers on its own TAP fd');
  } finally {
    await n.destroy();
  }
});

ptest('local with a tcp: URI is refused before anything happens', async () => {
  const n = TestNet.create(1);
  try {
    const src = await n.startVm('src', srcArgs(1));
    await src.qmp.ok('migrate-set-parameters', { local: true });
    const r = await src.qmp.execute('migrate', { uri: 'tcp:127.0.0.1:4444' });
    assert.is((r.error as { desc: string }).desc, 'Migration requires a UNIX domain socket as transport, because local is enabled');
    assert.equal(await src.qmp.ok('query-migrate'), {});
    assert.is((await src.qmp.ok<{ status: string }>('query-status')).status, 'running');
  } finally {
    await n.destroy();
  }
});

test.run();
