// Packet capture: one tcpdump per interface inside a run's netns, writing a pcap:
// `tcpdump --immediate-mode -U -n -s 256 -Z USER -w FILE -i IFACE [filter]`.
// Started before the traffic and confirmed ready (tcpdump's "listening on" line), stopped
// with SIGINT so it flushes (-U writes each packet as it comes anyway), and its own
// counters ("N packets captured / received by filter / dropped by kernel") are returned.
// A tcpdump that dies on its own is a CaptureError, never a silent empty pcap.
//
// API
//   startCapture(topo, ns, iface, file, { snaplen?, filter?, readyTimeoutMs? }) -> Promise<Capture>
//   Capture: { iface, file, pid, stop(): Promise<CaptureStats>, died: Error | undefined }
//   parseTcpdumpStats(stderr) -> CaptureStats
//   vmTapFilter(guestMac) -> filter words for a VM's TAP captured both ways
import { userInfo } from 'node:os';
import { isRoot, missingToolIn, neverRan, requireTools, signalProcess, ToolMissingError } from '../net/exec.js';
import { validateName } from '../net/names.js';
import type { NsRole, Topology } from '../net/topology.js';

export class CaptureError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CaptureError';
  }
}

export interface CaptureStats { captured: number; receivedByFilter: number; droppedByKernel: number }

export interface Capture {
  readonly iface: string;
  readonly file: string;
  readonly pid: number;
  /** Set when tcpdump exited before stop() was called. */
  readonly died: Error | undefined;
  /** SIGINT, wait for tcpdump to flush and exit, return its counters. */
  stop(): Promise<CaptureStats>;
}

export interface CaptureOptions {
  /** Bytes kept per packet; at least 128 (headers plus our 16-byte UDP payload). Default 256. */
  snaplen?: number;
  /** A pcap filter as separate words, e.g. ['icmp', 'or', 'udp']. */
  filter?: string[];
  readyTimeoutMs?: number;
  /** -Q: only frames the interface received (`in`) or sent (`out`). On a TAP, `in` is what
   * the VM wrote: its own frames, never the bridge's floods towards it. Default both. */
  direction?: 'in' | 'out' | 'inout';
}

const STOP_TIMEOUT_MS = 5_000;

/**
 * A VM's TAP in both directions (what the host sent it, what it wrote), minus the frames
 * with the guest's MAC that the host sends it: the bridge floods the other TAP's VM's
 * broadcasts onto this one. What is left tells direction by source MAC alone: the guest's is
 * the VM's own frame (so announces and MAC flapping stay the VM's), any other went to it.
 * `inbound` is the kernel's packet type, so the cut costs no copy to tcpdump.
 */
export function vmTapFilter(guestMac: string): string[] {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(guestMac)) throw new CaptureError(`guest MAC ${JSON.stringify(guestMac)} is not like 52:54:00:12:34:56`);
  return ['inbound', 'or', 'not', 'ether', 'src', guestMac];
}

export function parseTcpdumpStats(stderr: string): CaptureStats {
  const num = (re: RegExp): number => Number(re.exec(stderr)?.[1] ?? NaN);
  const stats = {
    captured: num(/(\d+) packets? captured/),
    receivedByFilter: num(/(\d+) packets? received by filter/),
    droppedByKernel: num(/(\d+) packets? dropped by kernel/),
  };
  if (Number.isNaN(stats.captured)) throw new CaptureError(`tcpdump printed no packet counts: ${stderr.trim().slice(-300)}`);
  return stats;
}

export async function startCapture(topo: Pick<Topology, 'spawn'>, ns: NsRole, iface: string, file: string,
  opts: CaptureOptions = {}): Promise<Capture> {
  requireTools(['tcpdump']);
  validateName('interface', iface);
  const snaplen = opts.snaplen ?? 256;
  if (!Number.isInteger(snaplen) || snaplen < 128) throw new CaptureError(`snaplen must be an integer >= 128, got ${snaplen}`);
  // -Z: tcpdump drops to its own user before opening the output file, which could not then
  // write into the private (0700) run directory; stay the directory's owner instead.
  const user = isRoot() ? 'root' : userInfo().username;
  // --immediate-mode: without it libpcap's TPACKET_V3 ring hands packets over in blocks
  // every second or so, and whatever sits in the last block when SIGINT comes is counted as
  // "received by filter" but never written.
  const argv = ['tcpdump', '--immediate-mode', '-U', '-n', '-s', String(snaplen), '-Z', user, '-w', file, '-i', iface,
    ...(opts.direction ? ['-Q', opts.direction] : []), ...(opts.filter ?? [])];
  const child = topo.spawn(ns, argv);
  let stderr = '';
  let exited: { code: number | null; signal: string | null } | undefined;
  let died: Error | undefined;
  let stopping = false;
  // Resolves once tcpdump has exited and its stderr (with the counters) is fully read.
  const exit = child.then((r) => {
    exited = { code: r.exitCode ?? null, signal: r.signal ?? null };
    const why = neverRan(r);
    if (why) died = new CaptureError(`tcpdump on ${iface} could not start: ${why}`, { cause: r });
    else if (!stopping) died = failure('exited on its own');
  });
  function failure(what: string): Error {
    const missing = missingToolIn(stderr);
    if (missing) return new ToolMissingError(missing);
    const how = exited ? (exited.signal ? `signal ${exited.signal}` : `exit code ${exited.code}`) : 'still running';
    return new CaptureError(`tcpdump on ${iface} (${file}) ${what} (${how}): ${stderr.trim() || 'no output'}`);
  }

  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(failure(`was not listening after ${opts.readyTimeoutMs ?? 10_000} ms`)), opts.readyTimeoutMs ?? 10_000);
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      if (/listening on /.test(stderr)) { clearTimeout(timer); resolve(); }
    });
    void exit.then(() => { clearTimeout(timer); reject(died ?? failure('exited before it was ready')); });
  });
  try {
    await ready;
  } catch (e) {
    if (!exited && child.pid) {
      stopping = true;
      await signalProcess(child.pid, 'SIGKILL').catch(() => false);
      await exit;
    }
    throw e;
  }

  return {
    iface, file, pid: child.pid!,
    get died() { return died; },
    async stop(): Promise<CaptureStats> {
      if (died) throw died;
      if (!exited) {
        stopping = true;
        await signalProcess(child.pid!, 'SIGINT');
        const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), STOP_TIMEOUT_MS).unref());
        if ((await Promise.race([exit.then(() => 'exited' as const), timer])) === 'timeout') {
          await signalProcess(child.pid!, 'SIGKILL').catch(() => false);
          await exit;
          throw failure(`did not exit within ${STOP_TIMEOUT_MS} ms of SIGINT`);
        }
      }
      if (exited && exited.code !== 0) throw failure('failed');
      return parseTcpdumpStats(stderr);
    },
  };
}
