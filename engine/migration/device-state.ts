// The device-state section's payload, checked as strictly as QMP arguments before a destination
// loads it (issue 18): every field of the documented shape (STREAM.md, `0x10`) with its type and
// range, the guest model's `extra.net` included, and no member that is not part of it. A stream
// is input from another process: a sender saying `rate: 1e9` would flood the destination, and a
// number where an address belongs would fail deep inside the guest model. An invalid state
// fails the load with the field named:
//   guest.extra.net.sender.rate: expected packets/s in (0, 100000], got 1000000000
import { isIpv4, isMac } from '../../lib/net-addr.js';
import { MAX_ARP_ENTRIES, MAX_TRACKED_MISSING, UDP_ECHO_PORT, UDP_SENDER_LIMITS, UDP_SINK_PORT } from '../guest/net.js';
import type { DeviceState } from './stream.js';
import { MAX_TAP_QUEUES } from '../guest/tap-options.js';

/** A device state that does not have the documented shape; the message starts with the field. */
export class DeviceStateError extends Error {
  constructor(path: string, expected: string, got: unknown) {
    super(`${path ? `${path}: ` : ''}expected ${expected}, got ${show(got)}`);
    this.name = 'DeviceStateError';
  }
}

const join = (path: string, key: string): string => (path ? `${path}.${key}` : key);

function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  const text = JSON.stringify(v) ?? typeof v;
  return text.length <= 40 ? text : `${text.slice(0, 40)}…`;
}

type Check = (v: unknown, path: string) => void;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Exactly these members (own properties only), each checked. */
const object = (fields: Record<string, Check>, optional: readonly string[] = []): Check => (v, path) => {
  if (!isObject(v)) throw new DeviceStateError(path, 'an object', v);
  for (const k of Object.keys(v)) {
    if (!Object.hasOwn(fields, k)) throw new DeviceStateError(join(path, k), `no member of that name (known: ${Object.keys(fields).join(', ')})`, v[k]);
  }
  for (const [k, check] of Object.entries(fields)) {
    if (!Object.hasOwn(v, k)) {
      if (!optional.includes(k)) throw new DeviceStateError(join(path, k), 'a value', undefined);
      continue;
    }
    check(v[k], join(path, k));
  }
};

const int = (min: number, max: number, what = `an integer in ${min}..${max}`): Check => (v, path) => {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new DeviceStateError(path, what, v);
};
const count = int(0, Number.MAX_SAFE_INTEGER, 'a count (integer >= 0)');
const bool: Check = (v, path) => { if (typeof v !== 'boolean') throw new DeviceStateError(path, 'true or false', v); };

const mac: Check = (v, path) => { if (!isMac(v)) throw new DeviceStateError(path, 'a MAC address', v); };

const ipv4: Check = (v, path) => { if (!isIpv4(v)) throw new DeviceStateError(path, 'an IPv4 address', v); };
const unicastIpv4: Check = (v, path) => { if (!isIpv4(v) || v === '0.0.0.0') throw new DeviceStateError(path, 'an IPv4 address other than 0.0.0.0', v); };
const nullable = (check: Check): Check => (v, path) => { if (v !== null) check(v, path); };

const list = (item: Check, max: number): Check => (v, path) => {
  if (!Array.isArray(v)) throw new DeviceStateError(path, `a list of at most ${max}`, v);
  if (v.length > max) throw new DeviceStateError(path, `a list of at most ${max}`, `${v.length} entries`);
  v.forEach((x, i) => item(x, `${path}[${i}]`));
};

const port: Check = (v, path) => {
  if (v !== UDP_ECHO_PORT && v !== UDP_SINK_PORT) throw new DeviceStateError(path, `port ${UDP_ECHO_PORT} or ${UDP_SINK_PORT}`, v);
};
const highest = int(-1, Number.MAX_SAFE_INTEGER, 'a sequence number (integer >= -1)');

const GUEST_NET: Check = object({
  ip: nullable(ipv4),
  prefix: int(0, 32),
  gw: nullable(ipv4),
  arp: list((v, path) => {
    if (!Array.isArray(v) || v.length !== 2) throw new DeviceStateError(path, '[ip, mac]', v);
    ipv4(v[0], `${path}[0]`);
    mac(v[1], `${path}[1]`);
  }, MAX_ARP_ENTRIES),
  udp: list(object({
    port, received: count, missing: count, duplicates: count, reordered: count, highest,
    gaps: list(count, MAX_TRACKED_MISSING),
  }), 2),
  sender: nullable((v, path) => {
    object({
      dst: unicastIpv4,
      port: int(1, 65_535),
      rate: (r, p) => {
        if (typeof r !== 'number' || !(r > 0 && r <= UDP_SENDER_LIMITS.maxRate)) {
          throw new DeviceStateError(p, `packets/s in (0, ${UDP_SENDER_LIMITS.maxRate}]`, r);
        }
      },
      count: int(1, UDP_SENDER_LIMITS.maxCount),
      next: count,
    })(v, path);
    const s = v as { count: number; next: number };
    if (s.next > s.count) throw new DeviceStateError(`${path}.next`, `at most count (${s.count})`, s.next);
  }),
});

const DEVICE_STATE: Check = object({
  nic: object({ mac, rxEnabled: bool, queues: int(1, MAX_TAP_QUEUES) }),
  guest: object({
    ip: (v, path) => { if (v !== '') ipv4(v, path); },
    prefixLength: int(0, 32),
    arpCache: list(object({ ip: ipv4, mac }), MAX_ARP_ENTRIES),
    udp: list(object({
      port, received: count, missing: count, duplicates: count, reordered: count, 'highest-seq': highest,
    }), 2),
    extra: object({ net: GUEST_NET }, ['net']),
  }, ['extra']),
});

/** `v` as a DeviceState, or a DeviceStateError naming the first field that is wrong. */
export function validateDeviceState(v: unknown): DeviceState {
  DEVICE_STATE(v, '');
  return v as DeviceState;
}
