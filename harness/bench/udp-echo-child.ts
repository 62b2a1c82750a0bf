// Child process for the echo bench: a UDP echo client, run inside the client netns.
//   node udp-echo-child.js DST PORT DURATION_MS WINDOW   -> one JSON line (UdpEchoReport)
// WINDOW 1 is a closed loop: send one datagram, wait for its echo, send the next. WINDOW W
// keeps W datagrams in flight, each echo releasing the next send. A datagram unanswered for
// 200 ms counts as lost and is replaced, so a lost echo cannot stall the loop. Payload: the
// harness's stream layout (lib/seq-payload.ts; the send time is left 0), padded to 32 bytes.
import { createSocket } from 'node:dgram';
import { readSeq, writeSeqPayload } from '../../lib/seq-payload.js';

export interface UdpEchoReport {
  window: number;
  sent: number;
  received: number;
  lost: number;
  /** From the first send to the end of the sending period. */
  elapsedMs: number;
}

const LOST_AFTER_MS = 200;
const MAX_DURATION_MS = 60_000;

const [dst, portText, durationText, windowText] = process.argv.slice(2);
const port = Number(portText);
const durationMs = Number(durationText);
const window = Number(windowText);
if (!dst || !(port > 0 && port < 65536) || !(durationMs > 0 && durationMs <= MAX_DURATION_MS) || !(window >= 1 && window <= 1024)) {
  process.stderr.write('usage: udp-echo-child.js DST PORT DURATION_MS(<=60000) WINDOW(1..1024)\n');
  process.exit(2);
}

const sock = createSocket('udp4');
const inFlight = new Map<number, number>();
let seq = 0, sent = 0, received = 0, lost = 0, sending = true;

function sendOne(): void {
  const b = Buffer.alloc(32);
  writeSeqPayload(b, 0, seq, 0);
  inFlight.set(seq++, performance.now());
  sent++;
  sock.send(b, port, dst);
}

sock.on('message', (m) => {
  if (m.length < 8 || !inFlight.delete(readSeq(m, 0))) return;
  received++;
  if (sending) sendOne();
});
await new Promise<void>((r) => sock.bind(0, r));

const started = performance.now();
const reaper = setInterval(() => {
  const now = performance.now();
  for (const [s, at] of inFlight) {
    if (now - at < LOST_AFTER_MS) continue;
    inFlight.delete(s);
    lost++;
    if (sending) sendOne();
  }
}, 20);
for (let i = 0; i < window; i++) sendOne();
await new Promise((r) => setTimeout(r, durationMs));
sending = false;
const elapsedMs = performance.now() - started;
// Echoes of the last datagrams may still be on their way: they count, briefly.
await new Promise((r) => setTimeout(r, LOST_AFTER_MS));
clearInterval(reaper);
lost += inFlight.size;
sock.close();
const report: UdpEchoReport = { window, sent, received, lost, elapsedMs: Math.round(elapsedMs) };
process.stdout.write(`${JSON.stringify(report)}\n`);
