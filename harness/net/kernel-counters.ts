// The kernel's own drop counters around a run, so a loss can be placed and a harness that
// could not keep up is caught (issue 12). Read before and after the traffic, inside the run's
// namespaces:
//   - per link: txqueuelen and tx_dropped, from `ip -s -j link show` (TAPs in the host netns,
//     the client veth in the client netns); a TAP drops there when its reader falls behind;
//   - UDP InErrors / RcvbufErrors / SndbufErrors per netns, from /proc/net/snmp;
//   - ARP unresolved_discards, from /proc/net/stat/arp_cache: one hex row per CPU, summed.
//     The kernel has one ARP table for all namespaces and shows its statistics only in the
//     initial one, so this counter is machine-wide and read from here.
//
// API
//   readKernelCounters(topo) -> Promise<KernelCounters>
//   countersDelta(before, after) -> KernelCounters    counts as after - before, txqueuelen as after
//   parseLinkStats(json) / parseSnmpUdp(text) / parseArpUnresolvedDiscards(text)
import { readFile } from 'node:fs/promises';
import type { Topology } from './topology.js';
import type { UdpErrorCounters } from '../scenario/types.js';

export interface LinkCounters { txqueuelen: number; txDropped: number }

export interface KernelCounters {
  /** By interface name: the run's TAPs and the client veth. */
  links: Record<string, LinkCounters>;
  udp: { host: UdpErrorCounters; client: UdpErrorCounters };
  arpUnresolvedDiscards: number;
}

const ARP_CACHE_STAT = '/proc/net/stat/arp_cache';

export class CounterReadError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CounterReadError';
  }
}

/** `ip -s -j link show` output -> counters by interface name. */
export function parseLinkStats(json: string): Record<string, LinkCounters> {
  let links: unknown;
  try {
    links = JSON.parse(json);
  } catch (e) {
    throw new CounterReadError(`ip -s -j link printed no JSON (${(e as Error).message}): is iproute2 older than 4.13?`, { cause: e });
  }
  if (!Array.isArray(links)) throw new CounterReadError('ip -s -j link did not print a list of links');
  const out: Record<string, LinkCounters> = {};
  for (const l of links as Array<{ ifname?: string; txqlen?: number; stats64?: { tx?: { dropped?: number } } }>) {
    if (typeof l.ifname !== 'string') continue;
    const dropped = l.stats64?.tx?.dropped;
    if (typeof dropped !== 'number') throw new CounterReadError(`ip -s -j link gave no stats64.tx.dropped for ${l.ifname}`);
    // A link without a queue (veth, noqueue) reports no txqlen; 0 says "none", never a guess.
    out[l.ifname] = { txqueuelen: typeof l.txqlen === 'number' ? l.txqlen : 0, txDropped: dropped };
  }
  return out;
}

/** The Udp: lines of /proc/net/snmp (a header line of names, then a line of values). */
export function parseSnmpUdp(text: string): UdpErrorCounters {
  const lines = text.split('\n').filter((l) => l.startsWith('Udp: '));
  if (lines.length < 2) throw new CounterReadError('/proc/net/snmp has no Udp: lines');
  const names = lines[0]!.trim().split(/\s+/).slice(1);
  const values = lines[1]!.trim().split(/\s+/).slice(1).map(Number);
  const get = (name: string): number => {
    const i = names.indexOf(name);
    if (i < 0 || !Number.isFinite(values[i])) throw new CounterReadError(`/proc/net/snmp has no Udp ${name} counter`);
    return values[i]!;
  };
  return { inErrors: get('InErrors'), rcvbufErrors: get('RcvbufErrors'), sndbufErrors: get('SndbufErrors') };
}

/** Sum of the unresolved_discards column over the per-CPU rows of /proc/net/stat/arp_cache. */
export function parseArpUnresolvedDiscards(text: string): number {
  const [header, ...rows] = text.trim().split('\n');
  const col = (header ?? '').trim().split(/\s+/).indexOf('unresolved_discards');
  if (col < 0) throw new CounterReadError(`${ARP_CACHE_STAT} has no unresolved_discards column`);
  return rows.reduce((sum, row) => sum + parseInt(row.trim().split(/\s+/)[col] ?? '0', 16), 0);
}

export async function readKernelCounters(topo: Pick<Topology, 'exec'>): Promise<KernelCounters> {
  const [hostLinks, clientLinks, hostSnmp, clientSnmp, arp] = await Promise.all([
    topo.exec('host', ['ip', '-s', '-j', 'link', 'show']),
    topo.exec('client', ['ip', '-s', '-j', 'link', 'show']),
    topo.exec('host', ['cat', '/proc/net/snmp']),
    topo.exec('client', ['cat', '/proc/net/snmp']),
    readFile(ARP_CACHE_STAT, 'utf8').catch((e: Error) => {
      throw new CounterReadError(`cannot read ${ARP_CACHE_STAT} (${e.message}): the harness needs the initial netns's /proc`, { cause: e });
    }),
  ]);
  return {
    links: { ...parseLinkStats(hostLinks.stdout), ...parseLinkStats(clientLinks.stdout) },
    udp: { host: parseSnmpUdp(hostSnmp.stdout), client: parseSnmpUdp(clientSnmp.stdout) },
    arpUnresolvedDiscards: parseArpUnresolvedDiscards(arp),
  };
}

export function countersDelta(before: KernelCounters, after: KernelCounters): KernelCounters {
  const udp = (a: UdpErrorCounters, b: UdpErrorCounters): UdpErrorCounters => ({
    inErrors: b.inErrors - a.inErrors, rcvbufErrors: b.rcvbufErrors - a.rcvbufErrors, sndbufErrors: b.sndbufErrors - a.sndbufErrors,
  });
  const links: Record<string, LinkCounters> = {};
  for (const [name, b] of Object.entries(after.links)) {
    links[name] = { txqueuelen: b.txqueuelen, txDropped: b.txDropped - (before.links[name]?.txDropped ?? 0) };
  }
  return {
    links,
    udp: { host: udp(before.udp.host, after.udp.host), client: udp(before.udp.client, after.udp.client) },
    arpUnresolvedDiscards: after.arpUnresolvedDiscards - before.arpUnresolvedDiscards,
  };
}
