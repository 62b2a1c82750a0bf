import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { requirePrivilege } from '../../../fixtures/privilege.js';
import { createTopology, leftovers, parseFdbLine, withTopology, type Topology } from '../topology.js';
import type { RunNames } from '../names.js';

const privileged = requirePrivilege('topology tests');

async function ok(topo: Topology, ns: 'host' | 'client', argv: string[]): Promise<string> {
  return (await topo.exec(ns, argv)).stdout;
}

test('parseFdbLine reads bridge monitor/show lines of the bridge only', () => {
  assert.equal(parseFdbLine('52:54:00:12:34:56 dev tap0 master br0 ', 5, 'br0'), { t: 5, mac: '52:54:00:12:34:56', port: 'tap0', deleted: false });
  assert.equal(parseFdbLine('Deleted 52:54:00:12:34:56 dev tap1 vlan 1 master br0 stale', 6, 'br0'), { t: 6, mac: '52:54:00:12:34:56', port: 'tap1', deleted: true });
  assert.is(parseFdbLine('33:33:00:00:00:01 dev tap0 self permanent', 1, 'br0'), undefined);
  assert.is(parseFdbLine('aa:bb:cc:dd:ee:ff dev tap0 master br0 permanent', 1, 'br0'), undefined);
  assert.is(parseFdbLine('aa:bb:cc:dd:ee:ff dev tap0 master br01', 1, 'br0'), undefined);
});

test('bridge layout: built, pingable through the bridge, torn down clean', async () => {
  if (!privileged) return;
  let topo: Topology | undefined;
  await withTopology({ layout: 'bridge', queues: 4 }, async (t) => {
    topo = t;
    assert.is(statSync(t.runDir).mode & 0o777, 0o700);
    const links = await ok(t, 'host', ['ip', '-d', '-o', 'link', 'show']);
    for (const tap of [t.tap0, t.tap1]) assert.match(links, new RegExp(`${tap}:.*master ${t.bridge}`));
    assert.match(await ok(t, 'host', ['ip', '-d', 'link', 'show', t.tap0]), /multi_queue/);
    assert.match(await ok(t, 'client', ['ip', '-o', 'addr', 'show', 'dev', t.clientIface]), /192\.168\.100\.1\/24/);
    assert.is(t.clientIp, '192.168.100.1');
    assert.is(t.guestGw, undefined);
    // Stand in for the guest: its address on the bridge itself.
    await ok(t, 'host', ['ip', 'addr', 'add', `${t.guestIp}/24`, 'dev', t.bridge!]);
    const fdb = await t.fdbMonitor();
    assert.match(await ok(t, 'client', ['ping', '-c', '2', '-i', '0.2', '-W', '2', t.guestIp]), /2 received/);
    await fdb.stop();
    const clientMac = (await ok(t, 'client', ['cat', `/sys/class/net/${t.clientIface}/address`])).trim();
    const moves = fdb.moves(clientMac);
    assert.ok(moves.length >= 1, `client MAC ${clientMac} learned: ${JSON.stringify(fdb.events)}`);
    assert.is(moves[0]!.port, t.names.vethHost);
  });
  await topo!.verifyClean();
  assert.not.ok(existsSync(topo!.runDir));
});

test('routed layout: host address routes for the client, switchover moves IP and MAC to tap1', async () => {
  if (!privileged) return;
  const t = await createTopology({ layout: 'routed', queues: 1 });
  try {
    assert.is(t.clientIp, '192.168.200.1');
    assert.is(t.guestIp, '192.168.100.2');
    assert.is(t.guestGw, '192.168.100.1');
    assert.not.match(await ok(t, 'host', ['ip', '-d', 'link', 'show', t.tap0]), /multi_queue/);
    assert.match(await ok(t, 'host', ['ip', '-o', 'addr', 'show', 'dev', t.tap0]), /192\.168\.100\.1\/24/);
    assert.match(await ok(t, 'client', ['ping', '-c', '1', '-W', '2', t.hostIp!]), /1 received/);
    assert.match(await ok(t, 'client', ['ip', 'route', 'get', t.guestIp]), /via 192\.168\.200\.254/);
    await t.switchover();
    assert.is(t.activeTap, t.tap1);
    assert.match(await ok(t, 'host', ['ip', '-o', 'addr', 'show', 'dev', t.tap1]), /192\.168\.100\.1\/24/);
    assert.not.match(await ok(t, 'host', ['ip', '-o', 'addr', 'show', 'dev', t.tap0]), /192\.168\.100\.1/);
    assert.is((await ok(t, 'host', ['cat', `/sys/class/net/${t.tap1}/address`])).trim(), t.hostMac);
    assert.match(await ok(t, 'host', ['ip', 'route', 'get', t.guestIp]), new RegExp(`dev ${t.tap1}`));
    assert.match(await ok(t, 'client', ['ping', '-c', '1', '-W', '2', t.hostIp!]), /1 received/);
  } finally {
    await t.teardown();
    await t.teardown(); // idempotent
  }
  await t.verifyClean();
});

test('a process started behind the topology\'s back is found by its netns, and teardown ends it', async () => {
  if (!privileged) return;
  const t = await createTopology({ layout: 'bridge', queues: 1 });
  let stray: ReturnType<typeof spawn> | undefined;
  try {
    stray = spawn('ip', ['netns', 'exec', t.clientNs, 'sleep', '30'], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 300));
    const left = await leftovers(t.names, t.runDir, t.netnsInodes);
    assert.ok(left.some((l) => l.startsWith(`process ${stray!.pid}: sleep 30`)), left.join('\n'));
  } finally {
    await t.teardown();
  }
  // verifyClean looks up processes by the namespaces' inodes too, so this proves the stray is gone.
  await t.verifyClean();
});

test('fdbMonitor is refused on the routed layout', async () => {
  if (!privileged) return;
  await withTopology({ layout: 'routed', queues: 1 }, async (t) => {
    await t.fdbMonitor().then(() => assert.unreachable('should refuse'), (e: Error) => assert.match(e.message, /bridge layout/));
  });
});

const endings = [
  { layout: 'bridge', how: 'SIGINT', code: 130, full: false },
  { layout: 'routed', how: 'SIGINT', code: 130, full: false },
  { layout: 'bridge', how: 'SIGTERM', code: 143, full: false },
  { layout: 'routed', how: 'crash', code: 1, full: false },
  { layout: 'bridge', how: 'SIGINT', code: 130, full: true },
] as const;
for (const { layout, how, code: expected, full } of endings) {
  const what = full ? ' with a VM, two tcpdumps and ping running' : '';
  test(`${how} mid-run (${layout})${what} tears everything down and exits ${expected}`, async () => {
    if (!privileged) return;
    const mode = how === 'crash' ? ['crash'] : full ? ['full'] : [];
    const args = [fileURLToPath(new URL('./topology-child.js', import.meta.url)), layout, ...mode];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    const exit = new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    const info = await new Promise<{ names: RunNames; runDir: string; inodes: number[] }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`child printed no names in 20 s: ${out} ${err}`)), 20_000);
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        if (out.includes('\n')) { clearTimeout(timer); resolve(JSON.parse(out.split('\n')[0]!)); }
      });
      void exit.then((c) => { clearTimeout(timer); reject(new Error(`child exited ${c} early: ${out} ${err}`)); });
    });
    if (how !== 'crash') {
      const during = await leftovers(info.names, info.runDir, info.inodes);
      assert.ok(during.length > 0, 'the topology exists mid-run');
      if (full) for (const p of ['tcpdump', 'switchover.js vm', 'ping']) assert.ok(during.some((l) => l.includes(p)), `${p} runs: ${during.join('\n')}`);
      child.kill(how);
    }
    assert.is(await exit, expected, err);
    if (how === 'crash') assert.match(err, /simulated crash/);
    assert.equal(await leftovers(info.names, info.runDir, info.inodes), []);
  });
}

test.run();
