// The engine VM on real networking: a client netns pings and sends UDP to a VM on a TAP in a
// host netns, and drives it over QMP.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { requirePrivilege } from '../../fixtures/privilege.js';
import { TestQmp } from './qmp.js';
import { CLIENT_IP, TestNet, UDP_TOOL, type VmProc } from './testnet.js';

let net: TestNet | undefined;
let vm: VmProc;

const privileged = requirePrivilege('engine VM network tests');

test.before(async () => {
  if (!privileged) return;
  net = TestNet.create(1);
  vm = await net.startVm('vm1', TestNet.nicArgs('tap0', [], `ip=192.168.100.2/24,dirty-rate=1000`));
});

test.after(async () => { await net?.destroy(); });

const ptest = privileged ? test : test.skip;

ptest('the VM runs and answers 1000 pings at 1 ms with none lost', async () => {
  assert.equal(await vm.qmp.ok('query-status'), { running: true, singlestep: false, status: 'running' });
  const r = await net!.ping(1000, 0.001);
  assert.is(r.sent, 1000);
  assert.is(r.received, 1000, r.out);
});

ptest('a UDP stream to the sink is counted exactly, and the echo port answers every datagram', async () => {
  const sent = await net!.udp('send', 9, 2000, 2000);
  assert.is(sent.sent, 2000);
  const echo = await net!.udp('echo', 7, 2000, 1000);
  assert.is(echo.unique, 1000);
  const info = await vm.qmp.ok<{ udp: Array<{ port: number; received: number; missing: number; duplicates: number; reordered: number; 'highest-seq': number }>; 'arp-cache': Array<{ ip: string }> }>('x-query-guest-net');
  const sink = info.udp.find((u) => u.port === 9)!;
  assert.equal({ received: sink.received, missing: sink.missing, duplicates: sink.duplicates, highest: sink['highest-seq'] },
    { received: 2000, missing: 0, duplicates: 0, highest: 1999 });
  const ep = info.udp.find((u) => u.port === 7)!;
  assert.is(ep.received, 1000);
  assert.ok(info['arp-cache'].some((e) => e.ip === CLIENT_IP), 'guest learned the client from ARP');
});

ptest('stop leaves pings unanswered, cont answers them again', async () => {
  await vm.qmp.ok('stop');
  await vm.qmp.waitEvent('STOP');
  assert.is((await vm.qmp.ok<{ status: string }>('query-status')).status, 'paused');
  const paused = await net!.ping(5, 0.2, 1);
  assert.is(paused.received, 0, 'a paused VM answers nothing');
  await vm.qmp.ok('cont');
  await vm.qmp.waitEvent('RESUME');
  const resumed = await net!.ping(5, 0.2, 1);
  assert.is(resumed.received, 5);
});

ptest('malformed QMP gets errors, the connection and the VM go on, several clients at once', async () => {
  const q2 = await TestQmp.connect(vm.qmpPath);
  try {
    q2.sendRaw('{"execute": oops}\n');
    const e1 = await q2.nextUntagged();
    assert.is((e1.error as { class: string }).class, 'GenericError');
    assert.match((e1.error as { desc: string }).desc, /JSON parse error/);
    q2.sendRaw('[1,2]\n');
    assert.match(((await q2.nextUntagged()).error as { desc: string }).desc, /must be a JSON object/);
    const unknown = await q2.execute('no-such-command');
    assert.equal(unknown.error, { class: 'CommandNotFound', desc: 'The command no-such-command has not been found' });
    const badType = await q2.execute('x-guest-udp-send', { dst: 5, port: 9, rate: 1, count: 1 });
    assert.match((badType.error as { desc: string }).desc, /Invalid parameter type for 'dst'/);
    const again = await q2.execute('qmp_capabilities');
    assert.is((again.error as { class: string }).class, 'CommandNotFound');
    q2.sendRaw(`{"execute": "${'x'.repeat(1100 * 1024)}`);
    assert.match(((await q2.nextUntagged()).error as { desc: string }).desc, /longer than 1048576 bytes/);
    q2.sendRaw('"}\n');
    assert.is((await q2.ok<{ status: string }>('query-status')).status, 'running');
    assert.is((await vm.qmp.ok<{ name: string }>('query-name')).name, 'vm1');
    const r = await net!.ping(20, 0.01);
    assert.is(r.received, 20);
  } finally {
    q2.close();
  }
});

ptest('the guest sends a sequenced UDP stream to the client', async () => {
  const recv = net!.spawnInClient([process.execPath, UDP_TOOL, 'recv', '5009', '3000']);
  let out = '';
  recv.stdout!.on('data', (d) => { out += d; });
  await new Promise((r) => setTimeout(r, 500));
  await vm.qmp.ok('x-guest-udp-send', { dst: CLIENT_IP, port: 5009, rate: 500, count: 500 });
  await new Promise<void>((r) => recv.on('close', () => r()));
  const res = JSON.parse(out) as { received: number; unique: number };
  assert.is(res.unique, 500);
});

ptest('a multi-queue TAP with queues=2 is attached on both queues and answers', async () => {
  const mq = TestNet.create(1, true);
  try {
    const v = await mq.startVm('mq', ['-netdev', 'tap,id=n0,ifname=tap0,script=no,downscript=no,queues=2',
      '-device', 'virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56', '-guest', 'ip=192.168.100.2/24']);
    assert.is((await mq.ping(50, 0.01, 1)).received, 50);
    assert.is((await mq.udp('echo', 7, 1000, 200)).unique, 200);
    await v.qmp.ok('quit');
  } finally {
    await mq.destroy();
  }
});

ptest('a TAP that cannot be attached is a clear start-up error, exit 1', async () => {
  // tap0 is single-queue (and held by vm1): TUNSETIFF with IFF_MULTI_QUEUE fails.
  const bad = await net!.startVm('bad', ['-netdev', 'tap,id=n0,ifname=tap0,script=no,downscript=no,queues=2',
    '-device', 'virtio-net-pci,netdev=n0'], false);
  const code = await Promise.race([bad.exited, new Promise((r) => setTimeout(() => r('timeout'), 10000))]);
  assert.is(code, 1);
  assert.match(bad.stderr(), /switchover-vm: -netdev tap,id=n0: could not configure \/dev\/net\/tun \(tap0\): ioctl failed/);
});

ptest('quit ends the process with SHUTDOWN', async () => {
  await vm.qmp.ok('quit');
  await vm.qmp.waitEvent('SHUTDOWN');
  assert.is(await vm.exited, 0);
});

test.run();
