// What a sender says it sent, for the analyzer's holes in a request stream (analyzer.ts, "not
// on the wire"): iputils ping numbers its requests 1..transmitted, counting those that never
// reached the wire (dropped in its own host, as fixtures/make-pcaps.ts records with an output
// hook: -O reports them unanswered); the UDP generator (harness/traffic/udp-stream.ts) numbers
// its datagrams 0..sent-1, a failed sendmmsg's included.
//
// API
//   pingSenderLog(ping) -> SenderLog            from a parsed `ping -D -O` run
//   udpSenderLog(summary) -> SenderLog          from the generator's summary
//   readSenderLog(file) -> SenderLog            a saved ping output or generator summary (JSON)
import { readFile } from 'node:fs/promises';
import type { SenderLog } from './analyzer.js';
import { isIpv4 } from '../../lib/net-addr.js';
import { parsePingOutput, pingStarted, type PingResult } from '../traffic/ping.js';
import type { UdpStreamSummary } from '../traffic/udp.js';

export function pingSenderLog(ping: Pick<PingResult, 'target' | 'transmitted'>): SenderLog {
  // A host name cannot be matched to the capture's addresses: then the log is any ping flow's.
  return { kind: 'ping', ...(isIpv4(ping.target) ? { to: ping.target } : {}), firstSeq: 1, lastSeq: ping.transmitted, source: 'ping output' };
}

export function udpSenderLog(s: Pick<UdpStreamSummary, 'dst' | 'port' | 'sent'>): SenderLog {
  return { kind: 'udp', to: s.dst, port: s.port, firstSeq: 0, lastSeq: s.sent - 1, source: 'UDP generator summary' };
}

/** A file given as `analyze --sender-log`: ping's output, or the generator's JSON summary line. */
export async function readSenderLog(file: string): Promise<SenderLog> {
  const text = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new Error(`sender log ${file}: cannot read it (${e.code ?? e.message}); give saved \`ping -D -O\` output or the UDP generator's summary`, { cause: e });
  });
  const last = text.trim().split('\n').pop() ?? '';
  if (last.startsWith('{')) {
    let s: Partial<UdpStreamSummary>;
    try {
      s = JSON.parse(last) as Partial<UdpStreamSummary>;
    } catch (e) {
      throw new Error(`${file}: not a UDP generator summary: ${(e as Error).message}`);
    }
    if (typeof s.dst !== 'string' || typeof s.port !== 'number' || !(Number.isInteger(s.sent) && s.sent! >= 0)) {
      throw new Error(`${file}: a UDP generator summary needs dst, port and sent`);
    }
    return { ...udpSenderLog(s as UdpStreamSummary), source: `UDP generator summary ${file}` };
  }
  if (!pingStarted(text)) {
    throw new Error(`${file}: neither ping output (no "PING host" line) nor a UDP generator summary (JSON); save \`ping -D -O ...\` output, or udp-stream's last line`);
  }
  return { ...pingSenderLog(parsePingOutput(text)), source: `ping output ${file}` };
}
