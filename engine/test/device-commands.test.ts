// netdev_add / netdev_del / device_add / device_del and query-qmp-schema on an engine VM in this
// process, without a TAP: a destination's netdev with incoming-fds opens nothing, so bad input
// and the run-state rule are checked with no privilege.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseCmdline } from '../cmdline.js';
import { deviceCommands } from '../device-commands.js';
import { dispatcher, introspect, type CommandTable } from '../qmp/commands.js';
import { refused } from '../qmp/test/refused.js';
import { Vm } from '../vm.js';

const WAIT = { type: 'tap', id: 'n0', queues: 2, 'incoming-fds': true, script: 'no', downscript: 'no' };

function withVm(argv: string[], fn: (call: (cmd: string, args: Record<string, unknown>) => unknown, vm: Vm) => void): void {
  const vm = new Vm(parseCmdline(['-m', '16M', ...argv]), () => {});
  let loading = false;
  const call = dispatcher(deviceCommands(vm, () => !loading && (vm.runState === 'prelaunch' || vm.runState === 'inmigrate')));
  try {
    fn((cmd, args) => call(cmd, args), vm);
    loading = true;
    assert.equal(refused(() => call('device_del', { id: 'x' })).desc.startsWith('device_del is only possible before the guest runs'), true);
  } finally {
    vm.close();
  }
}

test('a destination plugs its NIC over QMP: the netdev waits for fds, the NIC and the guest take the MAC', () => {
  withVm(['-incoming', 'defer'], (call, vm) => {
    assert.equal(call('netdev_add', WAIT), {});
    assert.equal(call('device_add', { driver: 'virtio-net-pci', id: 'nic0', netdev: 'n0', mac: 'D6:0D:75:F8:0F:B7', mq: true, vectors: 6, addr: '0x2', romfile: '', 'disable-legacy': 'off', 'local-migration': true }), {});
    assert.is(vm.nic?.config.id, 'nic0');
    assert.is(vm.nic?.netdev.config.incomingFds, true);
    assert.is(vm.nic?.netdev.queues.length, 0, 'no TAP opened: the fds come with the stream');
    assert.is(vm.guest.macText, 'd6:0d:75:f8:0f:b7');
    assert.equal(call('device_del', { id: 'nic0' }), {});
    assert.is(vm.nic, null);
    assert.is(vm.guest.macText, '52:54:00:12:34:56');
    assert.equal(call('netdev_del', { id: 'n0' }), {});
    assert.is(vm.netdevs.length, 0);
  });
});

test('bad input gets QEMU error classes and wording', () => {
  withVm(['-incoming', 'defer'], (call) => {
    call('netdev_add', WAIT);
    assert.equal(refused(() => call('netdev_add', WAIT)), { class: 'GenericError', desc: "Duplicate ID 'n0' for netdev" });
    assert.equal(refused(() => call('device_add', { driver: 'virtio-net-pci', netdev: 'nope' })), { class: 'GenericError', desc: "Property 'virtio-net-pci.netdev' can't find value 'nope'" });
    assert.equal(refused(() => call('netdev_del', { id: 'nope' })), { class: 'DeviceNotFound', desc: "Device 'nope' not found" });
    assert.equal(refused(() => call('device_del', { id: 'nope' })), { class: 'DeviceNotFound', desc: "Device 'nope' not found" });
    assert.match(refused(() => call('netdev_add', { ...WAIT, id: 'n1', vhost: true })).desc, /^tap: open vhost char device failed: No such file or directory/);
    assert.match(refused(() => call('netdev_add', { ...WAIT, id: 'n1', script: '/etc/qemu-ifup' })).desc, /incoming-fds=on requires script=no and downscript=no/);
    const { downscript: _, ...noDownscript } = WAIT;
    assert.match(refused(() => call('netdev_add', { ...noDownscript, id: 'n1' })).desc, /incoming-fds=on requires script=no and downscript=no/);
    assert.equal(refused(() => call('netdev_add', { type: 'tap', id: 'n1', fd: 'tapfd' })).desc, "File descriptor named 'tapfd' has not been found");
    assert.equal(refused(() => call('netdev_add', { ...WAIT, id: 'n1', queues: '2' })).desc, "Invalid parameter type for 'queues', expected: integer");
    assert.match(refused(() => call('netdev_add', { ...WAIT, type: 'user' })).desc, /Parameter 'type' does not accept value 'user'/);
    const nic = { driver: 'virtio-net-pci', netdev: 'n0' };
    assert.equal(refused(() => call('device_add', { ...nic, bus: 'pci.1' })).desc, "Bus 'pci.1' not found");
    assert.match(refused(() => call('device_add', { ...nic, romfile: 'efi-virtio.rom' })).desc, /loads no option ROM/);
    assert.match(refused(() => call('device_add', { ...nic, mq: false })).desc, /mq=off on netdev 'n0' with 2 queues/);
    assert.match(refused(() => call('device_add', { ...nic, mac: '52:54:00' })).desc, /Property 'virtio-net-pci.mac' doesn't take value/);
    assert.equal(refused(() => call('device_add', { ...nic, local_migration: true })).desc, "Property 'virtio-net-pci.local_migration' not found");
    assert.equal(refused(() => call('netdev_add', { ...WAIT, id: 'n1', incoming_fds: true })).desc, "Parameter 'incoming_fds' is unexpected");
    assert.match(refused(() => call('device_add', { driver: 'e1000', netdev: 'n0' })).desc, /'e1000' is not a valid device model name/);
    call('device_add', { ...nic, id: 'nic0' });
    assert.equal(refused(() => call('device_add', { ...nic, id: 'nic0' })), { class: 'GenericError', desc: "Duplicate device ID 'nic0'" });
    assert.match(refused(() => call('netdev_del', { id: 'n0' })).desc, /in use by device 'nic0'/);
  });
});

test('incoming-fds needs an incoming VM, as on the command line', () => {
  withVm(['-S'], (call) => {
    assert.match(refused(() => call('netdev_add', WAIT)).desc, /incoming-fds=on needs an incoming migration/);
  });
});

test('a VM whose guest has run refuses every change', () => {
  const vm = new Vm(parseCmdline(['-m', '16M']), () => {});
  try {
    assert.is(vm.runState, 'running');
    const call = dispatcher(deviceCommands(vm, () => vm.runState === 'prelaunch'));
    for (const [cmd, args] of [['netdev_add', { type: 'tap', id: 'n0', ifname: 'tap0' }], ['device_add', { driver: 'virtio-net-pci', netdev: 'n0' }], ['netdev_del', { id: 'n0' }], ['device_del', { id: 'nic0' }]] as const) {
      const r = refused(() => call(cmd, args));
      assert.is(r.class, 'GenericError');
      assert.match(r.desc, new RegExp(`^${cmd} is only possible before the guest runs .*now running`));
    }
  } finally {
    vm.close();
  }
});

test('query-qmp-schema shows each command with its arguments, NetdevTapOptions with incoming-fds', () => {
  const vm = new Vm(parseCmdline(['-m', '16M', '-S']), () => {});
  try {
    const table: CommandTable = deviceCommands(vm, () => true);
    const schema = introspect(table);
    const cmd = schema.find((s) => s.name === 'netdev_add');
    assert.equal(cmd, { name: 'netdev_add', 'meta-type': 'command', 'arg-type': 'NetdevTapOptions', 'ret-type': 'any' });
    const tap = schema.find((s) => s.name === 'NetdevTapOptions');
    assert.equal(tap?.members?.find((m) => m.name === 'incoming-fds'), { name: 'incoming-fds', type: 'bool', default: null });
    assert.equal(tap?.members?.find((m) => m.name === 'id'), { name: 'id', type: 'str' });
    const dev = schema.find((s) => s.name === 'q_obj_device_add-arg');
    assert.ok(dev?.members?.some((m) => m.name === 'local-migration'));
    assert.equal(schema.filter((s) => s['meta-type'] === 'command').map((s) => s.name).sort(), Object.keys(table).sort());
  } finally {
    vm.close();
  }
});

test.run();
