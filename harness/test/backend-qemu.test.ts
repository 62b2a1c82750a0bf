// The real-QEMU backend end to end: build the guest from Debian packages, boot it on tap0
// of a bridge topology, ping it from the client netns, migrate it to a `-incoming defer -S`
// target on tap1 over a UNIX socket, `cont`, and ping again. Plus what `probe()` says about
// the installed QEMU, and the command lines the launcher builds.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { requirePrivilege } from '../../fixtures/privilege.js';
import { ensureGuest } from '../../fixtures/guest/recipe.js';
import { qemuArgv, qemuBackend, unsupportedFor, type QemuBackend, type QemuVmHandle } from '../backend-qemu.js';
import { createTopology, type Topology } from '../topology.js';
import type { BackendFeatures, VmSpec } from '../types.js';

const MAC = '52:54:00:12:34:56';

function spec(over: Partial<VmSpec> & Pick<VmSpec, 'name' | 'netns' | 'runDir' | 'tap'>): VmSpec {
  return { mac: MAC, ip: '192.168.100.2/24', memMB: 128, dirtyRate: 0, ...over };
}

async function ping(topo: Topology, count: number): Promise<number> {
  const r = await topo.exec('client', ['ping', '-c', String(count), '-i', '0.2', '-W', '2', topo.guestIp], { allowFail: true, timeoutMs: 30_000 });
  return Number(/(\d+) received/.exec(r.stdout)?.[1] ?? 0);
}

test('the guest recipe orders the virtio modules by dependency', async () => {
  const guest = await ensureGuest();
  const at = (m: string) => guest.modules.indexOf(m);
  for (const m of ['virtio_ring', 'virtio', 'virtio_pci', 'failover', 'net_failover', 'virtio_net']) assert.ok(at(m) >= 0, `${m} in ${guest.modules}`);
  assert.ok(at('virtio_ring') < at('virtio'), 'virtio_ring before virtio');
  assert.ok(at('virtio') < at('virtio_pci') && at('virtio') < at('virtio_net'));
  assert.ok(at('failover') < at('net_failover') && at('net_failover') < at('virtio_net'));
  assert.match(guest.cmdline({ ip: '10.0.0.2/24', mac: MAC, gw: '10.0.0.1' }), /switchover\.ip=10\.0\.0\.2\/24 switchover\.mac=52:54:00:12:34:56 switchover\.gw=10\.0\.0\.1/);
});

test('the target is started -S with -incoming defer, multi-queue gets mq and 2N+2 vectors', async () => {
  const guest = await ensureGuest();
  const argv = qemuArgv(spec({
    name: 'dst', netns: 'ns', runDir: '/run/x', tap: { ifname: 'tap1', queues: 4, vhost: true },
    incoming: 'defer', paused: true,
  }), { binary: 'qemu-system-x86_64', accel: 'tcg', guest });
  const after = (flag: string) => argv[argv.indexOf(flag) + 1];
  assert.ok(argv.includes('-S'));
  assert.is(after('-incoming'), 'defer');
  assert.is(after('-accel'), 'tcg');
  assert.is(after('-netdev'), 'tap,id=n0,ifname=tap1,script=no,downscript=no,queues=4,vhost=on');
  assert.is(after('-device'), `virtio-net-pci,id=nic0,netdev=n0,addr=0x2,mac=${MAC},romfile=,mq=on,vectors=10`);
  assert.is(after('-serial'), `file:${join('/run/x', 'dst.console.log')}`);
  assert.is(after('-qmp'), `unix:${join('/run/x', 'dst.qmp')},server=on,wait=off`);
});

test('with passed TAP fds the NIC is left to QMP and QEMU starts -S', async () => {
  const guest = await ensureGuest();
  const argv = qemuArgv(spec({ name: 'src', netns: 'ns', runDir: '/run/x', tap: { ifname: 'tap0', queues: 1, vhost: false } }),
    { binary: 'qemu-system-x86_64', accel: 'tcg', guest, passTapFds: true });
  assert.not.ok(argv.includes('-netdev'));
  assert.not.ok(argv.includes('-device'));
  assert.ok(argv.includes('-S'));
});

test('unsupportedFor names every missing item', () => {
  const f: BackendFeatures = {
    accelerator: 'tcg', version: '7.2.22', capabilities: ['events', 'return-path'], parameters: ['downtime-limit'],
    incomingFds: false, vhost: false, guestUdpSend: false,
  };
  assert.is(unsupportedFor(f, { capabilities: ['return-path'] }), undefined);
  assert.is(unsupportedFor(f, undefined), undefined);
  assert.is(unsupportedFor(f, { capabilities: ['netpass'] }), "qemu-system-x86_64 7.2.22 lacks migration capability 'netpass'");
  assert.is(unsupportedFor(f, { local: true }), "qemu-system-x86_64 7.2.22 lacks migration parameter 'local', tap option 'incoming-fds'");
  assert.match(unsupportedFor({ ...f, parameters: ['local'], incomingFds: true }, { vhost: true }) ?? '', /vhost-net/);
  assert.match(unsupportedFor(f, { udpTraffic: true }) ?? '', /lacks a guest UDP echo\/sink/);
  assert.is(unsupportedFor({ ...f, guestUdpSend: true }, { udpTraffic: true }), undefined);
});

test("probe() asks the installed QEMU; Debian's 7.2 lacks netpass, local and incoming-fds", async () => {
  const features = await qemuBackend().probe();
  assert.ok(features.capabilities.includes('return-path'), `capabilities: ${features.capabilities}`);
  assert.ok(features.parameters.includes('downtime-limit'), `parameters: ${features.parameters}`);
  assert.ok(features.accelerator === 'kvm' || features.accelerator === 'tcg');
  if (!features.version.startsWith('7.2.')) return; // another build: only the shape above is known
  assert.not.ok(features.capabilities.includes('netpass'));
  assert.not.ok(features.parameters.includes('local'));
  assert.not.ok(features.incomingFds);
  assert.is(unsupportedFor(features, { capabilities: ['netpass'] }), `qemu-system-x86_64 ${features.version} lacks migration capability 'netpass'`);
  assert.match(unsupportedFor(features, { local: true }) ?? '', /lacks migration parameter 'local', tap option 'incoming-fds'/);
});

/** Boot on tap0, ping, migrate to a `-incoming defer -S` target on tap1, `cont`, ping. */
async function migrateUnderPing(srcBackend: QemuBackend, dstBackend: QemuBackend): Promise<void> {
  const topo = await createTopology({ layout: 'bridge', queues: 1 });
  const vms: QemuVmHandle[] = [];
  try {
    const src = await srcBackend.launch(spec({ name: 'src', netns: topo.hostNs, runDir: topo.runDir, tap: { ifname: topo.tap0, queues: 1, vhost: false } }));
    vms.push(src);
    assert.is(await ping(topo, 3), 3, 'ping before migration');

    const dst = await dstBackend.launch(spec({
      name: 'dst', netns: topo.hostNs, runDir: topo.runDir, tap: { ifname: topo.tap1, queues: 1, vhost: false },
      incoming: 'defer', paused: true,
    }));
    vms.push(dst);
    const uri = `unix:${join(topo.runDir, 'migrate.sock')}`;
    for (const vm of [src, dst]) await vm.qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
    await dst.qmp.execute('migrate-incoming', { uri });
    const completed = src.qmp.waitEvent('MIGRATION', (d) => d.status === 'completed' || d.status === 'failed', 180_000);
    await src.qmp.execute('migrate', { uri });
    assert.is((await completed).data.status, 'completed');
    const dstDone = await dst.qmp.waitEvent('MIGRATION', (d) => d.status === 'completed' || d.status === 'failed', 60_000, 0);
    assert.is(dstDone.data.status, 'completed');
    assert.is((await src.qmp.execute('query-status')).status, 'postmigrate');
    await dst.qmp.execute('cont');
    assert.is((await dst.qmp.execute('query-status')).status, 'running');
    assert.is(await ping(topo, 3), 3, 'ping after migration');
  } finally {
    for (const vm of vms) await vm.kill();
    await topo.teardown();
  }
  await topo.verifyClean();
}

if (requirePrivilege('the real-QEMU migration test (netns, TAP)')) {
  test('a real guest answers ping before and after migrating from tap0 to tap1', async () => {
    await migrateUnderPing(qemuBackend(), qemuBackend());
  });

  test('a source given its TAP fd over QMP (getfd) migrates to a target that opened tap1 by name', async () => {
    await migrateUnderPing(qemuBackend({ passTapFds: true }), qemuBackend());
  });

  test('a two-queue NIC given its TAP fds over QMP answers ping', async () => {
    const topo = await createTopology({ layout: 'bridge', queues: 2 });
    try {
      const vm = await qemuBackend({ passTapFds: true }).launch(spec({ name: 'mq', netns: topo.hostNs, runDir: topo.runDir, tap: { ifname: topo.tap0, queues: 2, vhost: false } }));
      try {
        assert.is(await ping(topo, 3), 3);
      } finally {
        await vm.shutdown();
      }
    } finally {
      await topo.teardown();
    }
    await topo.verifyClean();
  });
}

test.run();
