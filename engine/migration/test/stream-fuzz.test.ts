// Bounded, seeded fuzz of the stream and return-path decoders: real encoded streams,
// mutated (bit flips, truncation, garbage, spliced segments) and pushed in random chunk
// splits. Every case must either decode or throw StreamError with a message; anything
// else (a RangeError, a TypeError, a loop that does not end) is a decoder bug.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  RpDecoder, StreamDecoder, StreamEncoder, StreamError, encodeRp, type DeviceState,
} from '../stream.js';
import { PAGE_SIZE, xorshift32 } from '../../guest/ram.js';

const CASES = 2000;
const RP_CASES = 500;

const device: DeviceState = {
  nic: { mac: '52:54:00:12:34:56', rxEnabled: true, queues: 2 },
  guest: { ip: '192.168.100.2', prefixLength: 24, arpCache: [], udp: [] },
};

/** A stream and, for local migration, where the source pauses for FDS_READY (end of tap-local). */
interface Base { data: Buffer; pauseAt: number }

function baseStreams(): Base[] {
  const out: Base[] = [];
  for (const [local, netpass] of [[false, false], [false, true], [true, false], [true, true]] as const) {
    const e = new StreamEncoder(16384);
    e.header({ ramSize: 8 * PAGE_SIZE, local, netpass, returnPath: true, queues: 2 });
    e.passStart(1).page(0, Buffer.alloc(PAGE_SIZE, 3)).zeroPage(1).zeroPage(2).page(5, Buffer.alloc(PAGE_SIZE, 4)).passEnd(1, 4);
    e.ping(1).passStart(2).zeroPage(7).passEnd(2, 1);
    let pauseAt = -1;
    if (local) {
      e.tapLocal([{ vnetHdr: true, offloadFlags: 7, enabled: true, vnetHdrLen: 12 }, { vnetHdr: true, offloadFlags: 7, enabled: true, vnetHdrLen: 12 }]);
      pauseAt = e.pending;
      e.fdsSent(2);
    }
    e.device(device).eof();
    if (netpass) e.netpassFrame(5, Buffer.alloc(60, 1)).netpassFrame(6, Buffer.alloc(100, 2)).netpassEnd(2, 0);
    out.push({ data: e.flush(), pauseAt });
  }
  return out;
}

function mutate(base: Buffer, rand: () => number): { data: Buffer; how: string } {
  const r = (n: number): number => rand() % n;
  const data = Buffer.from(base);
  switch (r(5)) {
    case 0: {
      const flips = 1 + r(8);
      for (let i = 0; i < flips; i++) data[r(data.length)]! ^= 1 << r(8);
      return { data, how: `${flips} bit flip(s)` };
    }
    case 1: {
      const cut = r(data.length);
      return { data: data.subarray(0, cut), how: `truncated at ${cut}` };
    }
    case 2: {
      const at = r(data.length), len = 1 + r(64);
      for (let i = at; i < Math.min(data.length, at + len); i++) data[i] = rand() & 0xff;
      return { data, how: `${len} garbage byte(s) at ${at}` };
    }
    case 3: {
      const a = r(data.length), b = r(data.length), len = r(200);
      const spliced = Buffer.concat([data.subarray(0, a), data.subarray(b, b + len), data.subarray(a)]);
      return { data: spliced, how: `segment ${b}+${len} spliced at ${a}` };
    }
    default: {
      const len = r(300);
      const junk = Buffer.alloc(len);
      for (let i = 0; i < len; i++) junk[i] = rand() & 0xff;
      return { data: r(2) ? Buffer.concat([data, junk]) : junk, how: `${len} random byte(s)` };
    }
  }
}

/**
 * Pushes `data` in random splits, as a destination would. A source pauses after its
 * tap-local section until FDS_READY, so no chunk crosses `pauseAt`; fd waits are answered.
 */
function decode(data: Buffer, pauseAt: number, rand: () => number): void {
  const d = new StreamDecoder();
  let off = 0;
  while (off < data.length) {
    let n = 1 + (rand() % 5000);
    if (off < pauseAt && off + n > pauseAt) n = pauseAt - off;
    d.push(data.subarray(off, off + n));
    off += n;
    if (d.awaitingFds) d.fdsReceived(d.awaitingFds);
  }
  d.end();
}

test(`stream decoder: ${CASES} mutated streams decode or fail with StreamError`, () => {
  const rand = xorshift32(20261122);
  const bases = baseStreams();
  // The unmutated streams decode.
  for (const b of bases) decode(b.data, b.pauseAt, rand);
  let decoded = 0, rejected = 0;
  const messages = new Set<string>();
  for (let i = 0; i < CASES; i++) {
    const base = bases[i % bases.length]!;
    const { data, how } = mutate(base.data, rand);
    const started = performance.now();
    try {
      decode(data, base.pauseAt, rand);
      decoded++;
    } catch (e) {
      if (!(e instanceof StreamError) || !e.message) {
        throw new assert.Assertion({ message: `case ${i} (${how}) threw ${(e as Error)?.name}: ${(e as Error)?.message}`, operator: 'fuzz', expects: 'StreamError', actual: e });
      }
      rejected++;
      messages.add(e.message.replace(/\d+/g, 'N').slice(0, 60));
    }
    // A synchronous decoder that loops would never get here; this bounds a pathological slow path.
    assert.ok(performance.now() - started < 5000, `case ${i} (${how}) took too long`);
  }
  assert.is(decoded + rejected, CASES);
  assert.ok(rejected > CASES / 2, `most mutations are caught (${rejected} of ${CASES})`);
  console.log(`  stream fuzz: ${CASES} cases, ${decoded} decoded, ${rejected} rejected with StreamError, ${messages.size} distinct messages`);
});

test(`return-path decoder: ${RP_CASES} mutated message sequences`, () => {
  const rand = xorshift32(77);
  const base = Buffer.concat([
    encodeRp({ type: 'pong', id: 1 }), encodeRp({ type: 'fds-ready', count: 2 }), encodeRp({ type: 'vm-started' }),
    encodeRp({ type: 'fail', reason: 'x'.repeat(40) }), encodeRp({ type: 'shut', status: 0 }),
  ]);
  let ok = 0, rejected = 0;
  for (let i = 0; i < RP_CASES; i++) {
    const { data, how } = mutate(base, rand);
    try {
      const d = new RpDecoder();
      for (let off = 0; off < data.length; off += 1 + (rand() % 17)) d.push(data.subarray(off, off + 1 + (rand() % 17)));
      d.end();
      ok++;
    } catch (e) {
      if (!(e instanceof StreamError)) assert.unreachable(`case ${i} (${how}) threw ${(e as Error)?.name}: ${(e as Error)?.message}`);
      rejected++;
    }
  }
  assert.is(ok + rejected, RP_CASES);
  console.log(`  return-path fuzz: ${RP_CASES} cases, ${ok} decoded, ${rejected} rejected`);
});

test.run();
