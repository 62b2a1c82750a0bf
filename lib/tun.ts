// Attaching a file descriptor to a TAP interface: open /dev/net/tun, then TUNSETIFF with
// IFF_TAP | IFF_NO_PI, as QEMU's tap_open (net/tap-linux.c) and libvirt's virNetDevTapCreate do.
// The engine opens its TAP queues by name in its own netns. The harness opens a run's TAP
// from outside, inside the run's host netns, to hand the fds to QEMU (`getfd`): TUNSETIFF
// finds interfaces in the calling thread's netns, so that thread enters the netns (setns(2))
// for the opens and comes back before any other JavaScript runs.
//
// API
//   openTap(ifname, { multiQueue?, vnetHdr? }) -> fd                  in this thread's netns
//   openTapInNetns(netns, ifname, queues, { vnetHdr? }) -> fd[]       netns by `ip netns` name;
//        one fd per queue (IFF_MULTI_QUEUE when queues > 1); needs CAP_SYS_ADMIN (root)
import { closeSync } from 'node:fs';
import { CLONE_NEWNET, ioctlPtr, open, O_CLOEXEC, O_RDONLY, O_RDWR, setns } from './libc.js';

// linux/if_tun.h, linux/if.h
const TUNSETIFF = 0x400454ca;
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;
const IFF_VNET_HDR = 0x4000;
const IFF_MULTI_QUEUE = 0x0100;
const IFNAMSIZ = 16;
const IFREQ_SIZE = 40;

export interface TapOpenOptions {
  /** IFF_MULTI_QUEUE: the TAP was made with `multi_queue`, this fd is one of its queues. */
  multiQueue?: boolean;
  /** IFF_VNET_HDR: frames carry a virtio-net header (what QEMU's virtio-net expects). */
  vnetHdr?: boolean;
}

function ifreq(ifname: string, opts: TapOpenOptions): Buffer {
  if (!ifname || Buffer.byteLength(ifname) >= IFNAMSIZ) throw new Error(`TAP name '${ifname}' must be 1 to ${IFNAMSIZ - 1} bytes`);
  const ifr = Buffer.alloc(IFREQ_SIZE);
  ifr.write(ifname, 0, 'latin1');
  ifr.writeUInt16LE(IFF_TAP | IFF_NO_PI | (opts.vnetHdr ? IFF_VNET_HDR : 0) | (opts.multiQueue ? IFF_MULTI_QUEUE : 0), 16);
  return ifr;
}

function attach(ifr: Buffer, what: string): number {
  const fd = open('/dev/net/tun', O_RDWR | O_CLOEXEC);
  try {
    ioctlPtr(fd, TUNSETIFF, ifr, what);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return fd;
}

const hint = (where: string, multiQueue: boolean | undefined): string =>
  `check that the TAP exists ${where} with multi_queue ${multiQueue ? 'on' : 'off'} and is not attached elsewhere`;

/** A new fd attached to TAP `ifname` in this thread's netns; throws LibcError naming the fix. */
export function openTap(ifname: string, opts: TapOpenOptions = {}): number {
  const mq = opts.multiQueue ? ' (multi_queue)' : '';
  return attach(ifreq(ifname, opts), `TUNSETIFF ${ifname}${mq}: ${hint('in this netns', opts.multiQueue)}`);
}

/** `queues` fds attached to TAP `ifname` inside netns `netns` (a name under /run/netns). */
export function openTapInNetns(netns: string, ifname: string, queues: number, opts: { vnetHdr?: boolean } = {}): number[] {
  if (!netns || netns.includes('/') || netns === '.' || netns === '..') throw new Error(`netns name '${netns}' must be a plain name as \`ip netns list\` shows it`);
  if (!Number.isInteger(queues) || queues < 1) throw new Error(`TAP queues must be a positive integer, got ${queues}`);
  const multiQueue = queues > 1;
  const ifr = ifreq(ifname, { ...opts, multiQueue });
  const home = open('/proc/thread-self/ns/net', O_RDONLY | O_CLOEXEC);
  const fds: number[] = [];
  try {
    const target = open(`/run/netns/${netns}`, O_RDONLY | O_CLOEXEC);
    try {
      setns(target, CLONE_NEWNET, `netns ${netns} (entering another netns needs CAP_SYS_ADMIN: run as root)`);
    } finally {
      closeSync(target);
    }
    try {
      for (let q = 0; q < queues; q++) fds.push(attach(ifr, `TUNSETIFF ${ifname} queue ${q}: ${hint(`in netns ${netns}`, multiQueue)}`));
    } finally {
      // Back home before anything else can run on this thread.
      setns(home, CLONE_NEWNET, 'the netns this process started in (return)');
    }
  } catch (e) {
    for (const fd of fds) closeSync(fd);
    throw e;
  } finally {
    closeSync(home);
  }
  return fds;
}
