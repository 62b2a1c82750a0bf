// A bounded, seeded fuzz run over the migration-stream parser (issue 9, "Bad input"): real
// streams made by StreamEncoder (plain, return path, netpass frames after EOF, local migration
// with tap-local/fds-sent) are mutated (bit flips, overwritten bytes and length fields,
// truncation, inserted, deleted and duplicated ranges, sections spliced from another stream)
// and fed to StreamDecoder in random chunks. FUZZ_CASES cases (2,000 by default), FUZZ_SEED
// to change the seed. Each must decode or throw StreamError with a message; any other
// exception fails, and so does a case that does not finish: the cases run in a worker thread
// that is terminated when it stops reporting progress.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import {
  HEADER_SIZE, SECTION_HEADER_SIZE, SectionType, StreamDecoder, StreamEncoder, StreamError, type DeviceState, type StreamExpectation,
} from '../migration-stream.js';
import { PAGE_SIZE } from '../ram.js';
import { SeededRandom } from './seeded-random.js';

const CASES = Number(process.env.FUZZ_CASES ?? 2000);
const SEED = Number(process.env.FUZZ_SEED ?? 0x57ea3);
/** A case that takes longer than this without finishing counts as a hang. */
const STALL_MS = 20_000;
const RAM_PAGES = 64;

type Variant = 'plain' | 'return-path' | 'netpass' | 'local';

const DEVICE: DeviceState = {
  nic: { mac: '52:54:00:12:34:56', rxEnabled: true, queues: 1 },
  guest: {
    ip: '192.168.100.2', prefixLength: 24, arpCache: [{ ip: '192.168.100.1', mac: '02:00:00:00:00:01' }],
    udp: [{ port: 9, received: 10, missing: 1, duplicates: 0, reordered: 0, 'highest-seq': 11 }],
  },
};

/** A valid stream of `variant`, with the section boundaries (offsets) for splicing. */
function realStream(r: SeededRandom, variant: Variant): { bytes: Buffer; sections: number[]; queues: number } {
  const queues = variant === 'local' ? r.int(1, 4) : 1;
  const enc = new StreamEncoder(4096);
  const parts: Buffer[] = [];
  const sections: number[] = [];
  let at = 0;
  const cut = (): void => {
    const b = enc.flush();
    if (b.length) { parts.push(b); sections.push(at); at += b.length; }
  };
  enc.header({ ramSize: RAM_PAGES * PAGE_SIZE, local: variant === 'local', netpass: variant === 'netpass', returnPath: variant !== 'plain', queues });
  cut();
  const passes = r.int(1, 3);
  for (let pass = 1; pass <= passes; pass++) {
    enc.passStart(pass);
    cut();
    let pages = 0;
    for (let p = 0; p < RAM_PAGES; p++) {
      if (r.next() < 0.7) continue;
      pages++;
      if (r.next() < 0.5) enc.zeroPage(p);
      else enc.page(p, r.bytes(PAGE_SIZE));
      cut();
    }
    enc.passEnd(pass, pages);
    cut();
  }
  if (variant === 'local') {
    enc.tapLocal(Array.from({ length: queues }, () => ({ vnetHdr: true, offloadFlags: 0x11, enabled: true, vnetHdrLen: 12 })));
    cut();
    enc.fdsSent(queues);
    cut();
  }
  enc.device({ ...DEVICE, nic: { ...DEVICE.nic, queues } });
  cut();
  enc.ping(0xffffffff);
  cut();
  enc.eof();
  cut();
  if (variant === 'netpass') {
    const frames = r.int(0, 3);
    for (let i = 0; i < frames; i++) { enc.netpassFrame(Date.now(), r.bytes(r.int(14, 200))); cut(); }
    enc.netpassEnd(frames, 0);
    cut();
  }
  return { bytes: Buffer.concat(parts), sections, queues };
}

type Mutation = 'bit-flip' | 'overwrite' | 'length-field' | 'truncate' | 'insert' | 'delete' | 'duplicate' | 'splice' | 'none';

function mutate(r: SeededRandom, s: { bytes: Buffer; sections: number[] }, other: Buffer): { bytes: Buffer; mutation: Mutation } {
  const b = Buffer.from(s.bytes);
  const mutation = r.pick<Mutation>(['bit-flip', 'overwrite', 'length-field', 'truncate', 'insert', 'delete', 'duplicate', 'splice', 'none']);
  const pos = (): number => r.int(0, b.length - 1);
  switch (mutation) {
    case 'bit-flip': {
      for (let i = r.int(1, 8); i > 0; i--) { const p = pos(); b[p] = b[p]! ^ (1 << r.int(0, 7)); }
      return { bytes: b, mutation };
    }
    case 'overwrite': {
      const p = pos();
      r.bytes(Math.min(r.int(1, 16), b.length - p)).copy(b, p);
      return { bytes: b, mutation };
    }
    case 'length-field': {
      // The section header is type (1 byte) + length (4 bytes LE): give one a hostile length.
      const at = r.pick(s.sections.slice(1));
      b.writeUInt32LE(r.pick([0, 1, 0xffffffff, 0x7fffffff, PAGE_SIZE + 3, r.int(0, 1 << 24)]), at + 1);
      return { bytes: b, mutation };
    }
    case 'truncate': return { bytes: b.subarray(0, r.int(0, b.length - 1)), mutation };
    case 'insert': {
      const p = pos();
      return { bytes: Buffer.concat([b.subarray(0, p), r.bytes(r.int(1, 64)), b.subarray(p)]), mutation };
    }
    case 'delete': {
      const p = pos();
      return { bytes: Buffer.concat([b.subarray(0, p), b.subarray(Math.min(b.length, p + r.int(1, 64)))]), mutation };
    }
    case 'duplicate': {
      const i = r.int(1, s.sections.length - 1);
      const start = s.sections[i]!, end = s.sections[i + 1] ?? b.length;
      return { bytes: Buffer.concat([b.subarray(0, end), b.subarray(start, end), b.subarray(end)]), mutation };
    }
    case 'splice': {
      const p = r.pick(s.sections.slice(1));
      const from = r.int(0, other.length - SECTION_HEADER_SIZE);
      return { bytes: Buffer.concat([b.subarray(0, p), other.subarray(from, from + r.int(SECTION_HEADER_SIZE, 5000))]), mutation };
    }
    default: return { bytes: b, mutation };
  }
}

type Outcome = 'decoded' | 'stream-error';

/**
 * Where each tap-local section ends, reading the section headers as the decoder will. The
 * destination receives the fds there (the source waits for FDS_READY before sending on), so a
 * chunk must not run past that point: the engine's channel never delivers one that does.
 */
function fdStops(bytes: Buffer): Set<number> {
  const stops = new Set<number>();
  for (let off = HEADER_SIZE; off + SECTION_HEADER_SIZE <= bytes.length;) {
    const end = off + SECTION_HEADER_SIZE + bytes.readUInt32LE(off + 1);
    if (bytes[off] === SectionType.TapLocal) stops.add(end);
    off = end;
  }
  return stops;
}

/** Feeds `bytes` in random chunks, passing fds out of band when the decoder asks for them. */
function decode(r: SeededRandom, bytes: Buffer, expect: StreamExpectation): Outcome {
  const dec = new StreamDecoder(expect);
  const stops = [...fdStops(bytes)].sort((a, b) => a - b);
  try {
    let off = 0;
    while (off < bytes.length) {
      const stop = stops.find((x) => x > off) ?? bytes.length;
      const n = Math.min(stop - off, r.pick([1, 5, 17, 4096, 4101, 65536]));
      dec.push(bytes.subarray(off, off + n));
      off += n;
      if (dec.awaitingFds) dec.fdsReceived(dec.awaitingFds);
    }
    dec.end();
    return 'decoded';
  } catch (e) {
    if (e instanceof StreamError && e.message.trim().length > 0) return 'stream-error';
    throw e;
  }
}

// ---- worker: runs the cases, reports progress ---------------------------------------------

interface Progress { kind: 'progress'; n: number }
interface Done { kind: 'done'; counts: Record<string, number> }
interface Failure { kind: 'failure'; n: number; what: string; error: string }
type Message = Progress | Done | Failure;

function runCases(cases: number, seed: number, post: (m: Message) => void): void {
  const r = new SeededRandom(seed);
  const counts: Record<string, number> = {};
  const variants: Variant[] = ['plain', 'return-path', 'netpass', 'local'];
  for (let n = 0; n < cases; n++) {
    const variant = r.pick(variants);
    const s = realStream(r, variant);
    const other = realStream(r, r.pick(variants)).bytes;
    const { bytes, mutation } = mutate(r, s, other);
    const expect: StreamExpectation = { ramSize: RAM_PAGES * PAGE_SIZE, local: variant === 'local', queues: s.queues };
    let outcome: Outcome;
    try {
      outcome = decode(r, bytes, expect);
    } catch (e) {
      const err = e as Error;
      post({ kind: 'failure', n, what: `${variant} stream, ${mutation}, ${bytes.length} bytes`, error: `${err.name}: ${err.message}\n${err.stack ?? ''}` });
      return;
    }
    if (mutation === 'none' && outcome !== 'decoded') {
      post({ kind: 'failure', n, what: `unmutated ${variant} stream`, error: 'a valid stream did not decode' });
      return;
    }
    counts[`${mutation} -> ${outcome}`] = (counts[`${mutation} -> ${outcome}`] ?? 0) + 1;
    if (n % 50 === 0) post({ kind: 'progress', n });
  }
  post({ kind: 'done', counts });
}

if (!isMainThread) {
  const { cases, seed } = workerData as { cases: number; seed: number };
  runCases(cases, seed, (m) => parentPort!.postMessage(m));
} else {
  test(`${CASES} mutated streams (seed ${SEED}): each decodes or throws StreamError with a message, none hangs`, async () => {
    const worker = new Worker(new URL(import.meta.url), { workerData: { cases: CASES, seed: SEED } });
    let last = -1;
    const result = await new Promise<Done | Failure>((resolve, reject) => {
      let stall = setTimeout(onStall, STALL_MS);
      function onStall(): void {
        void worker.terminate();
        reject(new Error(`the decoder stopped making progress after case ${last} (no report for ${STALL_MS} ms): a hang`));
      }
      worker.on('message', (m: Message) => {
        clearTimeout(stall);
        if (m.kind === 'progress') { last = m.n; stall = setTimeout(onStall, STALL_MS); return; }
        resolve(m);
      });
      worker.on('error', (e) => { clearTimeout(stall); reject(e); });
      worker.on('exit', (code) => { clearTimeout(stall); if (code !== 0) reject(new Error(`fuzz worker exited with code ${code}`)); });
    });
    await worker.terminate();
    if (result.kind === 'failure') assert.unreachable(`case ${result.n} (${result.what}): ${result.error}`);
    const counts = (result as Done).counts;
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    assert.is(total, CASES);
    assert.ok(Object.keys(counts).some((k) => k.endsWith('stream-error')), 'no case was refused: the mutations did not reach the parser');
    console.log(`stream fuzz: ${total} cases, seed ${SEED}: ${Object.entries(counts).sort().map(([k, v]) => `${k} ${v}`).join(', ')}`);
  });

  test.run();
}
