// iputils ping as traffic through the switchover, as QEMU's test_tap_migration.py does it:
// `ping -i INTERVAL -D -O -c COUNT -W 1 DST` in the client netns. -D prefixes each line with
// the epoch time, -O reports every request still unanswered when the next one goes out.
// The output is parsed into per-sequence results; the pcap analyzer cross-checks them.
// Line formats follow iputils ping/ping_common.c (gather_statistics(), finish()) and
// ping/ping.c (the "From ... icmp_seq=N <reason>" error lines).
//
// API
//   startPing(topo, { dst, intervalMs, count, waitS? }) -> PingRun { pid, result, stop() }
//   parsePingOutput(text) -> PingResult
import { isIpv4 } from '../../lib/net-addr.js';
import { neverRan, requireTools, signalProcess } from '../net/exec.js';
import type { Topology } from '../net/topology.js';

export interface PingReply { seq: number; t: number; ttl: number; rttMs: number; dup: boolean }
export interface PingResult {
  target: string;
  transmitted: number;
  received: number;
  duplicates: number;
  errors: number;
  lossPct: number;
  timeMs: number;
  rtt?: { min: number; avg: number; max: number; mdev: number };
  /** Replies in arrival order, t = the -D receive time in ms since the epoch. */
  replies: PingReply[];
  /** -O lines: the request `seq` had no answer when the next one was sent (it may come later). */
  noAnswerYet: Array<{ seq: number; t: number }>;
  /** ICMP errors ("From 192.168.100.1 icmp_seq=5 Destination Host Unreachable"). */
  icmpErrors: Array<{ seq: number; t: number; from: string; text: string }>;
  /** Sequence numbers 1..transmitted that never got a reply. */
  lostSeqs: number[];
}

export class PingError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PingError';
  }
}

const REPLY = /^(?:\[(\d+\.\d+)\] )?\d+ bytes from ([^\s:]+)(?: \([^)]*\))?: icmp_seq=(\d+) ttl=(\d+) time=([\d.]+) ms( \(DUP!\))?/;
const NO_ANSWER = /^(?:\[(\d+\.\d+)\] )?no answer yet for icmp_seq=(\d+)/;
const ICMP_ERROR = /^(?:\[(\d+\.\d+)\] )?From (\S+?)(?: \([^)]*\))?:? icmp_seq=(\d+) (.+)$/;
const HEADER = /^PING (\S+)/;
const SUMMARY = /^(\d+) packets transmitted, (\d+) received(?:, \+(\d+) duplicates)?(?:, \+(\d+) errors)?, ([\d.]+)% packet loss(?:, time (\d+)ms)?/;
const RTT = /^rtt min\/avg\/max\/mdev = ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) ms/;

export function parsePingOutput(text: string): PingResult {
  const r: PingResult = {
    target: '', transmitted: NaN, received: NaN, duplicates: 0, errors: 0, lossPct: NaN, timeMs: NaN,
    replies: [], noAnswerYet: [], icmpErrors: [], lostSeqs: [],
  };
  const ms = (s: string | undefined): number => (s ? Number(s) * 1000 : NaN);
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    let m: RegExpExecArray | null;
    if ((m = REPLY.exec(line))) {
      r.replies.push({ t: ms(m[1]), seq: Number(m[3]), ttl: Number(m[4]), rttMs: Number(m[5]), dup: !!m[6] });
    } else if ((m = NO_ANSWER.exec(line))) {
      r.noAnswerYet.push({ t: ms(m[1]), seq: Number(m[2]) });
    } else if ((m = ICMP_ERROR.exec(line))) {
      r.icmpErrors.push({ t: ms(m[1]), from: m[2]!, seq: Number(m[3]), text: m[4]! });
    } else if ((m = HEADER.exec(line))) {
      r.target = m[1]!;
    } else if ((m = SUMMARY.exec(line))) {
      r.transmitted = Number(m[1]); r.received = Number(m[2]);
      r.duplicates = Number(m[3] ?? 0); r.errors = Number(m[4] ?? 0);
      r.lossPct = Number(m[5]); r.timeMs = Number(m[6] ?? NaN);
    } else if ((m = RTT.exec(line))) {
      r.rtt = { min: Number(m[1]), avg: Number(m[2]), max: Number(m[3]), mdev: Number(m[4]) };
    }
  }
  // Without the summary (ping killed hard), the highest sequence seen is the best bound.
  if (Number.isNaN(r.transmitted)) {
    r.transmitted = Math.max(0, ...r.replies.map((x) => x.seq), ...r.noAnswerYet.map((x) => x.seq), ...r.icmpErrors.map((x) => x.seq));
    r.received = new Set(r.replies.filter((x) => !x.dup).map((x) => x.seq)).size;
  }
  const answered = new Set(r.replies.map((x) => x.seq));
  for (let seq = 1; seq <= r.transmitted; seq++) if (!answered.has(seq)) r.lostSeqs.push(seq);
  return r;
}

/**
 * Whether ping got as far as sending: iputils prints "PING dst ..." before its first request.
 * Without that line an exit code of 1 is a refused argument ("invalid argument"), not loss.
 */
export function pingStarted(out: string): boolean {
  return out.split('\n').some((line) => HEADER.test(line.trim()));
}

export interface PingOptions {
  dst: string;
  intervalMs: number;
  count: number;
  /** -W: seconds to wait for the last reply. Default 1. */
  waitS?: number;
}

export interface PingRun {
  pid: number;
  /** Resolves when ping exits on its own (after `count`) or after stop(). */
  result: Promise<PingResult>;
  /** SIGINT (ping prints its summary), then the result. */
  stop(): Promise<PingResult>;
}

export function startPing(topo: Pick<Topology, 'spawn'>, opts: PingOptions): PingRun {
  requireTools(['ping']);
  if (!isIpv4(opts.dst)) throw new PingError(`ping destination must be an IPv4 address, got ${JSON.stringify(opts.dst)}`);
  // iputils keeps whole milliseconds of -i (less is a flood) and reads -c as digits (1e+21 is "invalid argument").
  if (!Number.isInteger(opts.intervalMs) || opts.intervalMs < 1 || !Number.isSafeInteger(opts.count) || opts.count < 1) {
    throw new PingError(`ping needs a whole intervalMs >= 1 and an integer count from 1 to 2^53, got ${opts.intervalMs} and ${opts.count}`);
  }
  const waitS = opts.waitS ?? 1;
  const argv = ['ping', '-i', String(opts.intervalMs / 1000), '-D', '-O', '-c', String(opts.count), '-W', String(waitS), opts.dst];
  const child = topo.spawn('client', argv);
  // Bound in time as well as count: ping's own pacing plus its final wait, with slack.
  const boundMs = opts.count * opts.intervalMs + waitS * 1000 + 10_000;
  const bound = setTimeout(() => void signalProcess(child.pid!, 'SIGINT').catch(() => false), boundMs);
  const result = child.then((r): PingResult => {
    clearTimeout(bound);
    const why = neverRan(r);
    if (why) throw new PingError(`ping could not start: ${why}`, { cause: r });
    const out = String(r.stdout ?? ''), err = String(r.stderr ?? '');
    const how = r.signal ?? `exit code ${r.exitCode}`;
    // iputils: 0 all answered, 1 some lost, 2 an error (bad address, no route, ...).
    if (r.exitCode !== 0 && r.exitCode !== 1 && !(r.signal === 'SIGINT' && out)) {
      throw new PingError(`${argv.join(' ')} failed (${how}): ${err.trim() || out.trim() || 'no output'}`);
    }
    if (!pingStarted(out)) throw new PingError(`${argv.join(' ')} did not start (${how}): ${err.trim() || 'no output'}`);
    return parsePingOutput(out);
  });
  return {
    pid: child.pid!,
    result,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) await signalProcess(child.pid!, 'SIGINT').catch(() => false);
      return result;
    },
  };
}
