// Timeline marks (marks.ts): healthy packets fold into runs, every lost, delayed and reordered
// packet keeps a mark, and the reordered ones are exactly those the analyzer counts, on
// synthetic captures through the real analyzer (ping, and a one-way UDP stream).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { analyzePcap } from '../../capture/analyzer.js';
import { ethernet, icmpEcho, ipv4, udpStream, writePcap } from '../../../fixtures/pcap-synth.js';
import { ETHERTYPE_IPV4 } from '../../../lib/net-addr.js';
import { buildJsonReport, writeJsonReport, type JsonReport } from '../json.js';
import { flowMarks, markCount, RUN_GAP_MS, type PacketMark, type ReportFlow } from '../marks.js';
import type { FlowResult } from '../../scenario/types.js';
import { fakeResult } from './fake-result.js';

const tmp = mkdtempSync(join(tmpdir(), 'swmarks-'));
const T0 = 1_700_000_000_000_000;
const CLIENT = '52:54:00:00:00:01';
const GUEST = '52:54:00:12:34:56';

type Packet = NonNullable<FlowResult['packets']>[number];
const flow = (packets: Packet[]): ReportFlow => ({ ...fakeResult().traffic[0]!, sent: packets.length, packets });
const seqsOf = (marks: PacketMark[], pick: (m: PacketMark) => boolean): number[] => marks.filter(pick).map((m) => m.seq);

test('healthy packets fold into runs; lost, delayed and in-flight boundaries are kept', () => {
  const packets: Packet[] = [];
  for (let s = 0; s < 1000; s++) {
    const state = s >= 400 && s < 420 ? 'lost' : s === 430 ? 'delayed' : s >= 990 ? 'in-flight' : 'ok';
    packets.push(state === 'lost' || state === 'in-flight' ? { seq: s, t: s, state } : { seq: s, t: s, rttMs: s === 430 ? 40 : 0.1 + (s % 7) / 100, state });
  }
  const marks = flowMarks(flow(packets))!;
  assert.equal(seqsOf(marks, (m) => m.state === 'lost'), Array.from({ length: 20 }, (_, i) => 400 + i));
  assert.equal(seqsOf(marks, (m) => m.state === 'delayed'), [430]);
  assert.ok(marks.filter((m) => m.state !== 'ok' && m.state !== 'in-flight').every((m) => m.count === undefined), 'affected marks stand alone');
  const runs = marks.filter((m) => m.count !== undefined);
  assert.equal(runs.map((m) => [m.state, m.seq, m.lastSeq, m.count]), [
    ['ok', 0, 399, 400], ['ok', 420, 429, 10], ['ok', 431, 989, 559], ['in-flight', 990, 999, 10],
  ]);
  assert.is(runs[0]!.rttMs, 0.16, 'a run keeps its largest rtt');
  assert.is(marks.reduce((n, m) => n + markCount(m), 0), 1000, 'every packet is counted once');
  assert.is(marks.length, 25);
});

test('a pause in sending longer than RUN_GAP_MS, or twice the usual interval, ends a run', () => {
  const runs = (t: number[]): number[][] => flowMarks(flow(t.map((x, i) => ({ seq: i, t: x, rttMs: 0.1, state: 'ok' }))))!
    .map((m) => [m.seq, m.lastSeq ?? m.seq]);
  assert.equal(runs([0, 1, 2, 3, 3 + RUN_GAP_MS, 4 + 2 * RUN_GAP_MS + 0.001, 5 + 2 * RUN_GAP_MS, 6 + 2 * RUN_GAP_MS]), [[0, 4], [5, 7]]);
  // ping -i 0.01: 10 ms apart is its usual pace, 25 ms a pause.
  assert.equal(runs([0, 10, 20, 30, 55, 65, 75]), [[0, 3], [4, 6]]);
});

test('without a per-packet list the saved marks are used; with neither, none', () => {
  const saved: PacketMark[] = [{ seq: 1, t: 0, state: 'ok', lastSeq: 9, lastT: 8, count: 9 }];
  const { packets: _p, ...bare } = flow([{ seq: 1, t: 0, state: 'ok' }]);
  assert.equal(flowMarks({ ...bare, marks: saved }), saved);
  assert.is(flowMarks(bare), undefined);
});

test('--json without packets carries the marks in their place', () => {
  const r = fakeResult({ lost: 3 });
  r.traffic[0]!.packets = Array.from({ length: 2000 }, (_, s) => (s >= 700 && s < 703 ? { seq: s, t: s, state: 'lost' } : { seq: s, t: s, rttMs: 0.1, state: 'ok' }));
  const f = buildJsonReport([r], { packets: false }).results[0]!.traffic[0] as ReportFlow;
  assert.is(f.packets, undefined);
  assert.equal(f.marks, flowMarks(r.traffic[0]!));
  assert.equal(seqsOf(f.marks!, (m) => m.state === 'lost'), [700, 701, 702]);
  assert.is(f.marks!.length, 5);
  // Written one mark a line, and read back the same.
  const file = join(tmp, 'r.json');
  writeJsonReport(file, [r], { packets: false });
  const text = readFileSync(file, 'utf8');
  assert.match(text, /\n {10}"marks": \[\n {12}\{"seq":0,"t":0,"state":"ok","rttMs":0\.1,"lastSeq":699,"lastT":699,"count":700\},\n {12}\{"seq":700,"t":700,"state":"lost"\},\n/);
  const back = JSON.parse(text) as JsonReport;
  assert.equal({ ...back, generatedAt: '' }, { ...buildJsonReport([r], { packets: false }), generatedAt: '' });
  const { packets: _p, ...bare } = r.traffic[0]!;
  writeJsonReport(file, [{ ...r, traffic: [{ ...bare, packets: [] }] }], { packets: false });
  assert.equal((JSON.parse(readFileSync(file, 'utf8')) as JsonReport).results[0]!.traffic[0], { ...bare, marks: [] }, 'no packets, no marks');
});

const ping = (type: 0 | 8, seq: number): Buffer => type === 8
  ? ethernet(GUEST, CLIENT, ETHERTYPE_IPV4, ipv4('192.168.100.1', '192.168.100.2', 1, icmpEcho(8, 7, seq)))
  : ethernet(CLIENT, GUEST, ETHERTYPE_IPV4, ipv4('192.168.100.2', '192.168.100.1', 1, icmpEcho(0, 7, seq)));

test('reordered packets are the analyzer\'s: ping replies overtaken, not delayed, keep their marks', async () => {
  const frames: Array<{ tsMicros: number; frame: Buffer }> = [];
  for (let s = 0; s < 500; s++) {
    const t = T0 + s * 1000;
    frames.push({ tsMicros: t, frame: ping(8, s) });
    // 3 ms late: behind the replies of s+1 and s+2, but under the 5 ms delay threshold.
    frames.push({ tsMicros: t + (s === 100 || s === 300 ? 3000 : 100), frame: ping(0, s) });
  }
  frames.sort((x, y) => x.tsMicros - y.tsMicros);
  const file = join(tmp, 'reorder-ping.pcap');
  writePcap(file, frames);
  const f = (await analyzePcap(file, { t0Micros: T0 })).flows[0]!;
  assert.is(f.reordered, 2);
  assert.is(f.delayed, 0);
  const marks = flowMarks(f)!;
  assert.equal(seqsOf(marks, (m) => m.reordered === true), [100, 300]);
  assert.ok(marks.filter((m) => m.reordered).every((m) => m.state === 'ok' && m.count === undefined));
  assert.is(marks.reduce((n, m) => n + markCount(m), 0), f.sent);
});

test('reordered in a one-way stream: by arrival, as the analyzer counts them', async () => {
  const frames: Array<{ tsMicros: number; frame: Buffer }> = [];
  const udp = (seq: number, sendMicros: number): Buffer => ethernet(CLIENT, GUEST, ETHERTYPE_IPV4, ipv4('192.168.100.2', '192.168.100.1', 17, udpStream(5000, 6000, seq, sendMicros)));
  for (let s = 0; s < 300; s++) {
    const sent = T0 + s * 1000;
    frames.push({ tsMicros: sent + (s === 50 ? 2500 : 200), frame: udp(s, sent) });
  }
  frames.sort((x, y) => x.tsMicros - y.tsMicros);
  const file = join(tmp, 'reorder-oneway.pcap');
  writePcap(file, frames);
  const f = (await analyzePcap(file, { t0Micros: T0 })).flows[0]!;
  assert.is(f.mode, 'one-way');
  assert.is(f.reordered, 1);
  assert.equal(seqsOf(flowMarks(f)!, (m) => m.reordered === true), [50]);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
