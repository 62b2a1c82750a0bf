// The QMP wire protocol as switchover speaks it: the subset of QEMU's QAPI schema the
// engine implements and the harness uses. This file is the one shared definition of the
// harness/engine boundary (types only, no code), so both sides of the wire agree.
// Spellings follow QEMU's qapi/*.json (migration.json, run-state.json, net.json).

/** QEMU's RunState names (qapi/run-state.json), the subset the engine uses. */
export type RunState =
  | 'prelaunch' | 'running' | 'paused' | 'inmigrate' | 'postmigrate' | 'finish-migrate'
  | 'shutdown' | 'internal-error';

/** QEMU's MigrationStatus (qapi/migration.json). */
export type MigrationStatus =
  | 'none' | 'setup' | 'active' | 'pre-switchover' | 'device' | 'completed'
  | 'failed' | 'cancelling' | 'cancelled';

/** QMP error classes (qapi/error.json). */
export type QmpErrorClass = 'GenericError' | 'CommandNotFound' | 'DeviceNotActive' | 'DeviceNotFound' | 'KVMMissingCap';

export interface QmpTimestamp { seconds: number; microseconds: number }

export interface QmpGreeting {
  QMP: { version: { qemu: { micro: number; minor: number; major: number }; package: string }; capabilities: string[] };
}

export interface QmpRequest { execute: string; arguments?: Record<string, unknown>; id?: unknown }
export interface QmpSuccess<T = unknown> { return: T; id?: unknown }
export interface QmpFailure { error: { class: QmpErrorClass; desc: string }; id?: unknown }
export type QmpResponse<T = unknown> = QmpSuccess<T> | QmpFailure;

/** Capabilities accepted by migrate-set-capabilities. `netpass` is the switchover series'. */
export type MigrationCapabilityName =
  | 'events' | 'return-path' | 'x-ignore-shared' | 'pause-before-switchover' | 'netpass';

export interface MigrationCapabilityStatus { capability: MigrationCapabilityName; state: boolean }

/** migrate-set-parameters / query-migrate-parameters, QEMU names. */
export interface MigrationParameters {
  'downtime-limit'?: number;          // ms, default 300
  'max-bandwidth'?: number;           // bytes/s, 0 = unlimited
  'announce-initial'?: number;        // ms, default 50
  'announce-max'?: number;            // ms, default 550
  'announce-rounds'?: number;         // default 5
  'announce-step'?: number;           // ms, default 100
  local?: boolean;                    // local migration: pass TAP fds over the UNIX channel
  'netpass-max-packets'?: number;     // netpass cache bound, frames
  'netpass-max-bytes'?: number;       // netpass cache bound, bytes (default 4 MiB)
  // switchover-only netpass variants (issue 17), not in the series; `x-` as QEMU marks
  // experimental parameters. The source's values travel in the stream header.
  'x-netpass-trigger'?: NetpassTrigger;   // when the source forwards: default vm-started
  'x-netpass-order'?: NetpassOrder;       // destination order: default as-series
  'x-netpass-max-age-ms'?: number;        // drop cached frames older than this on forwarding; 0 = no limit
}

/** What makes the source forward its cache: the destination's VM_STARTED (the series), or the
 * first frame the destination's guest transmits on the NIC (held until the backlog is in). */
export type NetpassTrigger = 'vm-started' | 'first-tx';
/** as-series: the destination's guest reads its own TAP at once, the forwarded frames join as
 * they come; backlog-first: the destination holds what its TAP delivers until the backlog is in. */
export type NetpassOrder = 'as-series' | 'backlog-first';
export const NETPASS_TRIGGERS: readonly NetpassTrigger[] = ['vm-started', 'first-tx'];
export const NETPASS_ORDERS: readonly NetpassOrder[] = ['as-series', 'backlog-first'];

export interface MigrationRamStats {
  total: number; transferred: number; remaining: number; duplicate: number; normal: number;
  'normal-bytes': number; 'dirty-sync-count': number; 'dirty-pages-rate': number; mbps: number;
  'pages-per-second': number;
}

export interface NetpassStats {
  cached: number; 'cached-bytes': number; forwarded: number; dropped: number;
  /** switchover only: frames older than x-netpass-max-age-ms when their turn came, not forwarded. */
  'x-expired'?: number;
}

/** Frames held (total), dropped beyond the bound, and the longest wait of one, ms. */
export interface HoldStats { held: number; dropped: number; 'max-ms': number }

/** query-migrate's MigrationInfo, with the netpass object of the netpass series. */
export interface MigrationInfo {
  status?: MigrationStatus;
  'total-time'?: number;
  'setup-time'?: number;
  downtime?: number;
  'expected-downtime'?: number;
  ram?: MigrationRamStats;
  netpass?: NetpassStats;
  'error-desc'?: string;
  /** switchover only, on a destination with a netpass variant that holds frames (issue 17):
   * frames its own TAP delivered (rx, backlog-first) and its guest sent (tx, first-tx),
   * held until the backlog was injected. */
  'x-netpass-held'?: { rx: HoldStats; tx: HoldStats };
  /** switchover only: this VM's longest event-loop stall (ms) per migration phase, while the
   * NIC could not be read (engine/migration/stall-monitor.ts). */
  'x-switchover-max-stall-ms'?: Partial<Record<MigrationStatus, number>>;
}

export interface StatusInfo { running: boolean; singlestep?: boolean; status: RunState }

/** Engine-only: counters of the guest's UDP sequence sink (port 9) and echo (port 7). */
export interface GuestUdpCounters {
  port: number; received: number; missing: number; duplicates: number; reordered: number;
  'highest-seq': number;
}

export interface GuestNetInfo {
  ip: string; mac: string; 'arp-cache': Array<{ ip: string; mac: string }>;
  udp: GuestUdpCounters[];
  /** Frames the destination injected from the netpass stream, and how late (ms). */
  'netpass-injected'?: { frames: number; 'max-delay-ms': number; 'mean-delay-ms': number };
}

/** One entry of query-qmp-schema (qapi/introspect.json SchemaInfo): builtins, objects, commands. */
export interface SchemaInfo {
  name: string; 'meta-type': 'builtin' | 'object' | 'command' | 'enum' | 'array' | 'alternate' | 'event';
  /** builtin: its JSON type. */
  'json-type'?: string;
  /** object: its members; `default: null` marks an optional one (SchemaInfoObjectMember). */
  members?: Array<{ name: string; type?: string; default?: null }>;
  /** command: the object type of its arguments and the type of its return value. */
  'arg-type'?: string; 'ret-type'?: string;
}

/**
 * netdev_add with the tap backend (qapi/net.json Netdev, variant NetdevTapOptions), as QMP
 * types it: `fd`/`fds` are names given with getfd (or fd numbers), `queues` an integer.
 * `incoming-fds` is the local-migration series' (v12 patch 6/8).
 */
export interface NetdevTapAdd {
  type: 'tap'; id: string;
  ifname?: string; fd?: string; fds?: string; helper?: string; script?: string; downscript?: string;
  queues?: number; vhost?: boolean; vnet_hdr?: boolean; sndbuf?: number;
  'incoming-fds'?: boolean;
}

/**
 * device_add of virtio-net-pci, with the qdev property names as they go on the wire (QOM
 * matches them exactly: `local-migration`, `disable-legacy`; the series' Python test writes
 * `local_migration` and QEMUMachine.cmd turns `_` into `-` before sending).
 */
export interface VirtioNetPciAdd {
  driver: 'virtio-net-pci'; id?: string; netdev: string; mac?: string;
  /** virtio-net multiqueue. */
  mq?: boolean;
  /** The series' device property (default on): hand the TAP fds over on local migration. */
  'local-migration'?: boolean;
  /** PCI-level properties (PCIDevice, VirtIOPCIProxy): option ROM file, MSI-X vectors, the bus and slot. */
  romfile?: string; vectors?: number; bus?: string; addr?: string;
  'disable-legacy'?: 'on' | 'off' | 'auto';
}

/** Typed command table: argument and return types per command. */
export interface QmpCommands {
  qmp_capabilities: { args: { enable?: string[] }; ret: Record<string, never> };
  'query-status': { args: undefined; ret: StatusInfo };
  'query-name': { args: undefined; ret: { name?: string } };
  /** QEMU's introspection (qapi/introspect.json); the qemu backend reads tap options from it. */
  'query-qmp-schema': { args: undefined; ret: SchemaInfo[] };
  stop: { args: undefined; ret: Record<string, never> };
  cont: { args: undefined; ret: Record<string, never> };
  quit: { args: undefined; ret: Record<string, never> };
  migrate: { args: { uri: string; detach?: boolean; resume?: boolean }; ret: Record<string, never> };
  'migrate-incoming': { args: { uri: string }; ret: Record<string, never> };
  migrate_cancel: { args: undefined; ret: Record<string, never> };
  'migrate-continue': { args: { state: MigrationStatus }; ret: Record<string, never> };
  'query-migrate': { args: undefined; ret: MigrationInfo };
  'migrate-set-capabilities': { args: { capabilities: MigrationCapabilityStatus[] }; ret: Record<string, never> };
  'query-migrate-capabilities': { args: undefined; ret: MigrationCapabilityStatus[] };
  'migrate-set-parameters': { args: MigrationParameters; ret: Record<string, never> };
  'query-migrate-parameters': { args: undefined; ret: MigrationParameters };
  'announce-self': { args: { initial: number; max: number; rounds: number; step: number; interfaces?: string[]; id?: string }; ret: Record<string, never> };
  getfd: { args: { fdname: string }; ret: Record<string, never> };
  closefd: { args: { fdname: string }; ret: Record<string, never> };
  netdev_add: { args: NetdevTapAdd; ret: Record<string, never> };
  netdev_del: { args: { id: string }; ret: Record<string, never> };
  device_add: { args: VirtioNetPciAdd; ret: Record<string, never> };
  device_del: { args: { id: string }; ret: Record<string, never> };
  /** Engine-only (x- prefix as QEMU does for unstable commands). */
  'x-query-guest-net': { args: undefined; ret: GuestNetInfo };
  /** Engine-only: start a sequenced UDP stream from the guest to dst:port. */
  'x-guest-udp-send': { args: { dst: string; port: number; rate: number; count: number }; ret: Record<string, never> };
  /** Engine-only: stop the guest's UDP stream (QMP-started or migrated); `sent` when one ran. */
  'x-guest-udp-stop': { args: undefined; ret: { sent?: number } };
  /** Engine-only: checksums of RAM pages, for migration correctness tests. */
  'x-query-ram-digest': { args: undefined; ret: { pages: number; 'nonzero-pages': number; digest: string } };
}
export type QmpCommandName = keyof QmpCommands;

/** Events, with QEMU's data shapes. */
export interface QmpEvents {
  STOP: Record<string, never>;
  RESUME: Record<string, never>;
  MIGRATION: { status: MigrationStatus };
  MIGRATION_PASS: { pass: number };
  SHUTDOWN: { guest: boolean; reason: string };
}
export type QmpEventName = keyof QmpEvents;
export interface QmpEventMessage<E extends QmpEventName = QmpEventName> {
  event: E; data: QmpEvents[E]; timestamp: QmpTimestamp;
}
