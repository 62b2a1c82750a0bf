// Validation of `-netdev tap` options, with the `incoming-fds` option of QEMU's live-TAP
// local-migration series: "do not open or create any TAP devices; prepare for getting
// opened TAP file descriptors from the incoming migration stream". Combinations QEMU
// rejects are rejected here with messages in net/tap.c's style (net_init_tap:
// "ifname=, script=, ... are invalid with fd="), and the ones the series' reviewers asked
// to be errors rather than silently ignored (ifname, vnet_hdr, sndbuf with incoming-fds).
// Pure: takes the parsed key=value pairs, opens nothing. The caller prefixes its
// `-netdev tap,...:` context.

import type { NetdevTapAdd } from '../../lib/qmp-protocol.js';

/**
 * The tap options this engine knows and their QMP wire types (qapi/net.json NetdevTapOptions,
 * the subset implemented): the one list behind the command line's check, netdev_add's argument
 * spec and the NetdevTapOptions type that query-qmp-schema shows.
 */
export const TAP_OPTION_TYPES = {
  ifname: 'str', fd: 'str', fds: 'str', helper: 'str', script: 'str', downscript: 'str',
  queues: 'int', vhost: 'bool', vnet_hdr: 'bool', sndbuf: 'int', 'incoming-fds': 'bool',
} as const satisfies Record<Exclude<keyof NetdevTapAdd, 'id' | 'type'>, 'str' | 'int' | 'bool'>;

export interface TapOptions {
  id: string;
  ifname?: string;
  /** fd=N or fds=N:M:...: TAP fds inherited from the parent (or received with getfd). */
  fds: number[];
  helper?: string;
  script?: string;
  downscript?: string;
  queues: number;
  vhost: boolean;
  vnetHdr?: boolean;
  sndbuf?: number;
  /** Wait for the TAP fds from the incoming local migration instead of opening a TAP. */
  incomingFds: boolean;
}

export class TapOptionsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TapOptionsError';
  }
}

const KNOWN = new Set(['id', ...Object.keys(TAP_OPTION_TYPES)]);
/** net/tap.c MAX_TAP_QUEUES. */
export const MAX_TAP_QUEUES = 1024;

function bool(opts: Record<string, string>, key: string): boolean | undefined {
  const v = opts[key];
  if (v === undefined) return undefined;
  if (v === 'on' || v === 'yes' || v === 'true') return true;
  if (v === 'off' || v === 'no' || v === 'false') return false;
  throw new TapOptionsError(`Parameter '${key}' expects 'on' or 'off'`);
}

function num(opts: Record<string, string>, key: string, min: number, max: number): number | undefined {
  const v = opts[key];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < min || n > max) throw new TapOptionsError(`Parameter '${key}' expects a number between ${min} and ${max}`);
  return n;
}

function fdList(text: string, key: string): number[] {
  return text.split(':').map((part) => {
    if (!/^\d+$/.test(part)) throw new TapOptionsError(`Parameter '${key}' expects file descriptor numbers (got '${part}')`);
    return Number(part);
  });
}

/**
 * Checks a `-netdev tap` option set and returns it typed. `incoming` says whether the VM
 * is an incoming migration (`-incoming ...`), which `incoming-fds=on` requires.
 */
export function validateTapOptions(opts: Record<string, string>, ctx: { incoming: boolean }): TapOptions {
  for (const k of Object.keys(opts)) if (!KNOWN.has(k)) throw new TapOptionsError(`Invalid parameter '${k}'`);
  const has = (k: string): boolean => opts[k] !== undefined;
  const id = opts.id;
  if (!id) throw new TapOptionsError("Parameter 'id' is missing");
  const incomingFds = bool(opts, 'incoming-fds') ?? false;
  const vhost = bool(opts, 'vhost') ?? false;
  const vnetHdr = bool(opts, 'vnet_hdr');
  const sndbuf = num(opts, 'sndbuf', 0, 2 ** 31 - 1);
  let queues = num(opts, 'queues', 1, MAX_TAP_QUEUES);

  if (incomingFds) {
    if (has('fd') || has('fds') || has('helper')) {
      throw new TapOptionsError('incoming-fds is incompatible with fd=, fds=, helper=');
    }
    if (has('ifname') || has('vnet_hdr') || has('sndbuf')) {
      throw new TapOptionsError('ifname=, vnet_hdr= and sndbuf= are invalid with incoming-fds=on: the TAP arrives from the source as it is configured there');
    }
    if (opts.script !== 'no' || opts.downscript !== 'no') {
      throw new TapOptionsError('incoming-fds=on requires script=no and downscript=no: the source still uses the TAP, so no script may set it up or tear it down');
    }
    if (!ctx.incoming) {
      throw new TapOptionsError('incoming-fds=on needs an incoming migration (-incoming): otherwise no TAP fd would ever arrive');
    }
  } else if (has('fd')) {
    // net/tap.c net_init_tap, the fd= branch.
    if (['ifname', 'script', 'downscript', 'vnet_hdr', 'helper', 'queues', 'fds'].some(has)) {
      throw new TapOptionsError('ifname=, script=, downscript=, vnet_hdr=, helper=, queues=, and fds= are invalid with fd=');
    }
  } else if (has('fds')) {
    if (['ifname', 'script', 'downscript', 'vnet_hdr', 'helper', 'queues'].some(has)) {
      throw new TapOptionsError('ifname=, script=, downscript=, vnet_hdr=, helper=, queues=, and fd= are invalid with fds=');
    }
  } else if (has('helper')) {
    if (['ifname', 'script', 'downscript', 'vnet_hdr'].some(has)) {
      throw new TapOptionsError('ifname=, script=, downscript=, and vnet_hdr= are invalid with helper=');
    }
  }

  const fds = has('fd') ? fdList(opts.fd!, 'fd') : has('fds') ? fdList(opts.fds!, 'fds') : [];
  if (has('fd') && fds.length !== 1) throw new TapOptionsError("Parameter 'fd' expects one file descriptor (use fds= for several)");
  if (fds.length) queues = fds.length;
  if (fds.length > MAX_TAP_QUEUES) throw new TapOptionsError(`at most ${MAX_TAP_QUEUES} fds are supported`);

  return {
    id, fds, queues: queues ?? 1, vhost, incomingFds,
    ...(opts.ifname !== undefined ? { ifname: opts.ifname } : {}),
    ...(opts.helper !== undefined ? { helper: opts.helper } : {}),
    ...(opts.script !== undefined ? { script: opts.script } : {}),
    ...(opts.downscript !== undefined ? { downscript: opts.downscript } : {}),
    ...(vnetHdr !== undefined ? { vnetHdr } : {}),
    ...(sndbuf !== undefined ? { sndbuf } : {}),
  };
}
