import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { requirePrivilege } from '../../../fixtures/privilege.js';
import { engineArgs, engineBackend } from '../engine.js';
import { VmLaunchError } from '../process.js';
import { createTopology, withTopology, type Topology } from '../../net/topology.js';
import { startPing } from '../../traffic/ping.js';
import type { VmSpec } from '../../scenario/types.js';

const privileged = requirePrivilege('engine backend tests');

function spec(topo: Topology, over: Partial<VmSpec> & { ifname?: string } = {}): VmSpec {
  const { ifname, ...rest } = over;
  return {
    name: 'src', netns: topo.hostNs, runDir: topo.runDir,
    tap: { ifname: ifname ?? topo.tap0, queues: topo.queues, vhost: false },
    mac: '52:54:00:12:34:56', ip: `${topo.guestIp}/${topo.guestPrefix}`, ...(topo.guestGw ? { gw: topo.guestGw } : {}),
    memMB: 64, dirtyRate: 200, ...rest,
  };
}

test('engineArgs builds the QEMU-shaped command line', () => {
  const s: VmSpec = {
    name: 'dst', netns: 'so-abcdef-h', runDir: '/tmp/switchover-abcdef',
    tap: { ifname: 'soabcdeft1', queues: 4, vhost: true, incomingFds: true }, mac: '52:54:00:12:34:56',
    ip: '192.168.100.2/24', gw: '192.168.100.1', memMB: 256, dirtyRate: 20000, incoming: 'defer', paused: true,
  };
  assert.equal(engineArgs(s), [
    '-name', 'dst', '-m', '256M',
    '-netdev', 'tap,id=n0,script=no,downscript=no,queues=4,vhost=on,incoming-fds=on',
    '-device', 'virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56',
    '-guest', 'ip=192.168.100.2/24,gw=192.168.100.1,dirty-rate=20000',
    '-qmp', 'unix:/tmp/switchover-abcdef/dst.qmp,server=on,wait=off',
    '-incoming', 'defer', '-S',
  ]);
  assert.throws(() => engineArgs({ ...s, tap: { ...s.tap, ifname: 'tap0,script=/bin/evil' } }), /invalid TAP interface name/);
  assert.throws(() => engineArgs({ ...s, name: '$(id)' }), /invalid VM name/);
  assert.throws(() => engineArgs({ ...s, ip: '192.168.100.2/24,fill=1' }), /contains a comma/);
});

test('probe asks a real engine VM for its capabilities and parameters', async () => {
  const f = await engineBackend.probe();
  assert.is(f.accelerator, 'engine');
  for (const c of ['events', 'return-path', 'netpass']) assert.ok(f.capabilities.includes(c), c);
  for (const p of ['downtime-limit', 'announce-rounds', 'local']) assert.ok(f.parameters.includes(p), p);
  assert.is(f.incomingFds, true);
  assert.is(await engineBackend.probe(), f, 'cached');
});

for (const layout of ['bridge', 'routed'] as const) {
  test(`launch in the host netns (${layout}): QMP up, the guest answers ping, shutdown is clean`, async () => {
    if (!privileged) return;
    const topo = await createTopology({ layout, queues: 1 });
    try {
      const vm = await engineBackend.launch(spec(topo));
      assert.is(vm.logPath, join(topo.runDir, 'src.log'));
      assert.is((await vm.qmp.execute('query-status')).status, 'running');
      const p = await startPing(topo, { dst: topo.guestIp, intervalMs: 20, count: 5 }).result;
      assert.is(p.received, 5);
      await vm.shutdown();
      assert.equal(await vm.exited, { code: 0, signal: null });
    } finally {
      await topo.teardown();
    }
    await topo.verifyClean();
  });
}

test('a VM that dies at start is a VmLaunchError quoting its log', async () => {
  if (!privileged) return;
  await withTopology({ layout: 'bridge', queues: 1 }, async (topo) => {
    // A migration URI the engine refuses: it exits before listening on QMP.
    const err = await engineBackend.launch(spec(topo, { incoming: 'bogus:1' })).then(() => undefined, (e: Error) => e);
    assert.instance(err, VmLaunchError, String(err));
    const e = err as VmLaunchError;
    assert.match(e.message, /VM src exited \(code \d+\) before its QMP socket answered/);
    assert.equal(e.command.slice(-2), ['-incoming', 'bogus:1']);
    assert.is(e.exit?.code, 1);
    assert.match(e.logTail, /-incoming bogus:1: unknown migration protocol/);
  });
});

test('kill() ends a VM at once; teardown leaves nothing even with a VM still running', async () => {
  if (!privileged) return;
  const topo = await createTopology({ layout: 'bridge', queues: 2 });
  try {
    const a = await engineBackend.launch(spec(topo));
    await a.kill();
    assert.is((await a.exited).signal, 'SIGKILL');
    await engineBackend.launch(spec(topo, { name: 'dst', ifname: topo.tap1, incoming: 'defer' }));
  } finally {
    await topo.teardown();
  }
  await topo.verifyClean();
});

test('a migration tap0 -> tap1 under ping: QMP events recorded, fdbMonitor sees the guest MAC move', async () => {
  if (!privileged) return;
  await withTopology({ layout: 'bridge', queues: 1 }, async (topo) => {
    const fdb = await topo.fdbMonitor();
    const src = await engineBackend.launch(spec(topo));
    const dst = await engineBackend.launch(spec(topo, { name: 'dst', ifname: topo.tap1, incoming: 'defer' }));
    const uri = `unix:${join(topo.runDir, 'mig.sock')}`;
    for (const vm of [src, dst]) {
      await vm.qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }, { capability: 'return-path', state: true }] });
    }
    await dst.qmp.execute('migrate-incoming', { uri });
    const ping = startPing(topo, { dst: topo.guestIp, intervalMs: 10, count: 60 });
    await new Promise((r) => setTimeout(r, 200));
    const mark = src.qmp.events.length;
    await src.qmp.execute('migrate', { uri });
    const done = await src.qmp.waitEvent('MIGRATION', (d) => d.status === 'completed' || d.status === 'failed', 30_000, mark);
    assert.is(done.data.status, 'completed');
    await dst.qmp.waitEvent('RESUME', undefined, 10_000, 0);
    const p = await ping.result;
    assert.ok(p.received > 0);
    await new Promise((r) => setTimeout(r, 200));
    await fdb.stop();
    const ports = fdb.moves('52:54:00:12:34:56').filter((m) => !m.deleted).map((m) => m.port);
    assert.equal(ports.slice(0, 1), [topo.tap0], JSON.stringify(fdb.events));
    assert.ok(ports.includes(topo.tap1), JSON.stringify(fdb.events));
    const stop = src.qmp.events.find((e) => e.event === 'STOP');
    assert.ok(stop && stop.receivedAt > 1.6e12 && stop.timestamp.seconds > 1.6e9);
    await src.shutdown();
    await dst.shutdown();
  });
});

test.run();
