// A sequenced UDP stream, run as its own process inside the client netns:
//   ip netns exec NS node dist/harness/udp-stream.js --dst IP --port 7 --rate R --count N
//     --duration-ms D [--listen-port L] [--linger-ms 1000]
// Each datagram carries an 8-byte sequence number (big-endian, from 0, as the engine guest's
// counters expect) and the 8-byte send time in µs since the epoch. The socket also takes
// whatever comes back: echoes from dst:port and datagrams the guest sends to --listen-port.
// Sending stops after --count datagrams or --duration-ms, whichever is first; then it waits
// --linger-ms for late answers and prints one JSON line (UdpStreamSummary) on stdout.
// --count 0 only receives (the guest→client direction). SIGINT/SIGTERM end it early, with
// the summary. Once bound it prints "udp-stream: listening on PORT" on stderr. Rates up to 10,000/s: each 1 ms tick sends every datagram now due.
import { createSocket } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

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
  sent: number; sendErrors: number;
  /** µs since the epoch of the first and last datagram sent (0 when none). */
  firstSendUs: number; lastSendUs: number;
  flows: UdpFlowSummary[];
  endedBy: 'count' | 'duration' | 'signal';
}

export interface UdpStreamArgs {
  dst: string; port: number; rate: number; count: number; durationMs: number; listenPort: number; lingerMs: number;
}

const MAX_DURATION_MS = 600_000;
const MAX_RATE = 100_000;

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
  if (!dst || !/^\d{1,3}(\.\d{1,3}){3}$/.test(dst)) throw new Error(`udp-stream: --dst must be an IPv4 address, got ${JSON.stringify(dst)}`);
  return {
    dst, port: int('port', 7, 1, 65535), rate: int('rate', undefined, 1, MAX_RATE), count: int('count', undefined, 0, 100_000_000),
    durationMs: int('duration-ms', undefined, 1, MAX_DURATION_MS), listenPort: int('listen-port', 0, 0, 65535),
    lingerMs: int('linger-ms', 1000, 0, 60_000),
  };
}

function nowUs(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

class FlowCounter {
  received = 0; duplicates = 0; reordered = 0; highest = -1;
  readonly seen = new Set<number>();
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

export function runStream(args: UdpStreamArgs): Promise<UdpStreamSummary> {
  return new Promise((resolve, reject) => {
    const sock = createSocket('udp4');
    const flows = new Map<string, FlowCounter>();
    const echoFrom = `${args.dst}:${args.port}`;
    let sent = 0, sendErrors = 0, firstSendUs = 0, lastSendUs = 0;
    let endedBy: UdpStreamSummary['endedBy'] = 'count';
    let tick: NodeJS.Timeout | undefined, linger: NodeJS.Timeout | undefined, finished = false;

    sock.on('message', (msg, rinfo) => {
      if (msg.length < 16) return;
      const at = nowUs();
      const key = `${rinfo.address}:${rinfo.port}`;
      let f = flows.get(key);
      if (!f) flows.set(key, (f = new FlowCounter(key, key === echoFrom)));
      f.record(Number(msg.readBigUInt64BE(0)), Number(msg.readBigUInt64BE(8)), at);
    });
    sock.on('error', (e) => { finish(); reject(e); });

    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearTimeout(tick); clearTimeout(linger);
      process.off('SIGINT', onSignal); process.off('SIGTERM', onSignal);
      const summary: UdpStreamSummary = {
        dst: args.dst, port: args.port, listenPort: sock.address().port, rate: args.rate,
        sent, sendErrors, firstSendUs, lastSendUs,
        flows: [...flows.values()].map((f) => f.summary(sent)), endedBy,
      };
      if (!flows.has(echoFrom) && sent > 0) summary.flows.unshift(new FlowCounter(echoFrom, true).summary(sent));
      sock.close();
      resolve(summary);
    };
    const onSignal = (): void => { endedBy = 'signal'; finish(); };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);

    const stopSending = (): void => {
      clearTimeout(tick);
      linger = setTimeout(finish, args.lingerMs);
    };

    sock.bind(args.listenPort, () => {
      // The runner waits for this line before it has the guest send to us.
      process.stderr.write(`udp-stream: listening on ${sock.address().port}\n`);
      const start = performance.now();
      const step = (): void => {
        const elapsed = performance.now() - start;
        const due = Math.min(args.count, Math.floor((elapsed * args.rate) / 1000) + 1);
        while (sent < due) {
          const buf = Buffer.allocUnsafe(16);
          const t = nowUs();
          buf.writeBigUInt64BE(BigInt(sent), 0);
          buf.writeBigUInt64BE(BigInt(t), 8);
          if (sent === 0) firstSendUs = t;
          lastSendUs = t;
          sent++;
          sock.send(buf, args.port, args.dst, (e) => { if (e) sendErrors++; });
        }
        if (sent >= args.count) { endedBy = 'count'; stopSending(); return; }
        if (elapsed >= args.durationMs) { endedBy = 'duration'; stopSending(); return; }
        tick = setTimeout(step, 1);
      };
      if (args.count === 0) {
        // Receive only: listen for the whole duration.
        endedBy = 'duration';
        linger = setTimeout(finish, args.durationMs + args.lingerMs);
      } else {
        step();
      }
    });
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
