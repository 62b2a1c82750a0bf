// lib/tun.ts on real TAPs: a TAP opened by name, and a multi-queue TAP opened from outside its
// netns (what the harness does to pass fds to QEMU), with the calling thread back home after.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, readlinkSync } from 'node:fs';
import { requirePrivilege } from '../../fixtures/privilege.js';
import { ioctlPtr } from '../libc.js';
import { openTap, openTapInNetns } from '../tun.js';

// linux/if_tun.h
const TUNGETIFF = 0x800454d2;
const IFF_TAP = 0x0002, IFF_NO_PI = 0x1000, IFF_VNET_HDR = 0x4000, IFF_MULTI_QUEUE = 0x0100;

const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8' });

/** The interface name and flags an fd is attached to (TUNGETIFF). */
function attachedTo(fd: number): { name: string; flags: number } {
  const ifr = Buffer.alloc(40);
  ioctlPtr(fd, TUNGETIFF, ifr, 'TUNGETIFF');
  return { name: ifr.toString('latin1', 0, ifr.indexOf(0)), flags: ifr.readUInt16LE(16) };
}

const homeNetns = (): string => readlinkSync('/proc/thread-self/ns/net');

test('bad names are refused before anything is opened', () => {
  assert.throws(() => openTap('x'.repeat(16)), /TAP name 'x{16}' must be 1 to 15 bytes/);
  assert.throws(() => openTapInNetns('../etc', 'tap0', 1), /netns name '\.\.\/etc' must be a plain name/);
  assert.throws(() => openTapInNetns('ns', 'tap0', 0), /TAP queues must be a positive integer, got 0/);
});

test('a multi-queue TAP in another netns: one fd per queue, flags as asked, this thread back home', () => {
  if (!requirePrivilege('TAP open tests')) return;
  const id = randomBytes(3).toString('hex');
  const ns = `tun-${id}`, tap = `tunt${id}`;
  const home = homeNetns();
  const fds: number[] = [];
  try {
    ip('netns', 'add', ns);
    ip('-n', ns, 'tuntap', 'add', 'dev', tap, 'mode', 'tap', 'multi_queue');
    fds.push(...openTapInNetns(ns, tap, 2, { vnetHdr: true }));
    assert.is(homeNetns(), home, 'back in the netns it started in');
    assert.is(fds.length, 2);
    for (const fd of fds) {
      const a = attachedTo(fd);
      assert.is(a.name, tap);
      assert.is(a.flags & (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE);
    }
    // A single-queue open of the multi-queue TAP fails inside the netns, and still comes home.
    assert.throws(() => openTapInNetns(ns, tap, 1), new RegExp(`TUNSETIFF ${tap} queue 0: check that the TAP exists in netns ${ns} with multi_queue off`));
    assert.is(homeNetns(), home, 'back home after a failure too');
    assert.throws(() => openTapInNetns(`${ns}-gone`, tap, 1), /open failed for \/run\/netns\/tun-\w+-gone: No such file or directory/);
  } finally {
    for (const fd of fds) closeSync(fd);
    try { ip('netns', 'del', ns); } catch { /* not created */ }
  }
});

test.run();
