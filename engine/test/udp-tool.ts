// Client-side UDP traffic for engine tests, run inside the client netns:
//   node udp-tool.js send HOST PORT RATE COUNT   sequenced datagrams (lib/seq-payload.ts) to HOST:PORT
//   node udp-tool.js echo HOST PORT RATE COUNT   same, and count the echoes that come back (and
//                                                those that came after a higher seq: reordered)
//   node udp-tool.js recv PORT MS                count sequenced datagrams arriving for MS ms
// Prints one JSON line with the counts. Every loop is bounded by COUNT and a deadline.
import dgram from 'node:dgram';
import { readSeq, SEQ_PAYLOAD_BYTES, writeSeqPayload } from '../../lib/seq-payload.js';

const [mode, a, b, c, d] = process.argv.slice(2);

async function sendStream(host: string, port: number, rate: number, count: number, sock: dgram.Socket): Promise<number> {
  const start = performance.now();
  let sent = 0;
  const payload = Buffer.alloc(SEQ_PAYLOAD_BYTES);
  while (sent < count) {
    const due = Math.min(count, Math.floor(((performance.now() - start) / 1000) * rate) + 1);
    while (sent < due) {
      writeSeqPayload(payload, 0, sent, Math.round((performance.timeOrigin + performance.now()) * 1000));
      await new Promise<void>((r) => sock.send(payload, port, host, () => r()));
      sent++;
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  return sent;
}

if (mode === 'send' || mode === 'echo') {
  // Echoes can come back in a burst (a netpass backlog); ask for more than the default
  // buffer (the kernel caps it at net.core.rmem_max), as the harness's generator does.
  const sock = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
  const seen = new Set<number>();
  let replies = 0, reordered = 0, highest = -1;
  sock.on('message', (m) => {
    replies++;
    if (m.length < 8) return;
    const seq = readSeq(m, 0);
    if (!seen.has(seq) && seq < highest) reordered++;
    highest = Math.max(highest, seq);
    seen.add(seq);
  });
  await new Promise<void>((r) => sock.bind(0, r));
  const sent = await sendStream(a!, Number(b), Number(c), Number(d), sock);
  await new Promise((r) => setTimeout(r, mode === 'echo' ? 1000 : 100));
  console.log(JSON.stringify({ sent, replies, unique: seen.size, reordered }));
  sock.close();
} else if (mode === 'recv') {
  const sock = dgram.createSocket('udp4');
  const seen = new Set<number>();
  let received = 0;
  sock.on('message', (m) => { received++; if (m.length >= 8) seen.add(readSeq(m, 0)); });
  await new Promise<void>((r) => sock.bind(Number(a), r));
  await new Promise((r) => setTimeout(r, Number(b)));
  console.log(JSON.stringify({ received, unique: seen.size }));
  sock.close();
} else {
  console.error('usage: udp-tool send|echo HOST PORT RATE COUNT | recv PORT MS');
  process.exit(2);
}
