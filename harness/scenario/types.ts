// Shared harness types: what a scenario asks for, what a backend must offer, and what a
// run produces. The JSON result shape is a contract (see ../shared/DESIGN.md).
import type { MigrationCapabilityName, MigrationParameters, MigrationStatus } from '../../lib/qmp-protocol.js';
import type { QmpTranscript } from '../../lib/qmp-client.js';

export type BackendName = 'engine' | 'qemu';
export type Layout = 'bridge' | 'routed';
export type Verdict = 'pass' | 'fail' | 'unsupported' | 'error';

/** When a fault fires: a MIGRATION status seen on the source, or `after-completion` (before `cont`). */
export type FaultPhase = 'setup' | 'active' | 'pre-switchover' | 'device' | 'completed' | 'after-completion';

/** A fault step, run at a migration phase. Which fields each kind takes: harness/scenario/scenario.ts `fault`. */
export interface FaultStep {
  kind: 'kill-destination' | 'cut-channel' | 'cancel' | 'delay-cont' | 'drop-announce' | 'pause-destination-tap';
  /** When: a MIGRATION status (`setup`, `active`, `device`, `completed`), or `after-completion`. */
  at?: FaultPhase;
  /** Delay after reaching the phase, ms (and the `cont` delay for delay-cont). */
  delayMs?: number;
}

export interface PingTraffic { kind: 'ping'; intervalMs: number }
export interface UdpTraffic {
  kind: 'udp'; rate: number; direction: 'to-guest' | 'from-guest' | 'both';
  /** to-guest datagrams go to the echo port (7) so the client pcap shows each answer. */
  port?: number;
}
export type TrafficSpec = PingTraffic | UdpTraffic;

export interface Expectations {
  lost?: number;                 // exact number of lost packets allowed (0 = none), all flows
  minLost?: number;              // at least this many lost (a baseline that must show the bug)
  maxOutageMs?: number;
  maxAddedLatencyMs?: number;
  duplicates?: number;
  reordered?: number;
  /** At most this many packets lost or later than the scenario's deadlineMs, all flows
   * (FlowResult.lostOrLate); needs deadlineMs. */
  maxLostOrLate?: number;
  minAnnounces?: number;
  /** At least this many precopy passes (MIGRATION_PASS events / dirty-sync-count). */
  minPasses?: number;
  migrationStatus?: MigrationStatus; // expected final status, default completed
}

export interface Scenario {
  name: string;
  description: string;                 // one line: what it demonstrates
  topology: { layout: Layout; queues: number; vhost: boolean };
  requires?: { capabilities?: MigrationCapabilityName[]; local?: boolean; vhost?: boolean };
  guest: { memMB: number; dirtyRate: number };
  migration: {
    capabilities: MigrationCapabilityName[];
    parameters: MigrationParameters;
    local: boolean;
    /** Destination started with -S and resumed by `cont` this long after completion. */
    contDelayMs?: number;
    /** Migrate back and forth this many times (ping-pong); default 1. */
    hops?: number;
    transport?: 'unix' | 'tcp';
  };
  /** durationMs: the least the traffic lasts; the runner keeps it going until shortly after
   * the last hop. migrateAfterMs: migrate this long after traffic starts. */
  traffic: { flows: TrafficSpec[]; durationMs: number; migrateAfterMs: number };
  faults: FaultStep[];
  /** A packet later than this (added latency, ms) counts as lost for the application:
   * every flow's FlowResult.lostOrLate, and expect.maxLostOrLate. Absent: no deadline. */
  deadlineMs?: number;
  expect: Expectations;
  /** Per-backend overrides of expectations where behaviour differs. */
  expectByBackend?: Partial<Record<BackendName, Expectations>>;
}

/** What `--json` writes per scenario (DESIGN.md contract, plus evidence). */
export interface FlowResult {
  kind: 'ping' | 'udp';
  flow: string;                  // e.g. "icmp 192.168.100.1>192.168.100.2 id=1234"
  sent: number; received: number; lost: number; lostSeqs: number[];
  delayed: number; maxAddedLatencyMs: number; duplicates: number; reordered: number;
  outageMs: number; maxGapMs: number; inFlight: number; baselineRttMs: number;
  /** The furthest a reordered packet arrived behind: highest seq delivered before it minus
   * its seq, the flow's max; 0 when none (harness/capture/analyzer.ts header). Absent in
   * results written before it was measured. */
  reorderedMaxDepth?: number;
  /** Added latency (ms) of the delayed packets, nearest-rank p50/p99 and max; null when none
   * was delayed. Absent in results written before it was measured. */
  addedDelayMs?: AddedDelay | null;
  /** With a deadline (AnalyzeOptions.deadlineMs, Scenario.deadlineMs): lost plus answered
   * packets whose added latency exceeds it, and the deadline it was judged by. */
  lostOrLate?: number;
  deadlineMs?: number;
  /** Per-packet marks for reports: seq, send time (ms rel. to migrate), state. */
  packets?: Array<{ seq: number; t: number; rttMs?: number; state: 'ok' | 'lost' | 'delayed' | 'in-flight' }>;
  /** Where each lost packet died (harness/capture/loss-causes.ts); the counts add up to `lost`. */
  lossCauses?: LossCause[];
}

/** Percentiles of the added latency of a flow's delayed packets, ms. */
export interface AddedDelay { p50: number; p99: number; max: number }

/**
 * One cause of loss in a flow, with the seqs it explains:
 *   not-on-wire     the sender never put it on the wire (a client stream's gap on the client
 *                   side; a guest stream's datagram on no TAP)
 *   veth-queue      seen leaving the client, on no TAP, within the client veth's tx_dropped
 *   host-arp-queue  routed layout: on no TAP, within ARP unresolved_discards (the host's
 *                   neighbour queue while the guest could not answer ARP)
 *   tap-queue       reached TAP `where` while its VM was paused or running too slowly to
 *                   read it, within that TAP's tx_dropped
 *   stopped-source  reached the source's TAP after its STOP: the switchover loss itself
 *   reply-lost      the VM answered (seen on TAP `where`) but the reply never reached the client
 *   unknown         what the captures and counters cannot place
 */
export type LossCauseName = 'not-on-wire' | 'veth-queue' | 'host-arp-queue' | 'tap-queue' | 'stopped-source' | 'reply-lost' | 'unknown';
export interface LossCause {
  cause: LossCauseName;
  /** The interface (or `guest`) where it died, when known. */
  where?: string;
  /** tap-queue: the state of the VM that owned the TAP. */
  vm?: 'paused' | 'running-too-slow';
  count: number;
  seqs: number[];
}

/** UDP error counters of one netns (/proc/net/snmp), as deltas over a run. */
export interface UdpErrorCounters { rcvbufErrors: number; sndbufErrors: number; inErrors: number }

/**
 * The machine's and the harness's own counters around a run (after minus before), so a run
 * where the harness or the machine was the bottleneck is an `error`, never a verdict.
 */
export interface RunHealth {
  /** Per TAP: its queue length (read from the kernel) and the frames dropped at its queue. */
  taps: Array<{ name: string; txqueuelen: number; txDropped: number }>;
  /** Frames the client veth dropped on their way into the host netns. */
  clientVeth: { name: string; txDropped: number };
  udp: { host: UdpErrorCounters; client: UdpErrorCounters };
  /** ARP unresolved_discards: packets dropped while waiting for the guest to answer ARP.
   * The kernel keeps one count for the whole machine, so other namespaces add to it. */
  arpUnresolvedDiscards: number;
  /** tcpdump's own counters per capture point. */
  captures: Array<{ iface: string; captured: number; droppedByKernel: number }>;
  /** The client's UDP generators: rate asked and achieved (datagrams/s over sendMs, the
   * time from first to last send), their own socket's drops, their CPU while sending. */
  generators: Array<{
    askedRate: number; achievedRate: number; sent: number; sendMs: number;
    socketDrops: number; sendErrors: number; sendBlocked: number; cpuMs: number;
  }>;
  /** The engine's longest event-loop stall (ms) per VM and migration phase (query-migrate
   * x-switchover-max-stall-ms); empty for a backend that does not report it. */
  engineStalls: Array<{ vm: string; role: 'source' | 'destination'; tap: string; phase: string; maxMs: number }>;
}

export interface TimelineEvent { t: number; source: 'src' | 'dst' | 'harness'; what: string }
export interface AnnounceFrame { t: number; kind: 'rarp' | 'garp'; iface: string; mac: string }

export interface ScenarioResult {
  scenario: string;
  backend: BackendName;
  verdict: Verdict;
  reason?: string;               // why fail / unsupported / error
  accelerator?: 'kvm' | 'tcg' | 'engine';
  /** The backend's version as its QMP greeting gives it (query-version), e.g. 7.2.22. */
  backendVersion?: string;
  startedAt: string;
  wallMs: number;
  migration: {
    status: MigrationStatus | 'none'; downtimeMs: number; totalTimeMs: number; transferredBytes: number;
    setupTimeMs?: number; hops?: number;
    /** Precopy passes (MIGRATION_PASS events, or ram dirty-sync-count), for expect.minPasses. */
    passes?: number;
    /** The source's measured dirty rate, pages/s: the last non-zero ram dirty-pages-rate of
     * query-migrate read at a MIGRATION_PASS (absent when no pass measured one). */
    dirtyPagesRate?: number;
  };
  traffic: FlowResult[];
  /** expired: frames older than x-netpass-max-age-ms when forwarded (engine only, issue 17). */
  netpass: { cached: number; forwarded: number; dropped: number; expired?: number };
  announces: AnnounceFrame[];
  macFlapping: boolean;
  fdbMoves: Array<{ t: number; mac: string; port: string }>;
  timeline: TimelineEvent[];     // t in ms relative to `migrate` issued
  expectations: Array<{ name: string; expected: string; actual: string; ok: boolean }>;
  pcaps?: string[];
  guestCounters?: Array<{ port: number; received: number; missing: number; duplicates: number }>;
  /** Counters of the machine and the harness around the run; absent when the run never got to traffic. */
  health?: RunHealth;
  /** The run's trace folder (`--trace`), when one was kept. */
  trace?: string;
}

/** What the runner asks a backend to start: one VM on one TAP (or handed TAP fds). */
export interface VmSpec {
  name: string;                  // 'src', 'dst', ... (QEMU -name)
  netns: string;                 // the run's host netns, where the TAPs live
  runDir: string;                // per-run directory, mode 0700: QMP sockets, logs
  tap: {
    ifname: string; queues: number; vhost: boolean;
    /** Local migration target: open no TAP, take the fds from the migration stream. */
    incomingFds?: boolean;
  };
  mac: string;                   // guest NIC MAC
  ip: string;                    // guest IP with prefix, e.g. 192.168.100.2/24
  gw?: string;
  memMB: number;
  dirtyRate: number;             // pages/s while running
  incoming?: string;             // 'defer' or a URI: started as a migration target
  paused?: boolean;              // -S
  /** Takes part in a local migration (source or destination): a patched QEMU gets its NIC as the series plugs it. */
  local?: boolean;
}

export interface VmExit { code: number | null; signal: NodeJS.Signals | null }

export interface VmHandle {
  spec: VmSpec;
  pid: number;
  /** The command line it runs, inside the run's netns (without the `ip netns exec` wrapper). */
  argv: string[];
  /** Connected, capabilities negotiated. */
  qmp: import('../../lib/qmp-client.js').QmpClient;
  logPath: string;
  exited: Promise<VmExit>;
  /** SIGKILL by default; resolves once the process is gone. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** `quit` over QMP, then SIGKILL after a grace period. */
  shutdown(): Promise<void>;
  /** Start the guest's own sequenced UDP stream toward the client (engine: x-guest-udp-send;
   * qemu: guest-udp's control line). */
  guestUdpSend(o: GuestUdpSend): Promise<void>;
}

export interface GuestUdpSend { dst: string; port: number; rate: number; count: number }

export interface BackendFeatures {
  accelerator: 'kvm' | 'tcg' | 'engine';
  version: string;
  capabilities: string[];        // from query-migrate-capabilities
  parameters: string[];          // from query-migrate-parameters
  incomingFds: boolean;          // tap incoming-fds=on / local migration
  vhost: boolean;                // vhost=on usable
}

export interface VmBackend {
  name: BackendName;
  /** Ask the binary what it supports (runs it once; cached per process). */
  probe(): Promise<BackendFeatures>;
  launch(spec: VmSpec, hooks?: LaunchHooks): Promise<VmHandle>;
}

/** What the runner asks to see of a VM: its QMP conversation from the greeting on. */
export interface LaunchHooks { qmpTranscript?: QmpTranscript }
