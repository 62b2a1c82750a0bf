// Fault steps, run by a migration hop at a migration phase. Each acts on real things: a VM
// process (SIGKILL), the migration socket (a relay that is cut), QMP (migrate_cancel), the
// destination TAP (nftables in the host netns, link down). Each timed fault ends in a
// FaultOutcome, the verdict the runner turns into a timeline line and, if it never fired, a
// failed check.
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChannelRelay } from './channel-relay.js';
import type { Topology } from '../net/topology.js';
import type { FaultStep, VmHandle } from '../scenario/types.js';

export interface FaultTargets {
  topo: Topology;
  src: VmHandle;
  dst: VmHandle;
  dstTap: string;
  guestIp: string;
  relay?: ChannelRelay;
}

/** What became of one timed fault. */
export interface FaultOutcome {
  /** `KIND at PHASE`. */
  fault: string;
  fired: boolean;
  /** When it fired or gave up (ms epoch), and the timeline line that says so. */
  t: number;
  line: string;
  /** Why it did not fire. */
  why?: string;
}

/** Faults that act at a phase (delay-cont and drop-announce are set up before migrating). */
export function isTimedFault(f: FaultStep): boolean {
  return f.kind === 'kill-destination' || f.kind === 'cut-channel' || f.kind === 'cancel' || f.kind === 'pause-destination-tap';
}

/**
 * Run one timed fault now that its phase came; returns a line for the timeline. `delayMs` is
 * the wait before the fault, except for pause-destination-tap, where it is how long the TAP
 * stays down (from the phase on).
 */
export async function fireFault(f: FaultStep, t: FaultTargets): Promise<string> {
  const delayMs = f.delayMs ?? 0;
  switch (f.kind) {
    case 'kill-destination':
      await sleep(delayMs);
      await t.dst.kill('SIGKILL');
      return 'fault: destination killed (SIGKILL)';
    case 'cut-channel':
      if (!t.relay) throw new Error('cut-channel needs the migration relay (the runner sets it up)');
      await sleep(delayMs);
      t.relay.cut();
      return `fault: migration channel cut after ${t.relay.forwarded()} bytes`;
    case 'cancel':
      await sleep(delayMs);
      await t.src.qmp.execute('migrate_cancel');
      return 'fault: migrate_cancel';
    case 'pause-destination-tap': {
      await t.topo.exec('host', ['ip', 'link', 'set', t.dstTap, 'down']);
      await sleep(delayMs);
      await t.topo.exec('host', ['ip', 'link', 'set', t.dstTap, 'up']);
      return `fault: destination TAP ${t.dstTap} down for ${delayMs} ms`;
    }
    default:
      throw new Error(`fault ${f.kind} is not a timed fault`);
  }
}

/**
 * Drop the destination's announce: RARP (0x8035) and the guest's gratuitous ARP, on ingress
 * of the destination TAP in the host netns, so neither the bridge nor the host sees them.
 */
export async function dropAnnounce(topo: Topology, dstTap: string, guestIp: string): Promise<void> {
  const rules = [
    'table netdev switchover_faults {',
    '  chain drop_announce {',
    `    type filter hook ingress device "${dstTap}" priority 0; policy accept;`,
    '    ether type 0x8035 drop',
    `    arp operation request arp saddr ip ${guestIp} arp daddr ip ${guestIp} drop`,
    '  }',
    '}',
  ].join('\n');
  await topo.exec('host', ['nft', '-f', '-'], { input: rules + '\n' });
}
