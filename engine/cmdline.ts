// The engine VM's command line, shaped like qemu-system-x86_64's (softmmu/vl.c, QemuOpts
// `key=value,...` groups). Parsing only: nothing is opened here. Errors carry QEMU's wording
// (`-netdev tap,...: Parameter 'queues' expects a number`) so a harness reads them the same.
import { isIpv4, isMac } from '../lib/net-addr.js';
import { parseRamSize } from './guest/ram.js';
import { TapOptionsError, validateTapOptions } from './guest/tap-options.js';

export interface TapNetdevConfig {
  id: string;
  /** TAP to attach to by name (TUNSETIFF); absent when fds are given. */
  ifname?: string;
  queues: number;
  vhost: boolean;
  /** Already-attached TAP fds inherited from the parent (`fd=N` or `fds=N:M`). */
  fds: number[];
  /** `incoming-fds=on`: open nothing; the TAP fds arrive with the incoming local migration. */
  incomingFds: boolean;
}

export interface NicConfig {
  /** Device id (`id=`), defaulting to the netdev's id as QEMU's qdev path would differ. */
  id: string;
  netdev: string;
  /** Colon-separated MAC. */
  mac: string;
  /** The device property of the local-migration series (default on): hand the TAP fds over on local migration. */
  localMigration: boolean;
}

export interface GuestConfig {
  /** Dotted IPv4; absent means the guest has no network configured and answers nothing. */
  ip?: string;
  prefix: number;
  gw?: string;
  /** Pages the vCPU dirties per second while running. */
  dirtyRate: number;
  /** Fraction of RAM pages given pseudo-random content at boot (`fill=0.5`), for migration tests and benchmarks. */
  fill: number;
}

export interface VmConfig {
  name?: string;
  memBytes: number;
  /** -S: do not start the vCPU until `cont`. */
  startPaused: boolean;
  netdevs: TapNetdevConfig[];
  nics: NicConfig[];
  guest: GuestConfig;
  /** UNIX socket paths of the QMP monitors. */
  qmp: string[];
  /** -incoming URI (`defer`, `unix:PATH`, `tcp:HOST:PORT`). */
  incoming?: string;
}

export class CmdlineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CmdlineError';
  }
}

/** The NIC's MAC when -device gives none (QEMU's default for the first NIC). */
export const DEFAULT_MAC = '52:54:00:12:34:56';

/** Splits a QemuOpts string; `,,` is a literal comma. The first item may be a bare value (the implied key). */
function splitOpts(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === ',' && text[i + 1] === ',') { cur += ','; i++; }
    else if (c === ',') { out.push(cur); cur = ''; }
    else cur += c;
  }
  out.push(cur);
  return out;
}

class Opts {
  private readonly map = new Map<string, string>();
  readonly implied: string | undefined;
  constructor(readonly option: string, readonly text: string, impliedKey: boolean) {
    const items = splitOpts(text);
    let first = true;
    for (const item of items) {
      const eq = item.indexOf('=');
      if (eq < 0 && first && impliedKey) { (this as { implied: string | undefined }).implied = item; first = false; continue; }
      first = false;
      // QEMU's bare `server` / `nowait` style flags mean on / off.
      if (eq < 0) {
        if (item.startsWith('no')) this.map.set(item.slice(2), 'off');
        else this.map.set(item, 'on');
        continue;
      }
      this.map.set(item.slice(0, eq), item.slice(eq + 1));
    }
  }
  private err(msg: string): CmdlineError { return new CmdlineError(`${this.option} ${this.text}: ${msg}`); }
  str(key: string): string | undefined {
    const v = this.map.get(key);
    this.map.delete(key);
    return v;
  }
  required(key: string): string {
    const v = this.str(key);
    if (v === undefined || v === '') throw this.err(`Parameter '${key}' is missing`);
    return v;
  }
  num(key: string, min: number): number | undefined {
    const v = this.str(key);
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v)) throw this.err(`Parameter '${key}' expects a number`);
    const n = Number(v);
    if (n < min) throw this.err(`Parameter '${key}' must be at least ${min}`);
    return n;
  }
  bool(key: string): boolean | undefined {
    const v = this.str(key);
    if (v === undefined) return undefined;
    if (v === 'on' || v === 'yes' || v === 'true') return true;
    if (v === 'off' || v === 'no' || v === 'false') return false;
    throw this.err(`Parameter '${key}' expects 'on' or 'off'`);
  }
  /** Every key not consumed yet, as a plain record (for validators that take the whole set). */
  rest(): Record<string, string> {
    const r = Object.fromEntries(this.map);
    this.map.clear();
    return r;
  }
  /** Rejects keys no one consumed, as QemuOpts does. */
  done(): void {
    for (const k of this.map.keys()) throw this.err(`Invalid parameter '${k}'`);
  }
  error(msg: string): CmdlineError { return this.err(msg); }
}

/** A netdev or device option refused; the command line prefixes its `-netdev ...:` context, QMP sends it as is. */
export class OptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OptionError';
  }
}

/**
 * A tap netdev's options (QemuOpts strings: `on`/`off`, numbers in decimal) checked and typed;
 * the one path for `-netdev tap,...` and QMP `netdev_add`. `incoming`: the VM is an incoming
 * migration that has not loaded yet, which `incoming-fds=on` needs.
 */
export function tapNetdevConfig(opts: Record<string, string>, ctx: { incoming: boolean }): TapNetdevConfig {
  let t;
  try {
    t = validateTapOptions(opts, ctx);
  } catch (e) {
    if (e instanceof TapOptionsError) throw new OptionError(e.message);
    throw e;
  }
  if (t.helper !== undefined) throw new OptionError('helper= is not supported: this engine runs no bridge helper');
  for (const [k, v] of [['script', t.script], ['downscript', t.downscript]] as const) {
    if (v !== undefined && v !== 'no' && v !== '') throw new OptionError(`Parameter '${k}' must be 'no': this engine runs no network scripts`);
  }
  if (!t.fds.length && !t.ifname && !t.incomingFds) throw new OptionError(`Parameter 'ifname' is missing (or pass fd=, fds= or incoming-fds=on)`);
  return { id: t.id, ...(t.ifname ? { ifname: t.ifname } : {}), queues: t.queues, vhost: t.vhost, fds: t.fds, incomingFds: t.incomingFds };
}

/** A virtio-net-pci device's properties checked; the one path for `-device` and QMP `device_add`. */
export function nicConfig(p: { id?: string; netdev: string; mac?: string; localMigration?: boolean }): NicConfig {
  const mac = p.mac ?? DEFAULT_MAC;
  if (!isMac(mac)) throw new OptionError(`Property 'virtio-net-pci.mac' doesn't take value '${mac}'`);
  return { id: p.id ?? p.netdev, netdev: p.netdev, mac: mac.toLowerCase(), localMigration: p.localMigration ?? true };
}

/** `-netdev tap,...`, checked by tapNetdevConfig once it is known whether the VM is incoming. */
function parseNetdev(text: string, incoming: boolean): TapNetdevConfig {
  const o = new Opts('-netdev', text, true);
  if (o.implied !== 'tap') throw o.error(`Parameter 'type' expects a netdev backend type ('tap' is the one this engine has)`);
  try {
    return tapNetdevConfig(o.rest(), { incoming });
  } catch (e) {
    if (e instanceof OptionError) throw o.error(e.message);
    throw e;
  }
}

function parseDevice(text: string): NicConfig {
  const o = new Opts('-device', text, true);
  if (o.implied !== 'virtio-net-pci') throw o.error(`'${o.implied ?? ''}' is not a valid device model name (this engine has virtio-net-pci)`);
  const netdev = o.required('netdev');
  const mac = o.str('mac');
  const id = o.str('id');
  const localMigration = o.bool('local-migration');
  o.done();
  try {
    return nicConfig({ netdev, ...(id !== undefined ? { id } : {}), ...(mac !== undefined ? { mac } : {}), ...(localMigration !== undefined ? { localMigration } : {}) });
  } catch (e) {
    if (e instanceof OptionError) throw o.error(e.message);
    throw e;
  }
}

function parseGuest(text: string): GuestConfig {
  const o = new Opts('-guest', text, false);
  const ipText = o.str('ip');
  const gw = o.str('gw');
  const dirtyRate = o.num('dirty-rate', 0) ?? 0;
  const fillText = o.str('fill');
  o.done();
  const fill = fillText === undefined ? 0 : Number(fillText);
  if (fillText !== undefined && !(/^[\d.]+$/.test(fillText) && fill >= 0 && fill <= 1)) throw o.error(`Parameter 'fill' expects a fraction between 0 and 1`);
  const guest: GuestConfig = { prefix: 24, dirtyRate, fill };
  if (ipText !== undefined) {
    const [ip, prefixText] = ipText.split('/');
    if (!ip || !isIpv4(ip)) throw o.error(`Parameter 'ip' expects an IPv4 address A.B.C.D/N`);
    const prefix = prefixText === undefined ? 24 : Number(prefixText);
    if (!/^\d+$/.test(prefixText ?? '24') || prefix < 1 || prefix > 32) throw o.error(`Parameter 'ip' has an invalid prefix length '/${prefixText}'`);
    guest.ip = ip;
    guest.prefix = prefix;
  }
  if (gw !== undefined) {
    if (!isIpv4(gw)) throw o.error(`Parameter 'gw' expects an IPv4 address`);
    guest.gw = gw;
  }
  return guest;
}

function parseQmp(text: string): string {
  const o = new Opts('-qmp', text, true);
  const target = o.implied ?? '';
  if (!target.startsWith('unix:') || target.length <= 5) throw o.error(`only unix:PATH monitors are supported`);
  const server = o.bool('server') ?? false;
  const wait = o.bool('wait') ?? true;
  o.done();
  if (!server) throw o.error(`'server=on' is required: the engine listens, it does not connect`);
  if (wait) throw o.error(`'wait=off' is required: the engine does not block waiting for a client`);
  return target.slice(5);
}

function checkIncoming(uri: string): string {
  if (uri === 'defer' || /^unix:.+/.test(uri) || /^tcp:[^:]*:\d+$/.test(uri)) return uri;
  throw new CmdlineError(`-incoming ${uri}: unknown migration protocol (use defer, unix:PATH or tcp:HOST:PORT)`);
}

/** Parses the VM's arguments (without the `vm` subcommand). Throws CmdlineError. */
export function parseCmdline(argv: string[]): VmConfig {
  const cfg: VmConfig = {
    memBytes: 128 * 2 ** 20, startPaused: false, netdevs: [], nics: [], guest: { prefix: 24, dirtyRate: 0, fill: 0 }, qmp: [],
  };
  const netdevTexts: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const opt = argv[i]!;
    const flag = opt.replace(/^--/, '-');
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new CmdlineError(`${opt}: requires an argument`);
      return v;
    };
    switch (flag) {
      case '-S': cfg.startPaused = true; break;
      case '-name': {
        const o = new Opts('-name', value(), true);
        const name = o.str('guest') ?? o.implied;
        o.done();
        if (name !== undefined) cfg.name = name;
        break;
      }
      case '-m': {
        const text = value();
        const o = new Opts('-m', text, true);
        const size = o.str('size') ?? o.implied;
        o.done();
        try { cfg.memBytes = parseRamSize(size ?? ''); } catch (e) { throw new CmdlineError(`-m ${text}: ${(e as Error).message}`); }
        break;
      }
      case '-netdev': netdevTexts.push(value()); break;
      case '-device': cfg.nics.push(parseDevice(value())); break;
      case '-guest': cfg.guest = parseGuest(value()); break;
      case '-qmp': cfg.qmp.push(parseQmp(value())); break;
      case '-incoming': cfg.incoming = checkIncoming(value()); break;
      default: throw new CmdlineError(`${opt}: invalid option`);
    }
  }
  for (const text of netdevTexts) cfg.netdevs.push(parseNetdev(text, cfg.incoming !== undefined));
  const waiting = cfg.netdevs.find((n) => n.incomingFds);
  if (waiting && cfg.incoming && cfg.incoming !== 'defer' && !cfg.incoming.startsWith('unix:')) {
    throw new CmdlineError(`-incoming ${cfg.incoming}: netdev '${waiting.id}' waits for TAP fds (incoming-fds=on), which only a unix: migration channel can carry`);
  }
  const ids = new Set<string>();
  for (const n of cfg.netdevs) {
    if (ids.has(n.id)) throw new CmdlineError(`-netdev tap,id=${n.id}: Duplicate ID '${n.id}' for netdev`);
    ids.add(n.id);
  }
  const used = new Set<string>();
  for (const d of cfg.nics) {
    if (!ids.has(d.netdev)) throw new CmdlineError(`-device virtio-net-pci,netdev=${d.netdev}: Property 'virtio-net-pci.netdev' can't find value '${d.netdev}'`);
    if (used.has(d.netdev)) throw new CmdlineError(`-device virtio-net-pci,netdev=${d.netdev}: Property 'virtio-net-pci.netdev' can't take value '${d.netdev}', it's in use`);
    used.add(d.netdev);
  }
  if (cfg.nics.length > 1) throw new CmdlineError(`-device virtio-net-pci: the engine guest has one NIC; ${cfg.nics.length} were given`);
  return cfg;
}
