// A sequenced UDP stream, run as its own process inside the client netns:
//   ip netns exec NS node dist/harness/udp-stream.js --dst IP --port 7 --rate R --count N
//     --duration-ms D [--listen-port L] [--linger-ms 1000] [--rcvbuf BYTES]
// Each datagram is the 16-byte seq+time payload of lib/seq-payload.ts (seq from 0, as the
// engine guest's counters expect). The socket also takes whatever comes back: echoes from
// dst:port and datagrams the guest sends to --listen-port (datagrams shorter than 16 bytes,
// or with a seq beyond the --count bound, are not a stream's and are ignored).
// Sending stops after --count datagrams or --duration-ms, whichever is first; then it waits
// --linger-ms for late answers and prints one JSON line (UdpStreamSummary) on stdout.
// --count 0 only receives (the guest→client direction). SIGINT/SIGTERM end it early, with
// the summary. Once bound it prints "udp-stream: listening on PORT" on stderr.
// --rcvbuf asks for that SO_RCVBUF (default 4 MiB; the kernel caps it at net.core.rmem_max,
// then doubles it); the tests give it a tiny one to make the kernel drop at this socket.
//
// Rates up to 200,000/s on lib/udp-socket.ts: every 1 ms tick sends all datagrams now due in
// sendmmsg batches (catching up after a late tick, at most SEND_CALLS_PER_TICK batches), then
// drains the socket with recvmmsg until it is empty (at most RECV_CALLS_PER_TICK batches).
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { readSeqPayload, SEQ_PAYLOAD_BYTES, writeSeqPayload } from '../../lib/seq-payload.js';
import { intToIp, ipToInt, isIpv4 } from '../../lib/net-addr.js';
import { UdpSendError, UdpSocket } from '../../lib/udp-socket.js';

export interface UdpFlowSummary {
  /** "ip:port" the datagrams came from. */
  from: string;
  /** True for the echoes of our own stream (from dst:port). */
  echo: boolean;
  received: number; duplicates: number; reordered: number; highestSeq: number;
  /** Echo flow: seqs we sent that never came back. Other flows: gaps below highestSeq. */
  lostSeqs: number[];
  /** Echo flow only: round trip from the send time in the payload, ms. */
  rttMs?: { min: number; avg: number; max: number };
}

export interface UdpStreamSummary {
  dst: string; port: number; listenPort: number; rate: number;
  /** Datagrams given a seq: the kernel took them, or the sendmmsg carrying them failed. */
  sent: number;
  /** sendmmsg calls that failed (an error other than a full socket); their datagrams are lost. */
  sendErrors: number;
  /**
   * Datagrams sendmmsg did not take because the socket was full (EAGAIN/ENOBUFS), each counted
   * once. They are not retried within the tick; they stay due and go out on a later one, so
   * the seqs on the wire stay contiguous and the delay shows in achievedRate.
   */
  sendBlocked: number;
  /** Datagrams the kernel took per second, between the first and the last send (0 below two). */
  achievedRate: number;
  /** This process's user+system CPU time from the first send to the end of sending, ms. */
  cpuMs: number;
  /** How long that send phase lasted (wall clock), ms: cpuMs / sendMs is the share of a core. */
  sendMs: number;
  /** Datagrams the kernel dropped at this socket (receive buffer full): /proc/self/net/udp `drops` at the end. */
  socketDrops: number;
  /** The receive buffer the kernel gave the socket (SO_RCVBUF read back), bytes. */
  rcvbufBytes: number;
  /** µs since the epoch of the first and last datagram sent (0 when none). */
  firstSendUs: number; lastSendUs: number;
  flows: UdpFlowSummary[];
  endedBy: 'count' | 'duration' | 'signal';
}

export interface UdpStreamArgs {
  dst: string; port: number; rate: number; count: number; durationMs: number; listenPort: number; lingerMs: number;
  /** Requested SO_RCVBUF; DEFAULT_RCVBUF when absent. */
  rcvbufBytes?: number;
}

const MAX_DURATION_MS = 600_000;
const MAX_RATE = 200_000;
/** Also the bound on a seq we track: a larger one is not from a stream of ours and is ignored. */
const MAX_COUNT = 100_000_000;
const DEFAULT_RCVBUF = 4 << 20;
const SNDBUF = 4 << 20;
const TICK_MS = 1;
/** Datagrams per sendmmsg/recvmmsg call: a whole tick at MAX_RATE. */
const BATCH = 256;
const SEND_CALLS_PER_TICK = 4;
const RECV_CALLS_PER_TICK = 8;

export function parseArgs(argv: readonly string[]): UdpStreamArgs {
  const get = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const int = (name: string, def: number | undefined, min: number, max: number): number => {
    const raw = get(name);
    if (raw === undefined) {
      if (def === undefined) throw new Error(`udp-stream: --${name} is required`);
      return def;
    }
    const v = Number(raw);
    if (!Number.isInteger(v) || v < min || v > max) throw new Error(`udp-stream: --${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
    return v;
  };
  const dst = get('dst');
  if (!isIpv4(dst)) {
    throw new Error(`udp-stream: --dst must be an IPv4 address, got ${JSON.stringify(dst)}`);
  }
  return {
    dst, port: int('port', 7, 1, 65535), rate: int('rate', undefined, 1, MAX_RATE), count: int('count', undefined, 0, MAX_COUNT),
    durationMs: int('duration-ms', undefined, 1, MAX_DURATION_MS), listenPort: int('listen-port', 0, 0, 65535),
    lingerMs: int('linger-ms', 1000, 0, 60_000),
    ...(get('rcvbuf') !== undefined ? { rcvbufBytes: int('rcvbuf', undefined, 1, 1 << 30) } : {}),
  };
}

function nowUs(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

/** The seqs seen, one bit each: a Set would cost tens of bytes a datagram on a long run. */
class SeqBits {
  private bits = new Uint8Array(1 << 12);
  has(seq: number): boolean {
    const byte = seq >>> 3;
    return byte < this.bits.length && (this.bits[byte]! & (1 << (seq & 7))) !== 0;
  }
  add(seq: number): void {
    const byte = seq >>> 3;
    if (byte >= this.bits.length) {
      const grown = new Uint8Array(Math.max(this.bits.length * 2, byte + 1));
      grown.set(this.bits);
      this.bits = grown;
    }
    this.bits[byte]! |= 1 << (seq & 7);
  }
}

class FlowCounter {
  received = 0; duplicates = 0; reordered = 0; highest = -1;
  readonly seen = new SeqBits();
  rttMin = Infinity; rttMax = 0; rttSum = 0;
  constructor(readonly from: string, readonly echo: boolean) {}
  record(seq: number, sentUs: number, atUs: number): void {
    if (this.seen.has(seq)) { this.duplicates++; return; }
    this.seen.add(seq);
    this.received++;
    if (seq < this.highest) this.reordered++;
    else this.highest = seq;
    if (this.echo) {
      const rtt = (atUs - sentUs) / 1000;
      this.rttMin = Math.min(this.rttMin, rtt); this.rttMax = Math.max(this.rttMax, rtt); this.rttSum += rtt;
    }
  }
  summary(sent: number): UdpFlowSummary {
    const upto = this.echo ? sent - 1 : this.highest;
    const lostSeqs: number[] = [];
    for (let s = 0; s <= upto; s++) if (!this.seen.has(s)) lostSeqs.push(s);
    const out: UdpFlowSummary = { from: this.from, echo: this.echo, received: this.received, duplicates: this.duplicates, reordered: this.reordered, highestSeq: this.highest, lostSeqs };
    if (this.echo && this.received) out.rttMs = { min: this.rttMin, avg: this.rttSum / this.received, max: this.rttMax };
    return out;
  }
}

/** Flows keyed by source address * 65536 + port, so no string is built per datagram. */
const flowKey = (address: number, port: number): number => address * 65536 + port;

export function runStream(args: UdpStreamArgs): Promise<UdpStreamSummary> {
  return new Promise((resolve, reject) => {
    const sock = UdpSocket.open({ batch: BATCH });
    let rcvbufBytes: number, listenPort: number;
    try {
      rcvbufBytes = sock.setReceiveBuffer(args.rcvbufBytes ?? DEFAULT_RCVBUF);
      sock.setSendBuffer(SNDBUF);
      listenPort = sock.bind(args.listenPort);
      sock.setDestination(args.dst, args.port);
    } catch (e) {
      sock.close();
      throw e;
    }
    const echoKey = flowKey(ipToInt(args.dst), args.port);
    const flows = new Map<number, FlowCounter>();
    let lastKey = -1, lastFlow: FlowCounter | undefined;
    /** Seqs handed out: the next datagram carries this one. */
    let sent = 0, sendErrors = 0, sendBlocked = 0, onWire = 0, firstSendUs = 0, lastSendUs = 0;
    /** Seqs below this were already counted in sendBlocked. */
    let blockedCounted = 0;
    let cpuAtStart: NodeJS.CpuUsage | undefined, sendStartMs = 0, cpuMs = 0, sendMs = 0;
    let endedBy: UdpStreamSummary['endedBy'] = 'count';
    let sending = args.count > 0, endAt = Infinity, timer: NodeJS.Timeout | undefined, finished = false;
    const start = performance.now();

    const sendDue = (): void => {
      const elapsed = performance.now() - start;
      const due = Math.min(args.count, Math.floor((elapsed * args.rate) / 1000) + 1);
      for (let calls = 0; sent < due && calls < SEND_CALLS_PER_TICK; calls++) {
        const n = Math.min(BATCH, due - sent);
        // One send time per batch: the whole batch leaves in this one sendmmsg.
        const t = nowUs();
        for (let i = 0; i < n; i++) writeSeqPayload(sock.sendSlots[i]!, 0, sent + i, t);
        if (!cpuAtStart) { cpuAtStart = process.cpuUsage(); sendStartMs = performance.now(); }
        let taken: number, failed = false;
        try {
          taken = sock.send(0, n, SEQ_PAYLOAD_BYTES);
        } catch (e) {
          if (!(e instanceof UdpSendError)) throw e;
          taken = e.taken;
          failed = true;
        }
        if (taken > 0) {
          if (onWire === 0) firstSendUs = t;
          lastSendUs = t;
          onWire += taken;
        }
        if (failed) {
          // As with one send per datagram, the datagrams of a failed call are sent and lost.
          sendErrors++;
          sent += n;
          continue;
        }
        sent += taken;
        if (taken < n) {
          // Seqs [sent, refusedEnd) were refused; count those not counted on an earlier tick.
          const refusedEnd = sent + n - taken;
          sendBlocked += Math.max(0, refusedEnd - Math.max(sent, blockedCounted));
          blockedCounted = Math.max(blockedCounted, refusedEnd);
          return;
        }
      }
    };

    const receiveAll = (): void => {
      for (let calls = 0; calls < RECV_CALLS_PER_TICK; calls++) {
        const n = sock.receive();
        if (n === 0) return;
        // One receive time per batch: the datagrams waited in the socket until this tick's
        // recvmmsg, so an RTT reads up to one tick (about 1 ms) long.
        const at = nowUs();
        for (let i = 0; i < n; i++) {
          if (sock.recvLength(i) < SEQ_PAYLOAD_BYTES) continue;
          const { seq, timeUs } = readSeqPayload(sock.recvSlots[i]!, 0);
          if (seq >= MAX_COUNT) continue;
          const key = flowKey(sock.recvAddress(i), sock.recvPort(i));
          if (key !== lastKey) {
            lastKey = key;
            lastFlow = flows.get(key);
            if (!lastFlow) {
              lastFlow = new FlowCounter(`${intToIp(sock.recvAddress(i))}:${sock.recvPort(i)}`, key === echoKey);
              flows.set(key, lastFlow);
            }
          }
          lastFlow!.record(seq, timeUs, at);
        }
        if (n < BATCH) return;
      }
    };

    const stopSending = (why: UdpStreamSummary['endedBy']): void => {
      sending = false;
      endedBy = why;
      if (cpuAtStart) {
        const used = process.cpuUsage(cpuAtStart);
        cpuMs = (used.user + used.system) / 1000;
        sendMs = performance.now() - sendStartMs;
      }
      endAt = performance.now() + args.lingerMs;
    };

    const finish = (error?: unknown): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      process.off('SIGINT', onSignal); process.off('SIGTERM', onSignal);
      let socketDrops = 0;
      try {
        if (error === undefined) {
          receiveAll();
          socketDrops = sock.drops();
        }
      } catch (e) {
        error = e;
      } finally {
        sock.close();
      }
      if (error !== undefined) { reject(error); return; }
      const span = (lastSendUs - firstSendUs) / 1e6;
      const summary: UdpStreamSummary = {
        dst: args.dst, port: args.port, listenPort, rate: args.rate,
        sent, sendErrors, sendBlocked, achievedRate: span > 0 ? Math.round((onWire - 1) / span) : 0,
        cpuMs: Math.round(cpuMs * 10) / 10, sendMs: Math.round(sendMs * 10) / 10, socketDrops, rcvbufBytes, firstSendUs, lastSendUs,
        flows: [...flows.values()].map((f) => f.summary(sent)), endedBy,
      };
      if (!flows.has(echoKey) && sent > 0) summary.flows.unshift(new FlowCounter(`${args.dst}:${args.port}`, true).summary(sent));
      resolve(summary);
    };
    const onSignal = (): void => {
      if (sending) stopSending('signal');
      endedBy = 'signal';
      finish();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);

    const tick = (): void => {
      try {
        if (sending) {
          sendDue();
          if (sent >= args.count) stopSending('count');
          else if (performance.now() - start >= args.durationMs) stopSending('duration');
        }
        receiveAll();
      } catch (e) {
        finish(e);
        return;
      }
      if (!sending && performance.now() >= endAt) finish();
      else timer = setTimeout(tick, TICK_MS);
    };

    // The runner waits for this line before it has the guest send to us.
    process.stderr.write(`udp-stream: listening on ${listenPort}\n`);
    if (!sending) {
      // Receive only: listen for the whole duration.
      endedBy = 'duration';
      endAt = start + args.durationMs + args.lingerMs;
    }
    tick();
  });
}

export async function main(argv: readonly string[]): Promise<void> {
  let args: UdpStreamArgs;
  try {
    args = parseArgs(argv);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exit(2);
  }
  const summary = await runStream(args);
  process.stdout.write(JSON.stringify(summary) + '\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).catch((e: Error) => {
    process.stderr.write(`udp-stream: ${e.message}\n`);
    process.exit(2);
  });
}
