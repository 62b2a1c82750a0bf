// Runs harness/traffic/udp-stream.ts (compiled next to this file) inside a run's netns and returns
// its summary. See udp-stream.ts for the datagram format and the bounds.
//
// API
//   startUdpStream(topo, { ns?, dst, port?, rate, count, durationMs, listenPort?, lingerMs? })
//     -> UdpRun { pid, ready: Promise<number /* bound port */>, result: Promise<UdpStreamSummary>, stop() }
import { fileURLToPath } from 'node:url';
import { neverRan, signalProcess } from '../net/exec.js';
import type { NsRole, Topology } from '../net/topology.js';
import type { UdpStreamSummary } from './udp-stream.js';

export type { UdpStreamSummary, UdpFlowSummary } from './udp-stream.js';

export interface UdpStreamOptions {
  /** Where the stream runs; default the client netns. */
  ns?: NsRole;
  dst: string;
  port?: number;
  rate: number;
  /** Datagrams to send; 0 = only receive (guest→client). */
  count: number;
  durationMs: number;
  listenPort?: number;
  lingerMs?: number;
}

export interface UdpRun {
  pid: number;
  /** Resolves with the bound local port once the socket listens. */
  ready: Promise<number>;
  result: Promise<UdpStreamSummary>;
  /** SIGINT: stop sending and receiving now; the summary still comes. */
  stop(): Promise<UdpStreamSummary>;
}

export class UdpStreamError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UdpStreamError';
  }
}

const SCRIPT = fileURLToPath(new URL('./udp-stream.js', import.meta.url));

export function startUdpStream(topo: Pick<Topology, 'spawn'>, opts: UdpStreamOptions): UdpRun {
  const lingerMs = opts.lingerMs ?? 1000;
  const argv = [process.execPath, SCRIPT, '--dst', opts.dst, '--port', String(opts.port ?? 7), '--rate', String(opts.rate),
    '--count', String(opts.count), '--duration-ms', String(opts.durationMs), '--listen-port', String(opts.listenPort ?? 0),
    '--linger-ms', String(lingerMs)];
  const child = topo.spawn(opts.ns ?? 'client', argv);
  let err = '';
  let markReady: (port: number) => void = () => undefined;
  let failReady: (e: Error) => void = () => undefined;
  const ready = new Promise<number>((resolve, reject) => { markReady = resolve; failReady = reject; });
  ready.catch(() => undefined); // a caller that only awaits `result` still sees the failure there
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
    const m = /udp-stream: listening on (\d+)/.exec(err);
    if (m) markReady(Number(m[1]));
  });
  // The script bounds itself; this is the backstop if it hangs (the process is wedged).
  const bound = setTimeout(() => void signalProcess(child.pid!, 'SIGKILL').catch(() => false), opts.durationMs + lingerMs + 15_000);
  const result = child.then((r): UdpStreamSummary => {
    clearTimeout(bound);
    try {
      const why = neverRan(r);
      if (why) throw new Error(`could not start: ${why}`);
      if (r.exitCode !== 0) throw new Error(r.signal ?? `exit code ${r.exitCode}`);
      return JSON.parse(String(r.stdout).trim().split('\n').pop() ?? '') as UdpStreamSummary;
    } catch (e) {
      const failed = new UdpStreamError(`udp-stream to ${opts.dst}:${opts.port ?? 7} failed (${(e as Error).message}): ${err.trim() || 'no output'}`, { cause: e });
      failReady(failed);
      throw failed;
    }
  });
  return {
    pid: child.pid!,
    ready,
    result,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) await signalProcess(child.pid!, 'SIGINT').catch(() => false);
      return result;
    },
  };
}
