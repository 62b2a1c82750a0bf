// The VM's QEMU-shaped command line: what it accepts and how it refuses.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { engineArgv } from '../../lib/engine-argv.js';
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

test('the command line lib/engine-argv.ts builds for the harness and the tests is the one the VM reads', () => {
  const c = parseCmdline(engineArgv({
    name: 'dst', memMB: 64, qmpPath: '/run/x/dst.qmp', incoming: 'unix:/run/x/mig.sock', paused: true,
    nic: { ifname: 'tap1', queues: 2, mac: '52:54:00:12:34:99', localMigration: false },
    guest: { ip: '192.168.100.2/24', gw: '192.168.100.1', dirtyRate: 2000, fill: 0.25 },
  }));
  assert.equal({ name: c.name, mem: c.memBytes, qmp: c.qmp, incoming: c.incoming, paused: c.startPaused }, {
    name: 'dst', mem: 64 * 2 ** 20, qmp: ['/run/x/dst.qmp'], incoming: 'unix:/run/x/mig.sock', paused: true,
  });
  assert.equal(c.netdevs, [{ id: 'n0', ifname: 'tap1', queues: 2, vhost: false, fds: [], incomingFds: false }]);
  assert.equal(c.nics, [{ id: 'n0', netdev: 'n0', mac: '52:54:00:12:34:99', localMigration: false }]);
  assert.equal(c.guest, { ip: '192.168.100.2', prefix: 24, gw: '192.168.100.1', dirtyRate: 2000, fill: 0.25 });
  const local = parseCmdline(engineArgv({ qmpPath: '/q', incoming: 'unix:/m', nic: { incomingFds: true, queues: 4, vhost: true } }));
  assert.equal(local.netdevs, [{ id: 'n0', queues: 4, vhost: true, fds: [], incomingFds: true }]);
  assert.equal(parseCmdline(engineArgv({ qmpPath: '/q' })).nics, [], 'no nic, no -netdev');
  assert.throws(() => engineArgv({ name: 'v', qmpPath: '/q', guest: { ip: '10.0.0.2/24,fill=1' } }), /VM v: ip "10\.0\.0\.2\/24,fill=1" contains a comma/);
  assert.throws(() => engineArgv({ qmpPath: '/q,x' }), /QMP path "\/q,x" contains a comma/);
  assert.throws(() => engineArgv({ qmpPath: '/q', nic: { ifname: 't', incomingFds: true } }), /leave out ifname/);
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
