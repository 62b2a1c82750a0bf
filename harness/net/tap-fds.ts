// Opening a run's TAP inside its host netns from the harness process, so the fds can be
// handed to QEMU over QMP (`getfd` + SCM_RIGHTS) as libvirt does, instead of QEMU opening
// the TAP by name. The TAP lives in the host netns and TUNSETIFF finds interfaces in the
// calling thread's netns, so the calling thread enters the netns (setns(2)) for the open
// and ioctl and returns before any other JavaScript runs. setns needs CAP_SYS_ADMIN: root.
//
// Flags as libvirt's virNetDevTapCreate and QEMU's tap_open (net/tap-linux.c): IFF_TAP,
// IFF_NO_PI, IFF_VNET_HDR (so virtio-net keeps its offloads), IFF_MULTI_QUEUE for queues>1.
//
// API
//   openTapFdsInNetns(netns, ifname, queues) -> number[]   one fd per queue; close them once passed
import { closeSync } from 'node:fs';
import koffi from 'koffi';
import { isRoot } from './exec.js';
import { validateName } from './names.js';

const libc = koffi.load('libc.so.6');
const cOpen = libc.func('int open(const char *path, int flags, ...)');
const cIoctl = libc.func('int ioctl(int fd, unsigned long request, ...)');
const cSetns = libc.func('int setns(int fd, int nstype)');
const cStrerror = libc.func('const char *strerror(int errnum)');

// asm-generic/fcntl.h, linux/sched.h, linux/if_tun.h
const O_RDONLY = 0;
const O_RDWR = 0o2;
const O_CLOEXEC = 0o2000000;
const CLONE_NEWNET = 0x40000000;
const TUNSETIFF = 0x400454ca;
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;
const IFF_VNET_HDR = 0x4000;
const IFF_MULTI_QUEUE = 0x0100;
const IFREQ_SIZE = 40;

function fail(call: string, what: string): never {
  const e = koffi.errno();
  throw new Error(`${call} failed for ${what}: ${cStrerror(e) as string} (errno ${e})`);
}

function openPath(path: string, flags: number): number {
  const fd = cOpen(path, flags | O_CLOEXEC, 'int', 0) as number;
  if (fd < 0) fail('open', path);
  return fd;
}

export function openTapFdsInNetns(netns: string, ifname: string, queues: number): number[] {
  validateName('netns', netns);
  validateName('TAP', ifname);
  if (!isRoot()) {
    throw new Error(`passing TAP fds to QEMU needs root (the harness enters netns ${netns} to open ${ifname}): run as root or let QEMU open the TAP by name`);
  }
  const home = openPath('/proc/thread-self/ns/net', O_RDONLY);
  const target = openPath(`/run/netns/${netns}`, O_RDONLY);
  const fds: number[] = [];
  try {
    if ((cSetns(target, CLONE_NEWNET) as number) < 0) fail('setns', `netns ${netns}`);
    try {
      const ifr = Buffer.alloc(IFREQ_SIZE);
      ifr.write(ifname, 0, 'latin1');
      ifr.writeUInt16LE(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (queues > 1 ? IFF_MULTI_QUEUE : 0), 16);
      for (let q = 0; q < queues; q++) {
        const fd = openPath('/dev/net/tun', O_RDWR);
        fds.push(fd);
        if ((cIoctl(fd, TUNSETIFF, 'uint8_t *', ifr) as number) < 0) {
          fail('ioctl TUNSETIFF', `${ifname} queue ${q} in netns ${netns} (does the TAP exist there, with multi_queue ${queues > 1 ? 'on' : 'off'}?)`);
        }
      }
    } finally {
      // Back home before anything else can run on this thread.
      if ((cSetns(home, CLONE_NEWNET) as number) < 0) fail('setns', 'the harness netns (return)');
    }
  } catch (e) {
    for (const fd of fds) closeSync(fd);
    throw e;
  } finally {
    closeSync(home);
    closeSync(target);
  }
  return fds;
}
