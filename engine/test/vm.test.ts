// The engine VM on real networking: a client netns pings and sends UDP to a VM on a TAP in a
// host netns, and drives it over QMP.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { once } from 'node:events';
import net from 'node:net';
import { requirePrivilege } from '../../fixtures/privilege.js';
import { CLIENT_IP, TestNet, UDP_TOOL, type VmProc } from './testnet.js';

let n: TestNet | undefined;
let vm: VmProc;

const privileged = requirePrivilege('engine VM network tests');

test.before(async () => {
  if (!privileged) return;
  n = await TestNet.create();
  vm = await n.startVm('vm1', n.guestOn(n.tap0, { guest: { dirtyRate: 1000 } }));
});

test.after(async () => { await n?.destroy(); });

const ptest = privileged ? test : test.skip;

/** A QMP connection of raw lines, negotiated, for input that no client library would send. */
async function rawQmp(path: string): Promise<{ send(line: string): void; reply(): Promise<Record<string, unknown>>; close(): void }> {
  const sock = net.connect(path);
  await once(sock, 'connect');
  const replies: Array<Record<string, unknown>> = [];
  let buf = '';
  let wake = (): void => {};
  sock.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    for (let i; (i = buf.indexOf('\n')) >= 0;) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      const msg = line ? JSON.parse(line) as Record<string, unknown> : undefined;
      if (msg && !('QMP' in msg) && !('event' in msg)) replies.push(msg);
    }
    wake();
  });
  const reply = async (): Promise<Record<string, unknown>> => {
    const deadline = Date.now() + 5_000;
    while (!replies.length) {
      if (Date.now() > deadline) throw new Error('no QMP reply within 5 s');
      await new Promise<void>((r) => { wake = r; setTimeout(r, 50); });
    }
    return replies.shift()!;
  };
  const send = (line: string): void => { sock.write(line); };
  send('{"execute": "qmp_capabilities"}\n');
  assert.equal(await reply(), { return: {} });
  return { send, reply, close: () => sock.destroy() };
}

const desc = (r: Record<string, unknown>): string => (r.error as { desc: string }).desc;

ptest('the VM runs and answers 1000 pings at 1 ms with none lost', async () => {
  assert.equal(await vm.qmp.execute('query-status'), { running: true, singlestep: false, status: 'running' });
  const r = await n!.ping(1000, 0.001);
  assert.is(r.sent, 1000);
  assert.is(r.received, 1000, r.out);
});

ptest('a UDP stream to the sink is counted exactly, and the echo port answers every datagram', async () => {
  const sent = await n!.udp('send', 9, 2000, 2000);
  assert.is(sent.sent, 2000);
  const echo = await n!.udp('echo', 7, 2000, 1000);
  assert.is(echo.unique, 1000);
  const info = await vm.qmp.execute('x-query-guest-net');
  const sink = info.udp.find((u) => u.port === 9)!;
  assert.equal({ received: sink.received, missing: sink.missing, duplicates: sink.duplicates, highest: sink['highest-seq'] },
    { received: 2000, missing: 0, duplicates: 0, highest: 1999 });
  const ep = info.udp.find((u) => u.port === 7)!;
  assert.is(ep.received, 1000);
  assert.ok(info['arp-cache'].some((e) => e.ip === CLIENT_IP), 'guest learned the client from ARP');
});

ptest('stop leaves pings unanswered, cont answers them again', async () => {
  await vm.qmp.execute('stop');
  await vm.qmp.waitEvent('STOP', undefined, 30_000, 0);
  assert.is((await vm.qmp.execute('query-status')).status, 'paused');
  const paused = await n!.ping(5, 0.2, 1);
  assert.is(paused.received, 0, 'a paused VM answers nothing');
  await vm.qmp.execute('cont');
  await vm.qmp.waitEvent('RESUME', undefined, 30_000, 0);
  const resumed = await n!.ping(5, 0.2, 1);
  assert.is(resumed.received, 5);
});

ptest('malformed QMP gets errors, the connection and the VM go on, several clients at once', async () => {
  const q2 = await rawQmp(vm.qmpPath);
  try {
    q2.send('{"execute": oops}\n');
    const e1 = await q2.reply();
    assert.is((e1.error as { class: string }).class, 'GenericError');
    assert.match(desc(e1), /JSON parse error/);
    q2.send('[1,2]\n');
    assert.match(desc(await q2.reply()), /must be a JSON object/);
    q2.send('{"execute": "no-such-command"}\n');
    assert.equal((await q2.reply()).error, { class: 'CommandNotFound', desc: 'The command no-such-command has not been found' });
    q2.send('{"execute": "x-guest-udp-send", "arguments": {"dst": 5, "port": 9, "rate": 1, "count": 1}}\n');
    assert.match(desc(await q2.reply()), /Invalid parameter type for 'dst'/);
    q2.send('{"execute": "qmp_capabilities"}\n');
    assert.is(((await q2.reply()).error as { class: string }).class, 'CommandNotFound');
    q2.send(`{"execute": "${'x'.repeat(1100 * 1024)}`);
    assert.match(desc(await q2.reply()), /longer than 1048576 bytes/);
    q2.send('"}\n');
    q2.send('{"execute": "query-status"}\n');
    assert.is(((await q2.reply()).return as { status: string }).status, 'running');
    assert.is((await vm.qmp.execute('query-name')).name, 'vm1');
    const r = await n!.ping(20, 0.01);
    assert.is(r.received, 20);
  } finally {
    q2.close();
  }
});

ptest('the guest sends a sequenced UDP stream to the client', async () => {
  const recv = n!.spawnInClient([process.execPath, UDP_TOOL, 'recv', '5009', '3000']);
  let out = '';
  recv.stdout!.on('data', (d) => { out += d; });
  const closed = once(recv, 'close');
  await new Promise((r) => setTimeout(r, 500));
  await vm.qmp.execute('x-guest-udp-send', { dst: CLIENT_IP, port: 5009, rate: 500, count: 500 });
  await closed;
  const res = JSON.parse(out) as { received: number; unique: number };
  assert.is(res.unique, 500);
});

ptest('a multi-queue TAP with queues=2 is attached on both queues and answers', async () => {
  const mq = await TestNet.create(2);
  try {
    const v = await mq.startVm('mq', mq.guestOn(mq.tap0, { nic: { queues: 2 } }));
    assert.is((await mq.ping(50, 0.01, 1)).received, 50);
    assert.is((await mq.udp('echo', 7, 1000, 200)).unique, 200);
    await v.qmp.execute('quit');
  } finally {
    await mq.destroy();
  }
});

ptest('a TAP that cannot be attached is a clear start-up error, exit 1', async () => {
  // tap0 is single-queue (and held by vm1): TUNSETIFF with IFF_MULTI_QUEUE fails.
  const bad = await n!.startVm('bad', { nic: { ifname: n!.tap0, queues: 2 } }, false);
  const code = await Promise.race([bad.exited, new Promise((r) => setTimeout(() => r('timeout'), 10000))]);
  assert.is(code, 1);
  assert.match(bad.stderr(), new RegExp(`switchover-vm: -netdev tap,id=n0: could not configure /dev/net/tun \\(${n!.tap0}\\): ioctl failed`));
});

ptest('quit ends the process with SHUTDOWN', async () => {
  await vm.qmp.execute('quit');
  await vm.qmp.waitEvent('SHUTDOWN', undefined, 30_000, 0);
  assert.is(await vm.exited, 0);
});

test.run();
