import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TapOptionsError, validateTapOptions } from '../tap-options.js';

const incoming = { incoming: true };
const base = { id: 'n0', 'incoming-fds': 'on', script: 'no', downscript: 'no' };

test('incoming-fds=on with script=no,downscript=no on an incoming VM is accepted', () => {
  const o = validateTapOptions({ ...base, queues: '4' }, incoming);
  assert.equal(o, { id: 'n0', fds: [], queues: 4, vhost: false, incomingFds: true, script: 'no', downscript: 'no' });
});

test('incoming-fds with fd=, fds= or helper= is refused', () => {
  for (const extra of [{ fd: '3' }, { fds: '3:4' }, { helper: '/usr/lib/qemu/qemu-bridge-helper' }] as Record<string, string>[]) {
    assert.throws(() => validateTapOptions({ ...base, ...extra }, incoming), /incoming-fds is incompatible with fd=, fds=, helper=/);
  }
});

test('incoming-fds without script=no and downscript=no is refused', () => {
  assert.throws(() => validateTapOptions({ id: 'n0', 'incoming-fds': 'on', downscript: 'no' }, incoming), /requires script=no and downscript=no/);
  assert.throws(() => validateTapOptions({ id: 'n0', 'incoming-fds': 'on', script: 'no', downscript: '/etc/qemu-ifdown' }, incoming), /requires script=no and downscript=no/);
});

test('incoming-fds with ifname, vnet_hdr or sndbuf is refused, not ignored', () => {
  for (const extra of [{ ifname: 'tap0' }, { vnet_hdr: 'on' }, { sndbuf: '1048576' }] as Record<string, string>[]) {
    assert.throws(() => validateTapOptions({ ...base, ...extra }, incoming), /ifname=, vnet_hdr= and sndbuf= are invalid with incoming-fds=on/);
  }
});

test('incoming-fds on a VM that is not an incoming migration is refused', () => {
  assert.throws(() => validateTapOptions(base, { incoming: false }), /incoming-fds=on needs an incoming migration \(-incoming\)/);
});

test('QEMU\'s fd=/fds=/helper= combinations', () => {
  assert.equal(validateTapOptions({ id: 'n0', fds: '5:6:7' }, { incoming: false }).queues, 3);
  assert.equal(validateTapOptions({ id: 'n0', fd: '5' }, { incoming: false }).fds, [5]);
  assert.throws(() => validateTapOptions({ id: 'n0', fd: '5', ifname: 'tap0' }, { incoming: false }), /are invalid with fd=/);
  assert.throws(() => validateTapOptions({ id: 'n0', fds: '5:6', queues: '2' }, { incoming: false }), /are invalid with fds=/);
  assert.throws(() => validateTapOptions({ id: 'n0', helper: 'h', ifname: 'tap0' }, { incoming: false }), /are invalid with helper=/);
  assert.throws(() => validateTapOptions({ id: 'n0', fds: '5:x' }, { incoming: false }), /Parameter 'fds' expects file descriptor numbers \(got 'x'\)/);
});

test('plain ifname TAP, unknown keys and bad values', () => {
  const o = validateTapOptions({ id: 'n0', ifname: 'tap0', script: 'no', downscript: 'no', vhost: 'off', vnet_hdr: 'on' }, { incoming: false });
  assert.equal(o, { id: 'n0', ifname: 'tap0', fds: [], queues: 1, vhost: false, incomingFds: false, script: 'no', downscript: 'no', vnetHdr: true });
  assert.throws(() => validateTapOptions({ id: 'n0', bogus: '1' }, incoming), /Invalid parameter 'bogus'/);
  assert.throws(() => validateTapOptions({ ifname: 'tap0' }, incoming), /Parameter 'id' is missing/);
  assert.throws(() => validateTapOptions({ id: 'n0', 'incoming-fds': 'maybe' }, incoming), /Parameter 'incoming-fds' expects 'on' or 'off'/);
  assert.throws(() => validateTapOptions({ id: 'n0', ifname: 't', queues: '0' }, incoming), /Parameter 'queues' expects a number between 1 and 1024/);
  try { validateTapOptions({ id: 'n0', x: '' }, incoming); } catch (e) { assert.instance(e, TapOptionsError); }
});

test.run();
