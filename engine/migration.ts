// Live migration between two engine VMs, following QEMU's migration/migration.c:
// - source: setup -> active (precopy passes, one dirty-bitmap sync per pass, MIGRATION_PASS)
//   until the remaining bytes fit downtime-limit at the measured bandwidth, then stop
//   (STOP, run state finish-migrate), [pre-switchover -> device with pause-before-switchover],
//   the last dirty pages, device state, EOF -> completed (run state postmigrate).
//   Any failure or cancel restarts the guest if migration had stopped it (migrate_fd_cleanup).
// - destination: none (listening) -> active (connected) -> completed, then the guest starts
//   (or stays paused with -S until `cont`), sends VM_STARTED on the return path and announces
//   itself (RARP rounds, then the guest's gratuitous ARP). A stream it cannot load makes it
//   print the reason and exit 1, as QEMU's process_incoming_migration_co does.
//
// Downtime: with the return path, from the source's stop to the destination's VM_STARTED (the
// netpass series' RP_VM_STARTED), so a `-S` destination that waits for `cont` counts in full.
// Without it, QEMU's classic definition: from the stop to the moment the source has handed
// the last byte to the channel (migration_completion); the destination's start is not seen.
// With the return path the source reports `completed` when the destination answers the ping
// section sent after the device state (it then holds the whole state); until VM_STARTED
// arrives (a `-S` destination before `cont`), `downtime` shows the classic value.
//
// netpass (capability `netpass`, the series "migration: Pass network packets received during
// switchover to dest VM"): from the source's stop, its NIC keeps reading the TAP into a bounded
// cache (engine/netpass.ts) instead of the guest; on VM_STARTED the source streams the cache
// after EOF, then an end marker, and the destination injects the frames into its guest. If the
// migration fails, the source guest gets the cached frames itself when it resumes.
// The channel stays open until the destination sends SHUT, after the end marker.
import { IncomingListener, MigrationChannel, parseMigrationUri } from './migration-channel.js';
import { ANNOUNCE_DEFAULTS, Announcer, checkAnnounceParams, gratuitousArpFrame, rarpFrame, type AnnounceParams } from './announce.js';
import { intToIp } from './guest-net.js';
import { NETPASS_DEFAULTS, NetpassCache } from './netpass.js';
import type { GuestNetState } from './guest-net.js';
import { StreamDecoder, StreamEncoder, StreamError, type DeviceState, type StreamSection } from './migration-stream.js';
import type { CommandDef } from './qmp-commands.js';
import type {
  MigrationCapabilityName, MigrationCapabilityStatus, MigrationInfo, MigrationParameters, MigrationStatus,
} from './qmp-protocol.js';
import { QmpError } from './qmp-server.js';
import { PAGE_SIZE } from './ram.js';
import { ReturnPathReader, ReturnPathWriter } from './return-path.js';
import type { Vm } from './vm.js';

// Only what the engine implements is advertised, so a harness probing the capability and
// parameter lists reports a scenario that needs more as unsupported (`local` joins the
// parameters with its implementation).
const CAPABILITIES: MigrationCapabilityName[] = ['events', 'return-path', 'x-ignore-shared', 'pause-before-switchover', 'netpass'];

/** QEMU's defaults (migration/options.c): 300 ms downtime, 128 MiB/s, announce 50/550/5/100. */
export const DEFAULT_PARAMETERS: Required<Pick<MigrationParameters,
  'downtime-limit' | 'max-bandwidth' | 'announce-initial' | 'announce-max' | 'announce-rounds' | 'announce-step'
  | 'netpass-max-packets' | 'netpass-max-bytes'>> = {
  'downtime-limit': 300,
  'max-bandwidth': 128 * 2 ** 20,
  'announce-initial': ANNOUNCE_DEFAULTS.initial,
  'announce-max': ANNOUNCE_DEFAULTS.max,
  'announce-rounds': ANNOUNCE_DEFAULTS.rounds,
  'announce-step': ANNOUNCE_DEFAULTS.step,
  'netpass-max-packets': NETPASS_DEFAULTS.maxPackets,
  'netpass-max-bytes': NETPASS_DEFAULTS.maxBytes,
};

/** Bandwidth-measurement window (QEMU's BUFFER_DELAY). */
const WINDOW_MS = 100;
/** Bytes encoded before handing them to the channel. */
const CHUNK_BYTES = 1024 * 1024;
/**
 * After VM_STARTED the source keeps forwarding until its TAP has been quiet this long: frames
 * the bridge sent before the destination's announce moved the MAC may still sit in the kernel
 * queue of the source TAP, not yet read.
 */
const NETPASS_QUIET_MS = 50;
/** ...but not longer than this after VM_STARTED (broadcasts keep reaching the old port). */
const NETPASS_MAX_TAIL_MS = 1000;
/** Ping id of the section the source sends after the device state: its PONG means "all state received". */
const FINAL_PING_ID = 0xffffffff;

type Emit = (event: string, data?: Record<string, unknown>) => void;

class Cancelled extends Error {
  constructor() { super('migration cancelled'); this.name = 'Cancelled'; }
}

/** Migration settings and the current source / destination of one VM. */
export class Migration {
  readonly caps = new Map<MigrationCapabilityName, boolean>(CAPABILITIES.map((c) => [c, false]));
  params: typeof DEFAULT_PARAMETERS = { ...DEFAULT_PARAMETERS };
  source: MigrationSource | null = null;
  incoming: MigrationDestination | null = null;

  constructor(readonly vm: Vm, readonly emit: Emit, readonly exit: (code: number) => void) {}

  cap(c: MigrationCapabilityName): boolean { return this.caps.get(c) ?? false; }

  /** MIGRATION event, only with the `events` capability (migrate_set_state). */
  statusEvent(status: MigrationStatus): void {
    if (this.cap('events')) this.emit('MIGRATION', { status });
  }

  get active(): boolean {
    const s = this.source?.status;
    return s === 'setup' || s === 'active' || s === 'pre-switchover' || s === 'device' || s === 'cancelling';
  }

  announceParams(): AnnounceParams {
    return { initial: this.params['announce-initial'], max: this.params['announce-max'], rounds: this.params['announce-rounds'], step: this.params['announce-step'] };
  }

  /** RARP rounds on QEMU's schedule from the NIC's MAC, then the guest's gratuitous ARP. */
  announce(p: AnnounceParams): Announcer | null {
    const nic = this.vm.nic;
    if (!nic) return null;
    const rarp = rarpFrame(nic.mac);
    const a = new Announcer(p, () => { if (this.vm.running) nic.transmit(rarp, rarp.length); });
    const ip = this.vm.guest.ipAddress;
    if (ip !== 0) {
      const garp = gratuitousArpFrame(nic.mac, intToIp(ip));
      void a.finished.then(() => { if (this.vm.running) nic.transmit(garp, garp.length); });
    }
    a.start();
    return a;
  }

  info(): MigrationInfo {
    if (this.source && (this.source.status !== 'none')) return this.source.info();
    if (this.incoming && this.incoming.status !== 'none') return this.incoming.info();
    return {};
  }

  /** Starts listening for an incoming migration (`-incoming URI` or `migrate-incoming`). */
  async listenIncoming(uri: string): Promise<void> {
    const dest = new MigrationDestination(this);
    this.incoming = dest;
    await dest.listen(uri);
  }

  commands(): Map<string, CommandDef> {
    const t = new Map<string, CommandDef>();
    const none = {};
    t.set('migrate', {
      args: { uri: { type: 'str' }, detach: { type: 'bool', optional: true }, resume: { type: 'bool', optional: true }, blk: { type: 'bool', optional: true }, inc: { type: 'bool', optional: true } },
      run: (a) => {
        if (a.resume) throw new QmpError('GenericError', 'Postcopy recovery (resume) is not supported by this engine');
        if (this.active) throw new QmpError('GenericError', "There's a migration process in progress");
        if (this.vm.runState === 'inmigrate') throw new QmpError('GenericError', 'Guest is waiting for an incoming migration');
        const vhost = this.vm.netdevs.find((n) => n.config.vhost);
        if (this.cap('netpass') && vhost) {
          throw new QmpError('GenericError', `Capability netpass cannot be used with netdev '${vhost.config.id}' (vhost=on): filters do not see vhost queues; use vhost=off`);
        }
        try { parseMigrationUri(a.uri as string); } catch (e) { throw new QmpError('GenericError', (e as Error).message); }
        const src = new MigrationSource(this);
        this.source = src;
        void src.run(a.uri as string);
        return {};
      },
    });
    t.set('migrate-incoming', {
      args: { uri: { type: 'str' } },
      run: async (a) => {
        if (this.vm.config.incoming !== 'defer') throw new QmpError('GenericError', "'-incoming' was not specified on the command line");
        if (this.incoming) throw new QmpError('GenericError', 'The incoming migration has already been started');
        try {
          parseMigrationUri(a.uri as string);
          await this.listenIncoming(a.uri as string);
        } catch (e) {
          this.incoming = null;
          throw new QmpError('GenericError', (e as Error).message);
        }
        return {};
      },
    });
    t.set('migrate_cancel', { args: none, run: () => { this.source?.cancel(); return {}; } });
    t.set('migrate-continue', {
      args: { state: { type: 'str' } },
      run: (a) => {
        const s = this.source;
        if (!s || s.status !== a.state) {
          throw new QmpError('GenericError', `Migration not in expected state: ${s?.status ?? 'none'}`);
        }
        s.continueFromPause();
        return {};
      },
    });
    t.set('query-migrate', { args: none, run: () => this.info() });
    t.set('migrate-set-capabilities', {
      args: { capabilities: { type: 'array' } },
      run: (a) => {
        if (this.active) throw new QmpError('GenericError', "There's a migration process in progress");
        const list = a.capabilities as unknown[];
        const parsed: MigrationCapabilityStatus[] = [];
        for (const item of list) {
          const c = item as { capability?: unknown; state?: unknown };
          if (typeof c !== 'object' || c === null || typeof c.capability !== 'string' || typeof c.state !== 'boolean') {
            throw new QmpError('GenericError', "Invalid parameter type for 'capabilities', expected: MigrationCapabilityStatus");
          }
          if (!CAPABILITIES.includes(c.capability as MigrationCapabilityName)) {
            throw new QmpError('GenericError', `Parameter 'capability' does not accept value '${c.capability}'`);
          }
          parsed.push({ capability: c.capability as MigrationCapabilityName, state: c.state });
        }
        const next = new Map(this.caps);
        for (const c of parsed) next.set(c.capability, c.state);
        if (next.get('netpass') && !next.get('return-path')) {
          throw new QmpError('GenericError', "Capability netpass requires capability return-path: netpass forwards frames after the destination's VM_STARTED");
        }
        for (const [c, v] of next) this.caps.set(c, v);
        return {};
      },
    });
    t.set('query-migrate-capabilities', {
      args: none,
      run: () => CAPABILITIES.map((c) => ({ capability: c, state: this.cap(c) })),
    });
    t.set('migrate-set-parameters', {
      args: {
        'downtime-limit': { type: 'int', optional: true }, 'max-bandwidth': { type: 'int', optional: true },
        'announce-initial': { type: 'int', optional: true }, 'announce-max': { type: 'int', optional: true },
        'announce-rounds': { type: 'int', optional: true }, 'announce-step': { type: 'int', optional: true },
        'netpass-max-packets': { type: 'int', optional: true }, 'netpass-max-bytes': { type: 'int', optional: true },
      },
      run: (a) => {
        const next = { ...this.params, ...(a as Partial<typeof DEFAULT_PARAMETERS>) };
        checkParams(next);
        this.params = next;
        return {};
      },
    });
    t.set('query-migrate-parameters', { args: none, run: () => ({ ...this.params }) });
    t.set('announce-self', {
      args: { initial: { type: 'int' }, max: { type: 'int' }, rounds: { type: 'int' }, step: { type: 'int' }, interfaces: { type: 'array', optional: true }, id: { type: 'str', optional: true } },
      run: (a) => {
        const p = { initial: a.initial as number, max: a.max as number, rounds: a.rounds as number, step: a.step as number };
        try { checkAnnounceParams(p); } catch (e) { throw new QmpError('GenericError', (e as Error).message); }
        this.announce(p);
        return {};
      },
    });
    return t;
  }
}

/** migrate_params_check ranges and messages. */
function checkParams(p: typeof DEFAULT_PARAMETERS): void {
  const bad = (msg: string): never => { throw new QmpError('GenericError', msg); };
  if (p['downtime-limit'] < 0 || p['downtime-limit'] > 2_000_000) {
    bad("Parameter 'downtime_limit' expects an integer in the range of 0 to 2000000 milliseconds");
  }
  if (p['max-bandwidth'] < 0 || p['max-bandwidth'] > Number.MAX_SAFE_INTEGER) {
    bad("Parameter 'max_bandwidth' expects an integer in the range of 0 to 9007199254740991 bytes/second");
  }
  try {
    checkAnnounceParams({ initial: p['announce-initial'], max: p['announce-max'], rounds: p['announce-rounds'], step: p['announce-step'] });
  } catch (e) { bad((e as Error).message); }
  if (p['netpass-max-packets'] < 0) bad("Parameter 'netpass-max-packets' expects a non-negative integer");
  if (p['netpass-max-bytes'] < 0) bad("Parameter 'netpass-max-bytes' expects a non-negative integer");
}

function deviceState(vm: Vm): DeviceState {
  const g = vm.guest.save();
  return {
    nic: { mac: vm.guest.macText, rxEnabled: true, queues: vm.nic?.netdev.queues.length ?? 1 },
    guest: {
      ip: g.ip ?? '', prefixLength: g.prefix,
      arpCache: g.arp.map(([ip, mac]) => ({ ip, mac })),
      udp: [vm.guest.echo.info(), vm.guest.sink.info()],
      extra: { net: g },
    },
  };
}

export class MigrationSource {
  status: MigrationStatus = 'none';
  private readonly startTime = performance.now();
  private setupTime = 0;
  private endTime = 0;
  private stopTime = 0;
  private downtime: number | undefined;
  private expectedDowntime = 0;
  private errorDesc: string | undefined;
  private channel: MigrationChannel | null = null;
  private cancelled = false;
  private stoppedGuest = false;
  private readonly enc = new StreamEncoder();
  // RAM statistics (query-migrate `ram`).
  private duplicate = 0;
  private normal = 0;
  private passes = 0;
  private pagesLeftInPass = 0;
  private dirtyPagesRate = 0;
  private lastSyncTime = performance.now();
  private bandwidth = 0; // bytes per ms, last complete window
  private pagesPerSecond = 0;
  private windowStart = 0;
  private windowBytes = 0;
  private windowPages = 0;
  private limit = 0;
  private limitStart = 0;
  private limitBytes = 0;
  private unpause: ((ok: boolean) => void) | null = null;
  private pongWaiter: ((id: number) => void) | null = null;
  private rpFailure: Error | null = null;
  private failureWaiters: Array<(e: Error) => void> = [];
  /** Frames received after the stop, with the netpass capability. */
  private netpass: NetpassCache | null = null;
  private netpassSending = false;
  private netpassLastFrame = 0;

  constructor(private readonly mig: Migration) {}

  private get vm(): Vm { return this.mig.vm; }

  private setStatus(s: MigrationStatus): void {
    this.status = s;
    this.mig.statusEvent(s);
  }

  info(): MigrationInfo {
    const now = performance.now();
    const info: MigrationInfo = { status: this.status };
    if (this.status === 'setup') return info;
    info['setup-time'] = Math.round(this.setupTime);
    const ended = this.status === 'completed' || this.status === 'failed' || this.status === 'cancelled';
    info['total-time'] = Math.round((ended ? this.endTime : now) - this.startTime);
    if (this.status === 'completed' && this.downtime !== undefined) info.downtime = Math.round(this.downtime);
    const remainingPages = this.status === 'completed' ? 0 : this.pagesLeftInPass + this.vm.ram.dirtyCount;
    if (this.status === 'active') {
      // What stopping now would cost at the measured bandwidth (QEMU's expected_downtime).
      info['expected-downtime'] = this.bandwidth > 0 ? Math.round((remainingPages * PAGE_SIZE) / this.bandwidth) : Math.round(this.expectedDowntime);
    }
    const transferred = this.channel?.bytesSent ?? 0;
    info.ram = {
      total: this.vm.ram.size, transferred, remaining: remainingPages * PAGE_SIZE,
      duplicate: this.duplicate, normal: this.normal, 'normal-bytes': this.normal * PAGE_SIZE,
      'dirty-sync-count': this.passes, 'dirty-pages-rate': Math.round(this.dirtyPagesRate),
      mbps: Math.round(((this.bandwidth * 1000 * 8) / 1e6) * 1000) / 1000,
      'pages-per-second': Math.round(this.pagesPerSecond),
    };
    if (this.netpass) info.netpass = this.netpass.stats;
    if (this.errorDesc) info['error-desc'] = this.errorDesc;
    return info;
  }

  /** migrate_cancel: cancelling, then cancelled once the channel is torn down. */
  cancel(): void {
    if (this.status === 'completed' || this.status === 'failed' || this.status === 'cancelled' || this.status === 'cancelling' || this.status === 'none') return;
    this.cancelled = true;
    this.setStatus('cancelling');
    this.unpause?.(false);
    this.channel?.destroy();
    this.failAll(new Cancelled());
  }

  /** migrate-continue from pre-switchover. */
  continueFromPause(): void {
    this.unpause?.(true);
  }

  async run(uri: string): Promise<void> {
    this.setStatus('setup');
    try {
      this.channel = await MigrationChannel.connect(uri);
      if (this.cancelled) { this.channel.destroy(); throw new Cancelled(); }
      const ch = this.channel;
      ch.onClose(() => this.failAll(ch.error ?? new Error('migration channel closed')));
      const returnPath = this.mig.cap('return-path');
      if (returnPath) this.readReturnPath(ch);
      const ram = this.vm.ram;
      const netpass = returnPath && this.mig.cap('netpass');
      this.enc.header({ ramSize: ram.size, local: false, netpass, returnPath, queues: this.vm.nic?.netdev.queues.length ?? 1 });
      await this.send(this.enc.flush(), false);
      this.setupTime = performance.now() - this.startTime;
      this.setStatus('active');
      ram.markAllDirty();
      this.windowStart = performance.now();
      for (;;) {
        await this.pass(true);
        const remaining = ram.dirtyCount * PAGE_SIZE;
        const bw = this.bandwidth > 0 ? this.bandwidth : Infinity;
        this.expectedDowntime = remaining / bw;
        if (this.expectedDowntime <= this.mig.params['downtime-limit']) break;
      }
      await this.complete(returnPath, netpass);
    } catch (e) {
      this.fail(e as Error);
    }
  }

  /** Stop-and-copy: stop the guest, last pass, device state, EOF; completed. */
  private async complete(returnPath: boolean, netpass: boolean): Promise<void> {
    // Only a guest that migration itself stopped is restarted on failure (migrate_fd_cleanup).
    this.stoppedGuest = this.vm.running;
    this.vm.stopTo('finish-migrate');
    this.stopTime = performance.now();
    if (netpass) this.startNetpass();
    if (this.mig.cap('pause-before-switchover')) {
      this.setStatus('pre-switchover');
      const go = await new Promise<boolean>((resolve) => { this.unpause = resolve; });
      this.unpause = null;
      if (!go) throw new Cancelled();
      this.setStatus('device');
    }
    await this.pass(false);
    this.enc.device(deviceState(this.vm));
    this.enc.ping(FINAL_PING_ID);
    this.enc.eof();
    await this.send(this.enc.flush(), false);
    await this.waitChannel(this.channel!.flushed());
    if (returnPath) {
      // The destination has every section when it answers the final ping.
      await this.waitChannel(new Promise<void>((resolve) => {
        this.pongWaiter = (id) => { if (id === FINAL_PING_ID) { this.pongWaiter = null; resolve(); } };
      }));
    }
    this.endTime = performance.now();
    // Classic downtime (QEMU's migration_completion); replaced by VM_STARTED when it arrives.
    this.downtime ??= this.endTime - this.stopTime;
    this.vm.setRunState('postmigrate');
    this.setStatus('completed');
    this.failureWaiters = [];
    if (!returnPath) this.channel!.socket.end();
  }

  /** One RAM pass: sync the dirty bitmap, send those pages (rate-limited during precopy). */
  private async pass(limited: boolean): Promise<void> {
    const ram = this.vm.ram;
    const now = performance.now();
    const pages = ram.syncDirty();
    const sinceSync = (now - this.lastSyncTime) / 1000;
    if (this.passes > 0 && sinceSync > 0) this.dirtyPagesRate = pages.length / sinceSync;
    this.lastSyncTime = now;
    const pass = ++this.passes;
    if (this.mig.cap('events')) this.mig.emit('MIGRATION_PASS', { pass });
    this.enc.passStart(pass);
    this.pagesLeftInPass = pages.length;
    // Under a bandwidth limit, writes of a tenth of a second's allowance keep the rate smooth.
    const limit = this.mig.params['max-bandwidth'];
    const chunk = limited && limit > 0 ? Math.max(64 * 1024, Math.min(CHUNK_BYTES, limit / 10)) : CHUNK_BYTES;
    for (let i = 0; i < pages.length; i++) {
      const p = pages[i]!;
      if (ram.isZero(p)) { this.enc.zeroPage(p); this.duplicate++; }
      else { this.enc.page(p, ram.read(p)); this.normal++; }
      this.windowPages++;
      if (this.enc.pending >= chunk) {
        this.pagesLeftInPass = pages.length - i - 1;
        await this.send(this.enc.flush(), limited);
      }
    }
    this.pagesLeftInPass = 0;
    this.enc.passEnd(pass, pages.length);
    await this.send(this.enc.flush(), limited);
  }

  /** Hands bytes to the channel; honours max-bandwidth per 100 ms window and measures bandwidth. */
  private async send(buf: Buffer, limited: boolean): Promise<void> {
    if (this.cancelled) throw new Cancelled();
    if (buf.length) await this.waitChannel(this.channel!.send(buf));
    this.windowBytes += buf.length;
    const limit = this.mig.params['max-bandwidth'];
    let now = performance.now();
    if (limited && limit > 0) {
      // Average rate since the limit took effect (a change of max-bandwidth restarts it).
      if (limit !== this.limit) { this.limit = limit; this.limitStart = now; this.limitBytes = 0; }
      this.limitBytes += buf.length;
      const wait = this.limitStart + (this.limitBytes / limit) * 1000 - now;
      if (wait > 0) await this.waitChannel(new Promise<void>((r) => setTimeout(r, wait)));
      now = performance.now();
    } else if (!limited) {
      this.limit = 0;
    }
    const elapsed = now - this.windowStart;
    if (elapsed >= WINDOW_MS) {
      this.bandwidth = this.windowBytes / elapsed;
      this.pagesPerSecond = (this.windowPages * 1000) / elapsed;
      this.windowStart = now;
      this.windowBytes = 0;
      this.windowPages = 0;
    } else if (this.bandwidth === 0 && elapsed > 0 && this.windowBytes > 0) {
      // Before the first full window, the best estimate is what was seen so far.
      this.bandwidth = this.windowBytes / elapsed;
    }
    if (this.cancelled) throw new Cancelled();
  }

  /** Races `p` against a channel failure, a return-path FAIL or cancel. */
  private waitChannel<T>(p: Promise<T>): Promise<T> {
    if (this.rpFailure) return Promise.reject(this.rpFailure);
    return new Promise<T>((resolve, reject) => {
      const onFail = (e: Error): void => reject(e);
      this.failureWaiters.push(onFail);
      p.then((v) => { this.dropWaiter(onFail); resolve(v); }, (e: Error) => { this.dropWaiter(onFail); reject(e); });
    });
  }

  private dropWaiter(w: (e: Error) => void): void {
    const i = this.failureWaiters.indexOf(w);
    if (i >= 0) this.failureWaiters.splice(i, 1);
  }

  private failAll(e: Error): void {
    this.rpFailure ??= e;
    for (const w of this.failureWaiters.splice(0)) w(e);
  }

  private readReturnPath(ch: MigrationChannel): void {
    new ReturnPathReader(ch, {
      shut: () => ch.socket.end(),
      pong: (id) => this.pongWaiter?.(id),
      vmStarted: () => {
        if (this.stopTime) this.downtime = performance.now() - this.stopTime;
        if (this.netpass) void this.forwardNetpass();
      },
      fdsReady: () => this.failAll(new Error('destination asked for TAP fds, but this is not a local migration')),
      fail: (reason) => this.failAll(new Error(`destination failed to load the migration: ${reason}`)),
      invalid: (err) => this.failAll(new Error(`invalid return-path message: ${err.message}`, { cause: err })),
    });
  }

  /** The guest has stopped: keep reading the TAP, into the cache instead of the guest. */
  private startNetpass(): void {
    const nic = this.vm.nic;
    if (!nic) return;
    const cache = new NetpassCache({ maxPackets: this.mig.params['netpass-max-packets'], maxBytes: this.mig.params['netpass-max-bytes'] });
    this.netpass = cache;
    nic.rxHook = (buf, len) => {
      this.netpassLastFrame = performance.now();
      cache.push(buf.subarray(0, len), Date.now());
    };
    nic.startRx();
  }

  /**
   * VM_STARTED: stream the cached frames in arrival order, and those that still arrive, until
   * the TAP is quiet; then the end marker, and the source NIC stops reading (postmigrate).
   */
  private async forwardNetpass(): Promise<void> {
    const cache = this.netpass!;
    if (this.netpassSending) return;
    this.netpassSending = true;
    let sent = 0;
    const started = performance.now();
    try {
      for (;;) {
        for (const f of cache.drain()) {
          this.enc.netpassFrame(f.tMs, f.frame);
          sent++;
          if (this.enc.pending >= CHUNK_BYTES) await this.waitChannel(this.channel!.send(this.enc.flush()));
        }
        if (this.enc.pending) await this.waitChannel(this.channel!.send(this.enc.flush()));
        const now = performance.now();
        if (cache.held === 0 && (now - Math.max(this.netpassLastFrame, started) >= NETPASS_QUIET_MS || now - started >= NETPASS_MAX_TAIL_MS)) break;
        await this.waitChannel(new Promise<void>((r) => setTimeout(r, 5)));
      }
      // Nothing is awaited between the last look at the cache and the end marker.
      this.stopNetpassRx();
      this.enc.netpassEnd(sent, cache.stats.dropped);
      await this.waitChannel(this.channel!.send(this.enc.flush()));
    } catch (e) {
      this.stopNetpassRx();
      process.stderr.write(`switchover-vm: netpass: forwarding to the destination failed after ${sent} frame(s): ${(e as Error).message}\n`);
    }
  }

  private stopNetpassRx(): void {
    const nic = this.vm.nic;
    if (!nic || !nic.rxHook) return;
    nic.rxHook = null;
    if (!this.vm.running) nic.stopRx();
  }

  /** failed or cancelled; the guest runs again if migration had stopped it. */
  private fail(e: Error): void {
    if (this.status === 'completed') return;
    this.endTime = performance.now();
    this.channel?.destroy();
    this.unpause = null;
    if (this.cancelled || e instanceof Cancelled) {
      if (this.status !== 'cancelling') this.setStatus('cancelling');
      this.errorDesc = undefined;
    } else {
      this.errorDesc = e.message;
      process.stderr.write(`switchover-vm: migration failed: ${e.message}\n`);
    }
    // Frames cached during the failed switchover go to the guest that now runs again, in order,
    // before anything newer is read from the TAP.
    const cached = this.netpass?.takeAll() ?? [];
    if (this.vm.nic) this.vm.nic.rxHook = null;
    if (this.stoppedGuest) {
      this.vm.start();
      for (const f of cached) this.vm.guest.receive(f.frame, f.frame.length);
    } else if (this.netpass && !this.vm.running) {
      this.vm.nic?.stopRx();
    }
    this.setStatus(this.cancelled || e instanceof Cancelled ? 'cancelled' : 'failed');
  }
}

export class MigrationDestination {
  status: MigrationStatus = 'none';
  private listener: IncomingListener | null = null;
  private channel: MigrationChannel | null = null;
  private rp: ReturnPathWriter | null = null;
  private readonly startTime = performance.now();
  private endTime = 0;
  private loaded = false;
  private guestStarted = false;
  private shutSent = false;
  private decoder: StreamDecoder | null = null;
  private announcer: Announcer | null = null;

  constructor(private readonly mig: Migration) {}

  private get vm(): Vm { return this.mig.vm; }

  private setStatus(s: MigrationStatus): void {
    this.status = s;
    this.mig.statusEvent(s);
  }

  info(): MigrationInfo {
    const info: MigrationInfo = { status: this.status };
    if (this.status === 'completed' || this.status === 'failed') info['total-time'] = Math.round(this.endTime - this.startTime);
    return info;
  }

  async listen(uri: string): Promise<void> {
    // QEMU 7.2's destination stays `none` while listening; `active` comes with the connection
    // (process_incoming_migration_co).
    this.listener = await IncomingListener.listen(uri, (ch) => this.accept(ch));
  }

  private accept(ch: MigrationChannel): void {
    this.listener = null;
    this.channel = ch;
    this.setStatus('active');
    this.decoder = new StreamDecoder({ ramSize: this.vm.ram.size, queues: this.vm.nic?.netdev.queues.length ?? 1 });
    ch.onData((chunk) => {
      if (this.status === 'failed') return;
      try {
        for (const s of this.decoder!.push(chunk)) this.section(s);
      } catch (e) {
        this.fail(e as Error);
      }
    });
    ch.onClose(() => {
      if (this.status === 'failed' || (this.decoder!.done && this.loaded)) return;
      if (this.loaded) {
        // The guest already runs here: a source that goes away during netpass costs frames, not the VM.
        process.stderr.write('switchover-vm: netpass: the migration channel closed before the end marker\n');
        return;
      }
      try {
        this.decoder!.end();
        if (!this.loaded) throw new StreamError('channel closed before the VM state was complete');
      } catch (e) {
        this.fail(e as Error);
      }
    });
    this.vm.onRunState = (s) => { if (s === 'running' && this.loaded && !this.guestStarted) this.guestRuns(); };
  }

  private section(s: StreamSection): void {
    const ram = this.vm.ram;
    switch (s.type) {
      case 'header':
        if (s.header.returnPath) this.rp = new ReturnPathWriter(this.channel!);
        break;
      case 'page': ram.write(s.index, s.data); break;
      case 'zero': for (let p = s.index; p < s.index + s.count; p++) ram.clear(p); break;
      case 'ping': this.rp?.send({ type: 'pong', id: s.id }); break;
      case 'device': this.loadDevice(s.state); break;
      case 'eof': this.finishLoad(); break;
      case 'netpass-frame':
        // Injected into the guest's receive path in stream order (the guest runs: VM_STARTED went first).
        this.vm.guest.receive(s.frame, s.frame.length);
        this.vm.guest.recordNetpassInjected(Date.now() - s.timeMs);
        break;
      case 'netpass-end':
        if (s.dropped) process.stderr.write(`switchover-vm: netpass: the source dropped ${s.dropped} frame(s) on cache overflow\n`);
        break;
      case 'pass-start': case 'pass-end': case 'tap-local': case 'fds-sent': break;
    }
    if (this.decoder!.done) this.maybeShut();
  }

  private loadDevice(d: DeviceState): void {
    if (d.nic.mac.toLowerCase() !== this.vm.guest.macText) {
      throw new StreamError(`source NIC MAC ${d.nic.mac} differs from this VM's ${this.vm.guest.macText}: start the destination with the same -device mac=`);
    }
    const net = (d.guest.extra as { net?: GuestNetState } | undefined)?.net;
    this.vm.guest.load(net ?? {
      ip: d.guest.ip || null, prefix: d.guest.prefixLength, gw: null,
      arp: d.guest.arpCache.map((e) => [e.ip, e.mac] as [string, string]),
      udp: d.guest.udp.map((u) => ({ port: u.port, received: u.received, missing: u.missing, duplicates: u.duplicates, reordered: u.reordered, highest: u['highest-seq'], gaps: [] })),
      sender: null,
    });
  }

  /** EOF: the state is in; start the guest unless -S (or `stop`) said otherwise (process_incoming_migration_bh). */
  private finishLoad(): void {
    this.loaded = true;
    this.endTime = performance.now();
    this.setStatus('completed');
    if (this.vm.autostart) {
      this.vm.start();
    } else {
      this.vm.setRunState('paused');
    }
  }

  /** The guest runs: VM_STARTED, announce. */
  private guestRuns(): void {
    this.guestStarted = true;
    this.rp?.send({ type: 'vm-started' });
    this.announcer = this.mig.announce(this.mig.announceParams());
    this.maybeShut();
  }

  private maybeShut(): void {
    if (this.shutSent || !this.guestStarted || !this.decoder?.done) return;
    this.shutSent = true;
    this.rp?.send({ type: 'shut', status: 0 });
    this.channel?.socket.end();
    this.vm.onRunState = null;
  }

  /** A stream that cannot be loaded: report it and exit 1, as QEMU does. */
  private fail(e: Error): void {
    if (this.status === 'failed') return;
    const msg = e instanceof StreamError ? e.message : `${e.name}: ${e.message}`;
    if (this.loaded) {
      // After EOF the VM state is complete and the guest is ours: only the netpass tail is bad.
      process.stderr.write(`switchover-vm: netpass: bad data after the VM state, closing the channel: ${msg}\n`);
      this.channel?.destroy();
      return;
    }
    process.stderr.write(`switchover-vm: load of migration failed: ${msg}\n`);
    this.endTime = performance.now();
    this.setStatus('failed');
    this.announcer?.cancel();
    this.rp?.send({ type: 'fail', reason: msg });
    this.channel?.socket.end();
    this.vm.onRunState = null;
    setTimeout(() => this.mig.exit(1), 50);
  }

  close(): void {
    this.listener?.close();
    this.channel?.destroy();
    this.announcer?.cancel();
  }
}
