// The UDP generator as the harness runs it (its own process, its CLI, its stderr line and its
// JSON summary), on loopback only: no netns, no privilege. traffic.test.ts runs it through a
// real topology.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startLoopbackEcho } from '../../../fixtures/udp-echo.js';
import { SEQ_PAYLOAD_BYTES, writeSeqPayload } from '../../../lib/seq-payload.js';
import { UdpSocket } from '../../../lib/udp-socket.js';
import { parseArgs, type UdpStreamSummary } from '../udp-stream.js';

const GENERATOR = fileURLToPath(new URL('../udp-stream.js', import.meta.url));
const BACKSTOP_MS = 20_000;

interface Started { child: ChildProcess; ready: Promise<number>; result: Promise<UdpStreamSummary> }

/** The generator with `args`; ready is the port of its "listening on" line. */
function generator(args: string[]): Started {
  const child = spawn(process.execPath, [GENERATOR, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  let onReady: (port: number) => void = () => undefined;
  const ready = new Promise<number>((resolve) => { onReady = resolve; });
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
    const m = /udp-stream: listening on (\d+)/.exec(err);
    if (m) onReady(Number(m[1]));
  });
  const backstop = setTimeout(() => child.kill('SIGKILL'), BACKSTOP_MS);
  const result = new Promise<UdpStreamSummary>((resolve, reject) => {
    child.once('close', (code, signal) => {
      clearTimeout(backstop);
      if (code === 0) resolve(JSON.parse(out) as UdpStreamSummary);
      else reject(new Error(`udp-stream ${args.join(' ')} ended with ${signal ?? `exit code ${code}`}: ${err.trim()}`));
    });
  });
  return { child, ready: Promise.race([ready, result.then(() => { throw new Error(`udp-stream never listened: ${err}`); })]), result };
}

/** Datagrams dropped machine-wide at the netdev backlog (/proc/net/softnet_stat, column 2). */
function backlogDrops(): number {
  return readFileSync('/proc/net/softnet_stat', 'utf8').trim().split('\n')
    .reduce((n, line) => n + parseInt(line.trim().split(/\s+/)[1]!, 16), 0);
}

test('--rate up to 200,000/s and a hidden --rcvbuf are accepted, and bounded', () => {
  const base = ['--dst', '127.0.0.1', '--count', '1', '--duration-ms', '1'];
  assert.is(parseArgs([...base, '--rate', '200000']).rate, 200_000);
  assert.throws(() => parseArgs([...base, '--rate', '200001']), /--rate must be an integer from 1 to 200000/);
  assert.is(parseArgs([...base, '--rate', '1', '--rcvbuf', '4096']).rcvbufBytes, 4096);
  assert.not.ok('rcvbufBytes' in parseArgs([...base, '--rate', '1']));
  assert.throws(() => parseArgs([...base, '--rate', '1', '--rcvbuf', '0']), /--rcvbuf must be an integer from 1/);
  assert.throws(() => parseArgs(['--dst', '10.0.0.256', '--rate', '1', '--count', '1', '--duration-ms', '1']), /--dst must be an IPv4 address/);
});

test('20,000/s for 500 ms to a loopback echo: every datagram sent and echoed, at the asked rate', async () => {
  const echo = await startLoopbackEcho(BACKSTOP_MS);
  try {
    const gen = generator(['--dst', '127.0.0.1', '--port', String(echo.port), '--rate', '20000', '--count', '10000',
      '--duration-ms', '5000', '--linger-ms', '1000']);
    const port = await gen.ready;
    const s = await gen.result;
    assert.is(s.listenPort, port);
    assert.is(s.endedBy, 'count');
    assert.is(s.sent, 10_000);
    assert.is(s.sendErrors, 0);
    assert.is(s.sendBlocked, 0, 'loopback frees the send buffer inside the call: nothing can block');
    assert.is(s.socketDrops, 0);
    assert.is(s.flows.length, 1, JSON.stringify(s.flows.map((f) => f.from)));
    const flow = s.flows[0]!;
    assert.ok(flow.echo);
    assert.is(flow.from, `127.0.0.1:${echo.port}`);
    assert.is(flow.received, 10_000);
    assert.equal(flow.lostSeqs, []);
    assert.is(flow.duplicates, 0);
    assert.is(flow.highestSeq, 9_999);
    assert.ok(flow.rttMs!.min >= 0 && flow.rttMs!.max >= flow.rttMs!.avg);
    const ratio = s.achievedRate / 20_000;
    assert.ok(ratio > 0.8 && ratio < 1.25, `achieved ${s.achievedRate}/s for 20,000/s asked`);
    assert.ok(s.cpuMs > 0 && s.sendMs > 0, `cpu ${s.cpuMs} ms over ${s.sendMs} ms`);
    // 4 MiB asked: the kernel doubles it, capped at net.core.rmem_max.
    assert.is(s.rcvbufBytes, 2 * Math.min(4 << 20, Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8'))));
  } finally {
    echo.stop();
  }
});

test('socketDrops is what the kernel dropped at the generator socket: a burst into a tiny buffer', async () => {
  const BURST = 3_000, BATCH = 500;
  const gen = generator(['--dst', '127.0.0.1', '--rate', '1', '--count', '0', '--duration-ms', '500', '--linger-ms', '0', '--rcvbuf', '1']);
  const port = await gen.ready;
  const backlog0 = backlogDrops();
  const blaster = UdpSocket.open({ batch: BATCH });
  let sent = 0, from = 0;
  try {
    blaster.setDestination('127.0.0.1', port);
    for (let b = 0; b < BURST / BATCH; b++) {
      for (let i = 0; i < BATCH; i++) writeSeqPayload(blaster.sendSlots[i]!, 0, b * BATCH + i, 0);
      sent += blaster.send(0, BATCH, SEQ_PAYLOAD_BYTES);
    }
    from = blaster.localPort();
  } finally {
    blaster.close();
  }
  const s = await gen.result;
  const backlog = backlogDrops() - backlog0;
  assert.is(sent, BURST);
  assert.ok(s.rcvbufBytes < 16_384, `the kernel's minimum receive buffer, got ${s.rcvbufBytes}`);
  assert.is(s.sent, 0);
  const flow = s.flows.find((f) => f.from === `127.0.0.1:${from}`);
  assert.ok(flow && !flow.echo, JSON.stringify(s.flows.map((f) => f.from)));
  assert.ok(s.socketDrops > 0, 'a 3,000-datagram burst cannot fit a minimum buffer');
  // Every datagram was either read or dropped at the socket; the netdev backlog (machine-wide,
  // so a bound only) is the one other place the kernel may have dropped one.
  const accounted = flow!.received + s.socketDrops;
  assert.ok(accounted <= BURST && accounted + backlog >= BURST,
    `received ${flow!.received} + socket drops ${s.socketDrops} of ${BURST} (backlog drops ${backlog})`);
  assert.ok(flow!.lostSeqs.length <= s.socketDrops, 'each gap below the highest seq is a socket drop');
});

test.run();
