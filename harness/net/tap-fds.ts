// Opening a run's TAP inside its host netns from the harness process, so the fds can be
// handed to QEMU over QMP (`getfd` + SCM_RIGHTS) as libvirt does, instead of QEMU opening
// the TAP by name. The open and the netns switch are lib/tun.ts; this adds the harness's name
// checks and says what to do without root.
//
// Flags as libvirt's virNetDevTapCreate: IFF_VNET_HDR as well, so virtio-net keeps its offloads.
//
// API
//   openTapFdsInNetns(netns, ifname, queues) -> number[]   one fd per queue; close them once passed
import { openTapInNetns } from '../../lib/tun.js';
import { isRoot } from './exec.js';
import { validateName } from './names.js';

export function openTapFdsInNetns(netns: string, ifname: string, queues: number): number[] {
  validateName('netns', netns);
  validateName('TAP', ifname);
  if (!isRoot()) {
    throw new Error(`passing TAP fds to QEMU needs root (the harness enters netns ${netns} to open ${ifname}): run as root or let QEMU open the TAP by name`);
  }
  return openTapInNetns(netns, ifname, queues, { vnetHdr: true });
}
