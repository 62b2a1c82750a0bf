// `switchover analyze`: the table and JSON on fixtures; pcapng; several files and a folder of
// captures merged into one account (where each lost packet was last seen), or --separate;
// --sender-log; and exit 2 with a message that says what to do on a missing file, a non-capture,
// an empty folder and bad arguments.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { analyzeCommand } from '../analyze.js';
import type { PcapAnalysis } from '../../capture/analyzer.js';
import { runInProcess } from './run-cli.js';

const fixtures = fileURLToPath(new URL('../../../../fixtures/pcaps/', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'swan-'));

const run = (argv: string[]) => runInProcess(analyzeCommand, argv);

test('table: flow row, lost seqs and outage', async () => {
  const r = await run([join(fixtures, 'ping-drop-window.pcap')]);
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /Ethernet, \d+ packets/);
  assert.match(r.out, /^flow\s+sent\s+recv\s+lost/m);
  assert.match(r.out, /lost seqs \d+-\d+/);
  assert.match(r.out, /outage \d+ ms, from/);
  assert.not.match(r.out, /last seen/, 'one capture point: nothing to place');
});

test('--json: the PcapAnalysis; several files are one account, --separate an array of them', async () => {
  const one = await run([join(fixtures, 'ping-in-flight.pcap'), '--json', '--in-flight-window', '1000']);
  assert.is(one.code, 0);
  const a = JSON.parse(one.out) as PcapAnalysis;
  assert.ok(a.flows[0]!.inFlight > 0);
  assert.is(a.flows[0]!.lost, 0);
  assert.equal(a.points.map((p) => p.name), ['ping-in-flight']);
  const files = [join(fixtures, 'ping-in-flight.pcap'), join(fixtures, 'udp-oneway-drop.pcap')];
  const merged = JSON.parse((await run([...files, '--json'])).out) as PcapAnalysis;
  assert.equal(merged.points.map((p) => p.name), ['ping-in-flight', 'udp-oneway-drop']);
  assert.is(merged.flows.length, 2);
  const separate = JSON.parse((await run([...files, '--json', '--separate'])).out) as PcapAnalysis[];
  assert.equal(separate.map((x) => x.flows.length), [1, 1]);
});

test('a pcapng of two interfaces, and a folder of their pcaps: one account, each lost packet placed at the last point that saw it', async () => {
  for (const input of [join(fixtures, 'ping-router-drop.pcapng'), join(fixtures, 'ping-router-drop')]) {
    const r = await run([input]);
    assert.is(r.code, 0, r.err);
    assert.match(r.out, /2 capture points, \d+ packets/);
    assert.match(r.out, /^ {2}point rin: Ethernet, \d+ packets from/m);
    assert.match(r.out, /^ {2}point rout: Ethernet/m);
    assert.match(r.out, /lost, last seen at rin \(request\): 19 \d+-\d+$/m);
    const a = JSON.parse((await run([input, '--json'])).out) as PcapAnalysis;
    assert.equal(a.flows[0]!.lastSeen!.map((g) => [g.where, g.as, g.count]), [['rin', 'request', 19]]);
  }
});

test('--sender-log: ping\'s own output makes the holes it sent count as lost', async () => {
  const pcap = join(fixtures, 'ping-not-on-wire.pcap');
  const bare = await run([pcap]);
  assert.match(bare.out, /never on the wire \d+-\d+: not counted as lost; give the sender's log \(--sender-log\)/);
  const logged = await run([pcap, '--sender-log', join(fixtures, 'ping-not-on-wire.ping.txt')]);
  assert.is(logged.code, 0, logged.err);
  assert.match(logged.out, /never on the wire \d+-\d+: sent per ping output .*ping-not-on-wire\.ping\.txt, so counted as lost/);
  const a = JSON.parse((await run([pcap, '--json', '--sender-log', join(fixtures, 'ping-not-on-wire.ping.txt')])).out) as PcapAnalysis;
  assert.is(a.flows[0]!.lost, a.flows[0]!.notOnWire);
  assert.ok(a.flows[0]!.lost > 0);
  const summary = join(tmp, 'udp.json');
  writeFileSync(summary, `${JSON.stringify({ dst: '10.77.0.2', port: 7, sent: 10 })}\n`);
  assert.is((await run([pcap, '--sender-log', summary])).code, 0, 'a generator summary is a sender log too');
  writeFileSync(join(tmp, 'notes.txt'), 'hello\n');
  const bad = await run([pcap, '--sender-log', join(tmp, 'notes.txt')]);
  assert.is(bad.code, 2);
  assert.match(bad.err, /notes\.txt: neither ping output .* nor a UDP generator summary/);
  assert.match((await run([pcap, '--sender-log', join(tmp, 'none.txt')])).err, /sender log .*none\.txt: cannot read it \(ENOENT\)/);
});

test('--deadline: each flow gets lostOrLate and deadlineMs, in the JSON and as a table column; parsed as --set deadline= is', async () => {
  const pcap = join(fixtures, 'ping-drop-window.pcap');
  const bare = JSON.parse((await run([pcap, '--json'])).out) as PcapAnalysis;
  assert.is(bare.flows[0]!.lostOrLate, undefined);
  for (const d of ['20ms', '20', '0.02s']) {
    const r = await run([pcap, '--json', '--deadline', d]);
    assert.is(r.code, 0, r.err);
    const f = (JSON.parse(r.out) as PcapAnalysis).flows[0]!;
    assert.is(f.deadlineMs, 20, d);
    assert.ok(f.lostOrLate! >= f.lost && f.lost > 0, `${d}: lostOrLate ${f.lostOrLate} counts the ${f.lost} lost`);
  }
  const table = await run([pcap, '--deadline', '20ms']);
  assert.match(table.out, /^flow\s.*\slost\/late>20ms$/m);
  const bad = await run([pcap, '--deadline', '20 ms']);
  assert.is(bad.code, 2);
  assert.match(bad.err, /--deadline: expected a deadline like 20ms, 20 \(ms\) or 0\.02s, got "20 ms"/);
});

test('exit 2 with what to do: missing, not a capture, an empty folder, bad arguments', async () => {
  const missing = await run([join(tmp, 'nope.pcap')]);
  assert.is(missing.code, 2);
  assert.match(missing.err, /nope\.pcap: no such file; give the path of a capture \(pcap or pcapng\) or of a folder of them/);
  const junk = join(tmp, 'junk.pcap');
  writeFileSync(junk, 'hello world, this is not a capture file');
  assert.match((await run([junk])).err, /not a capture file: magic .*; a pcap \(tcpdump -w\) or pcapng \(Wireshark, dumpcap\)/);
  const empty = join(tmp, 'empty');
  mkdirSync(empty);
  const none = await run([empty]);
  assert.is(none.code, 2);
  assert.is(none.err, `switchover analyze: ${empty} holds no *.pcap or *.pcapng file; give capture files, or a folder of them\n`);
  assert.is((await run([])).code, 2);
  assert.match((await run(['--bogus', 'x'])).err, /usage: switchover analyze/);
  assert.match((await run([junk, '--in-flight-window', 'soon'])).err, /--in-flight-window "soon" is not a non-negative number/);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
