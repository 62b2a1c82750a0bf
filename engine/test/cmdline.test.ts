// The VM's QEMU-shaped command line: what it accepts and how it refuses.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CmdlineError, parseCmdline } from '../cmdline.js';

const BIN = fileURLToPath(new URL('../../../bin/switchover.js', import.meta.url));

test('the DESIGN.md command line parses', () => {
  const c = parseCmdline(['-name', 'src', '-m', '256M', '-netdev', 'tap,id=n0,ifname=tap0,script=no,downscript=no,queues=2,vhost=off',
    '-device', 'virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56', '-guest', 'ip=192.168.100.2/24,gw=192.168.100.1,dirty-rate=20000',
    '-qmp', 'unix:/run/x/src.qmp,server=on,wait=off', '-incoming', 'defer', '-S']);
  assert.is(c.name, 'src');
  assert.is(c.memBytes, 256 * 2 ** 20);
  assert.equal(c.netdevs[0], { id: 'n0', ifname: 'tap0', queues: 2, vhost: false, fds: [], incomingFds: false });
  assert.equal(c.nics[0], { id: 'n0', netdev: 'n0', mac: '52:54:00:12:34:56', localMigration: true });
  assert.equal(c.guest, { ip: '192.168.100.2', prefix: 24, gw: '192.168.100.1', dirtyRate: 20000, fill: 0 });
  assert.equal(c.qmp, ['/run/x/src.qmp']);
  assert.is(c.incoming, 'defer');
  assert.is(c.startPaused, true);
});

test('a destination for local migration waits for its TAP fds', () => {
  const c = parseCmdline(['-netdev', 'tap,id=n0,incoming-fds=on,script=no,downscript=no,queues=4', '-device', 'virtio-net-pci,netdev=n0', '-incoming', 'unix:/x']);
  assert.equal(c.netdevs[0], { id: 'n0', queues: 4, vhost: false, fds: [], incomingFds: true });
});

test('bad values are refused with QEMU-like messages', () => {
  const bad: Array<[string[], RegExp]> = [
    [['-netdev', 'tap,id=n0,ifname=t,queues=x'], /-netdev tap,id=n0,ifname=t,queues=x: Parameter 'queues' expects a number/],
    [['-netdev', 'tap,id=n0,ifname=t,bogus=1'], /Invalid parameter 'bogus'/],
    [['-netdev', 'user,id=n0'], /Parameter 'type'/],
    [['-device', 'virtio-net-pci,netdev=n9'], /can't find value 'n9'/],
    [['-m', 'lots'], /-m lots: invalid memory size/],
    [['-guest', 'ip=300.1.1.1/24'], /Parameter 'ip' expects an IPv4 address/],
    [['-qmp', 'unix:/x,server=on'], /wait=off/],
    [['-incoming', 'rdma:x'], /unknown migration protocol/],
    [['-bogus'], /-bogus: invalid option/],
    [['-netdev', 'tap,id=n0,incoming-fds=on,script=no,downscript=no'], /incoming-fds=on needs an incoming migration/],
    [['-netdev', 'tap,id=n0,ifname=t,incoming-fds=on,script=no,downscript=no', '-incoming', 'defer'], /ifname=, vnet_hdr= and sndbuf= are invalid with incoming-fds=on/],
    [['-netdev', 'tap,id=n0,incoming-fds=on,script=no,downscript=no', '-incoming', 'tcp:127.0.0.1:4444'], /only a unix: migration channel can carry/],
  ];
  for (const [argv, re] of bad) {
    assert.throws(() => parseCmdline(argv), (e: Error) => e instanceof CmdlineError && re.test(e.message), argv.join(' '));
  }
});

test('the vm subcommand exits 1 with the message on stderr', () => {
  const r = spawnSync(process.execPath, [BIN, 'vm', '-netdev', 'tap,id=n0,ifname=t,queues=x'], { encoding: 'utf8' });
  assert.is(r.status, 1);
  assert.is(r.stdout, '');
  assert.match(r.stderr, /^switchover-vm: -netdev tap,id=n0,ifname=t,queues=x: Parameter 'queues' expects a number between 1 and 1024\n$/);
});

test.run();
