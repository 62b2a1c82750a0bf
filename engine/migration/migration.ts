// Live migration between two engine VMs, following QEMU's migration/migration.c. This module
// holds the settings and QMP commands; the two sides are source.ts and destination.ts, the
// wire is stream.ts (STREAM.md).
// - source: setup -> active (precopy passes, one dirty-bitmap sync per pass, MIGRATION_PASS)
//   until the remaining bytes fit downtime-limit at the measured bandwidth, then stop
//   (STOP, run state finish-migrate), [pre-switchover -> device with pause-before-switchover],
//   the last dirty pages, device state, EOF -> completed (run state postmigrate).
//   Any failure or cancel restarts the guest if migration had stopped it (migrate_fd_cleanup).
// - destination: none (listening) -> active (connected) -> completed; the announce timer
//   starts (RARP rounds, then the guest's gratuitous ARP), then the guest starts (or stays
//   paused with -S until `cont`: the rounds due meanwhile wait in the NIC's queue and leave at
//   `cont`, as in QEMU) and sends VM_STARTED on the return path. A stream it cannot load makes
//   it print the reason and exit 1, as QEMU's process_incoming_migration_co does.
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
// cache (engine/migration/netpass.ts) instead of the guest; on VM_STARTED the source streams the cache
// after EOF, then an end marker, and the destination injects the frames into its guest. If the
// migration fails, the source guest gets the cached frames itself when it resumes.
// The channel stays open until the destination sends SHUT, after the end marker.
// Variants that are not the series' (issue 17, engine/migration/STREAM.md "netpass variants"):
// x-netpass-trigger=first-tx forwards when the destination guest's first frame on the NIC
// (held until the backlog is in) sends NETPASS_GO; x-netpass-order=backlog-first makes the
// destination hold what its own TAP delivers until the backlog is injected;
// x-netpass-max-age-ms drops cached frames older than the limit when their turn comes.
//
// Local migration (parameter `local`, device property `local-migration`, tap `incoming-fds`;
// QEMU's "virtio-net: live-TAP local migration" series): after the last RAM pass the source
// sends a tap-local section, waits for the destination's FDS_READY, and passes its open TAP
// fds over the UNIX channel (SCM_RIGHTS, lib/fd-passing.ts); the handshake is STREAM.md's.
// The destination adopts them, so frames queued in the kernel while the guest was paused
// are read by the destination. netpass does not cache then: the TAP queue holds the frames.
// The source keeps its own fds, so after a failure it resumes on the same TAP.
import { ANNOUNCE_DEFAULTS, Announcer, checkAnnounceParams, type AnnounceParams } from './announce.js';
import { gratuitousArpFrame, rarpFrame } from '../../lib/announce-frames.js';
import { intToIp } from '../../lib/net-addr.js';
import { MigrationDestination } from './destination.js';
import { parseMigrationUri } from './channel.js';
import { MigrationSource } from './source.js';
import { NETPASS_DEFAULTS } from './netpass.js';
import type { CommandTable } from '../qmp/commands.js';
import {
  NETPASS_ORDERS, NETPASS_TRIGGERS,
  type MigrationCapabilityName, type MigrationCapabilityStatus, type MigrationInfo, type MigrationParameters, type MigrationStatus,
} from '../../lib/qmp-protocol.js';
import { QmpError, type EventSink } from '../qmp/server.js';
import { StallMonitor } from './stall-monitor.js';
import type { Vm } from '../vm.js';

// Only what the engine implements is advertised, so a harness probing the capability and
// parameter lists reports a scenario that needs more as unsupported.
const CAPABILITIES: MigrationCapabilityName[] = ['events', 'return-path', 'x-ignore-shared', 'pause-before-switchover', 'netpass'];

/** QEMU's defaults (migration/options.c): 300 ms downtime, 128 MiB/s, announce 50/550/5/100. */
export const DEFAULT_PARAMETERS: Required<Pick<MigrationParameters,
  'downtime-limit' | 'max-bandwidth' | 'announce-initial' | 'announce-max' | 'announce-rounds' | 'announce-step'
  | 'netpass-max-packets' | 'netpass-max-bytes' | 'local' | 'x-netpass-trigger' | 'x-netpass-order' | 'x-netpass-max-age-ms'>> = {
  'downtime-limit': 300,
  'max-bandwidth': 128 * 2 ** 20,
  'announce-initial': ANNOUNCE_DEFAULTS.initial,
  'announce-max': ANNOUNCE_DEFAULTS.max,
  'announce-rounds': ANNOUNCE_DEFAULTS.rounds,
  'announce-step': ANNOUNCE_DEFAULTS.step,
  'netpass-max-packets': NETPASS_DEFAULTS.maxPackets,
  'netpass-max-bytes': NETPASS_DEFAULTS.maxBytes,
  local: false,
  // The series' behaviour; the other values are switchover's design explorer (issue 17).
  'x-netpass-trigger': 'vm-started',
  'x-netpass-order': 'as-series',
  'x-netpass-max-age-ms': 0,
};

export type MigrationParams = typeof DEFAULT_PARAMETERS;

/** Migration settings and the current source / destination of one VM. */
export class Migration {
  readonly caps = new Map<MigrationCapabilityName, boolean>(CAPABILITIES.map((c) => [c, false]));
  params: MigrationParams = { ...DEFAULT_PARAMETERS };
  source: MigrationSource | null = null;
  incoming: MigrationDestination | null = null;
  /** Event-loop stalls of the current (or last) migration, by phase. */
  private stalls: StallMonitor | null = null;

  constructor(readonly vm: Vm, readonly emit: EventSink, readonly exit: (code: number) => void) {}

  cap(c: MigrationCapabilityName): boolean { return this.caps.get(c) ?? false; }

  /** MIGRATION event, only with the `events` capability (migrate_set_state). */
  statusEvent(status: MigrationStatus): void {
    this.stalls?.phase(status);
    if (this.cap('events')) this.emit('MIGRATION', { status });
  }

  /** A migration starts on this VM (either side): stalls are measured afresh. */
  private measureStalls(): void {
    this.stalls?.stop();
    this.stalls = new StallMonitor();
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
    // A stopped VM (a -S destination before `cont`) holds the frames until it runs (Nic.hold).
    const send = (f: Buffer): void => { if (this.vm.running) nic.transmit(f, f.length); else nic.hold(f); };
    const rarp = rarpFrame(nic.mac);
    const a = new Announcer(p, () => send(rarp));
    const ip = this.vm.guest.ipAddress;
    if (ip !== 0) {
      const garp = gratuitousArpFrame(nic.mac, intToIp(ip));
      void a.finished.then(() => send(garp));
    }
    a.start();
    return a;
  }

  /** Refused up front, before the guest is touched (QEMU v12 only fails after the stop). */
  private checkLocalUri(uri: string): void {
    if (this.params.local && !uri.startsWith('unix:')) {
      throw new QmpError('GenericError', 'Migration requires a UNIX domain socket as transport, because local is enabled');
    }
  }

  info(): MigrationInfo {
    let info: MigrationInfo = {};
    if (this.source && (this.source.status !== 'none')) info = this.source.info();
    else if (this.incoming && this.incoming.status !== 'none') info = this.incoming.info();
    if (this.stalls && info.status) info['x-switchover-max-stall-ms'] = this.stalls.report();
    return info;
  }

  /** Starts listening for an incoming migration (`-incoming URI` or `migrate-incoming`). */
  async listenIncoming(uri: string): Promise<void> {
    const dest = new MigrationDestination(this);
    this.incoming = dest;
    this.measureStalls();
    await dest.listen(uri);
  }

  commands(): CommandTable {
    return {
      migrate: {
        args: { uri: { type: 'str' }, detach: { type: 'bool', optional: true }, resume: { type: 'bool', optional: true } },
        run: ({ uri, resume }) => {
          if (resume) throw new QmpError('GenericError', 'Postcopy recovery (resume) is not supported by this engine');
          if (this.active) throw new QmpError('GenericError', "There's a migration process in progress");
          if (this.vm.runState === 'inmigrate') throw new QmpError('GenericError', 'Guest is waiting for an incoming migration');
          const vhost = this.vm.netdevs.find((n) => n.config.vhost);
          if (this.cap('netpass') && vhost) {
            throw new QmpError('GenericError', `Capability netpass cannot be used with netdev '${vhost.config.id}' (vhost=on): filters do not see vhost queues; use vhost=off`);
          }
          try { parseMigrationUri(uri); } catch (e) { throw new QmpError('GenericError', (e as Error).message); }
          this.checkLocalUri(uri);
          const src = new MigrationSource(this);
          this.source = src;
          this.measureStalls();
          void src.run(uri);
          return {};
        },
      },
      'migrate-incoming': {
        args: { uri: { type: 'str' } },
        run: async ({ uri }) => {
          if (this.vm.config.incoming !== 'defer') throw new QmpError('GenericError', "'-incoming' was not specified on the command line");
          if (this.incoming) throw new QmpError('GenericError', 'The incoming migration has already been started');
          try {
            parseMigrationUri(uri);
            this.checkLocalUri(uri);
            const waiting = this.vm.netdevs.find((n) => n.config.incomingFds);
            if (waiting && !uri.startsWith('unix:')) {
              throw new Error(`netdev '${waiting.config.id}' waits for TAP fds (incoming-fds=on), which only a unix: migration channel can carry`);
            }
            await this.listenIncoming(uri);
          } catch (e) {
            this.incoming = null;
            throw new QmpError('GenericError', (e as Error).message);
          }
          return {};
        },
      },
      migrate_cancel: { args: {}, run: () => { this.source?.cancel(); return {}; } },
      'migrate-continue': {
        args: { state: { type: 'str' } },
        run: ({ state }) => {
          const s = this.source;
          if (!s || s.status !== state) {
            throw new QmpError('GenericError', `Migration not in expected state: ${s?.status ?? 'none'}`);
          }
          s.continueFromPause();
          return {};
        },
      },
      'query-migrate': { args: {}, run: () => this.info() },
      'migrate-set-capabilities': {
        args: { capabilities: { type: 'array' } },
        run: ({ capabilities }) => {
          if (this.active) throw new QmpError('GenericError', "There's a migration process in progress");
          const parsed: MigrationCapabilityStatus[] = [];
          // Only the array itself was checked: each element is still the client's JSON.
          for (const item of capabilities as unknown[]) {
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
      },
      'query-migrate-capabilities': {
        args: {},
        run: () => CAPABILITIES.map((c) => ({ capability: c, state: this.cap(c) })),
      },
      'migrate-set-parameters': {
        args: {
          'downtime-limit': { type: 'int', optional: true }, 'max-bandwidth': { type: 'int', optional: true },
          'announce-initial': { type: 'int', optional: true }, 'announce-max': { type: 'int', optional: true },
          'announce-rounds': { type: 'int', optional: true }, 'announce-step': { type: 'int', optional: true },
          'netpass-max-packets': { type: 'int', optional: true }, 'netpass-max-bytes': { type: 'int', optional: true },
          local: { type: 'bool', optional: true },
          'x-netpass-trigger': { type: 'str', optional: true }, 'x-netpass-order': { type: 'str', optional: true },
          'x-netpass-max-age-ms': { type: 'int', optional: true },
        },
        run: (a) => {
          const next = { ...this.params, ...a };
          checkParams(next);
          this.params = next;
          return {};
        },
      },
      'query-migrate-parameters': { args: {}, run: () => ({ ...this.params }) },
      'announce-self': {
        args: { initial: { type: 'int' }, max: { type: 'int' }, rounds: { type: 'int' }, step: { type: 'int' }, interfaces: { type: 'array', optional: true }, id: { type: 'str', optional: true } },
        run: ({ initial, max, rounds, step }) => {
          const p = { initial, max, rounds, step };
          try { checkAnnounceParams(p); } catch (e) { throw new QmpError('GenericError', (e as Error).message); }
          this.announce(p);
          return {};
        },
      },
    };
  }
}

/** migrate_params_check ranges and messages. */
function checkParams(p: MigrationParams): void {
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
  // QAPI's enum visitor message (qapi/qapi-visit-core.c input_type_enum).
  if (!NETPASS_TRIGGERS.includes(p['x-netpass-trigger'])) bad(`Parameter 'x-netpass-trigger' does not accept value '${p['x-netpass-trigger']}'`);
  if (!NETPASS_ORDERS.includes(p['x-netpass-order'])) bad(`Parameter 'x-netpass-order' does not accept value '${p['x-netpass-order']}'`);
  if (p['x-netpass-max-age-ms'] < 0 || p['x-netpass-max-age-ms'] > 60_000) {
    bad("Parameter 'x-netpass-max-age-ms' expects an integer in the range of 0 to 60000 milliseconds (0: no limit)");
  }
}
