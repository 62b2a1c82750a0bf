// `switchover analyze`: the table and JSON on a fixture, and exit 2 with a message that says
// what to do on a missing file, a non-pcap, pcapng and bad arguments.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { analyzeCommand } from '../analyze.js';
import type { PcapAnalysis } from '../../capture/analyzer.js';

const fixtures = fileURLToPath(new URL('../../../../fixtures/pcaps/', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'swan-'));

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = process.stdout.write.bind(process.stdout);
  const e = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string) => { out += s; return true; }) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => { err += s; return true; }) as typeof process.stderr.write;
  try {
    return { code: await analyzeCommand(argv), out, err };
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
  }
}

test('table: flow row, lost seqs and outage', async () => {
  const r = await run([join(fixtures, 'ping-drop-window.pcap')]);
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /Ethernet, \d+ packets/);
  assert.match(r.out, /^flow\s+sent\s+recv\s+lost/m);
  assert.match(r.out, /lost seqs \d+-\d+/);
  assert.match(r.out, /outage \d+ ms, from/);
});

test('--json: the PcapAnalysis, one object per file or an array', async () => {
  const one = await run([join(fixtures, 'ping-in-flight.pcap'), '--json', '--in-flight-window', '1000']);
  assert.is(one.code, 0);
  const a = JSON.parse(one.out) as PcapAnalysis;
  assert.ok(a.flows[0]!.inFlight > 0);
  assert.is(a.flows[0]!.lost, 0);
  const two = await run([join(fixtures, 'ping-in-flight.pcap'), join(fixtures, 'udp-oneway-drop.pcap'), '--json']);
  assert.is((JSON.parse(two.out) as PcapAnalysis[]).length, 2);
});

test('exit 2 with what to do: missing, not a pcap, pcapng, bad arguments', async () => {
  const missing = await run([join(tmp, 'nope.pcap')]);
  assert.is(missing.code, 2);
  assert.match(missing.err, /nope\.pcap: no such file; give the path of a pcap written by tcpdump -w/);
  const junk = join(tmp, 'junk.pcap');
  writeFileSync(junk, 'hello world, this is not a capture file');
  assert.match((await run([junk])).err, /not a pcap file: magic .*; a classic pcap \(tcpdump -w\)/);
  const ng = join(tmp, 'x.pcapng');
  writeFileSync(ng, Buffer.from('0a0d0d0a1c0000004d3c2b1a0000000000000000000000000000', 'hex'));
  assert.match((await run([ng])).err, /pcapng, not pcap: convert it/);
  assert.is((await run([])).code, 2);
  assert.match((await run(['--bogus', 'x'])).err, /usage: switchover analyze/);
  assert.match((await run([junk, '--in-flight-window', 'soon'])).err, /--in-flight-window "soon" is not a non-negative number/);
  assert.is((await run([tmp])).code, 2);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
