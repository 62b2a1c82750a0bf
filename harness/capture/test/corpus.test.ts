// Robust on anything (issue 15): every file of the corpus (fixtures/pcaps/corpus, written by
// `make-pcaps.js --corpus`) gives either figures, those of the real fixture it was made from, or
// a PcapFormatError that `switchover analyze` turns into one line and exit 2: never a stack
// trace. Independent readers (tcpdump, tshark, pcap-parser) count the same packets at the same
// times, so the reader is not only checked against this project's own writers.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { analyzeCaptures } from '../analyzer.js';
import { PcapFormatError } from '../capture-file.js';
import { readPcap } from '../pcap-reader.js';
import { analyzeCommand } from '../../cli/analyze.js';
import { runInProcess } from '../../cli/test/run-cli.js';
import type { CorpusEntry } from '../../../fixtures/pcap-corpus.js';
import { assertTruth, FIXTURES, truthNamed } from './fixture-truth.js';

const CORPUS = join(FIXTURES, 'corpus');
const entries = JSON.parse(readFileSync(join(CORPUS, 'corpus.json'), 'utf8')) as CorpusEntry[];

const cli = (argv: string[]) => runInProcess(analyzeCommand, argv);

test('the corpus: every file listed, and it covers what issue 15 asks for', () => {
  assert.equal(readdirSync(CORPUS).filter((f) => f !== 'corpus.json').sort(), entries.map((e) => e.file).sort());
  const what = entries.map((e) => `${e.file} ${e.what}`).join('\n');
  for (const want of [/big-endian/, /nanosecond/, /link type|802\.11/, /cut mid/, /0 bytes/, /text file/, /editcap/, /two sections/, /OPB and SPB/, /if_tsresol/]) {
    assert.match(what, want);
  }
});

for (const e of entries) {
  test(`corpus ${e.file} (${e.what}): ${e.error ? 'a clear error, exit 2' : 'its figures'}`, async () => {
    const file = join(CORPUS, e.file);
    const r = await cli([file]);
    assert.not.match(r.err, /\n\s+at /, 'no stack trace');
    if (e.error) {
      await analyzeCaptures([{ path: file }]).then(() => assert.unreachable('accepted'), (err: Error) => {
        assert.instance(err, PcapFormatError);
        assert.match(err.message, new RegExp(e.error!));
      });
      assert.is(r.code, 2);
      assert.match(r.err, new RegExp(`^switchover analyze: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*${e.error}.*\n$`));
      return;
    }
    assert.is(r.code, 0, r.err);
    const a = await analyzeCaptures([{ path: file }]);
    assert.is(a.packets, e.packets, 'packets');
    assert.is(a.truncated, e.truncated ?? false, 'truncated');
    if (e.trailing) assert.match(a.trailing?.reason ?? '', e.trailing);
    else assert.is(a.trailing, undefined);
    const skipped = a.files[0]!.interfaces.filter((i) => !i.decoded).reduce((n, i) => n + i.packets, 0);
    assert.is(skipped, e.skipped ?? 0, 'skipped packets of undecoded interfaces');
    if (e.skipped) assert.match(r.out, /which is not decoded: its \d+ packets were skipped/);
    if (e.droppedByKernel) {
      assert.is(a.files[0]!.interfaces[0]!.droppedByKernel, e.droppedByKernel);
      assert.match(r.out, new RegExp(`the capture itself dropped ${e.droppedByKernel} packets`));
    }
    if (e.truthOf) assertTruth(a, truthNamed(e.truthOf), e.file);
  });
}

/** What a reader printed: on a file cut short both print its packets, then exit non-zero. */
function stdoutOf(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error) throw new Error(`${cmd} did not run (${r.error.message}): run \`npm run setup\``);
  return r.stdout.toString();
}

/** Timestamps (µs) of the packets that carry one, by each independent reader. */
const READERS: Record<CorpusEntry['readers'][number], (file: string) => Promise<Array<number | null>>> = {
  async tcpdump(file) {
    const out = stdoutOf('tcpdump', ['-tt', '-nn', '-r', file]);
    return out.split('\n').filter((l) => /^\d+\.\d{6} /.test(l)).map((l) => {
      const [s, us] = l.slice(0, l.indexOf(' ')).split('.');
      const v = Number(s) * 1e6 + Number(us);
      return v === 0 ? null : v; // libpcap gives a simple packet block no time
    });
  },
  async tshark(file) {
    const out = stdoutOf('tshark', ['-r', file, '-T', 'fields', '-e', 'frame.time_epoch', '-e', 'frame.interface_id']);
    // A custom block shows as a frame with neither time nor interface; a simple packet block has no time.
    return out.split('\n').filter((l) => l && l !== '\t').map((l) => {
      const epoch = l.split('\t')[0]!;
      if (!epoch) return null;
      const [s, frac = ''] = epoch.split('.');
      return Number(s) * 1e6 + Number(frac.padEnd(9, '0').slice(0, 6));
    });
  },
  async 'pcap-parser'(file) {
    const pcapp = createRequire(import.meta.url)('pcap-parser') as { parse(f: string): NodeJS.EventEmitter };
    return new Promise((resolve, reject) => {
      const ts: number[] = [];
      const parser = pcapp.parse(file);
      parser.on('packet', (p: { header: { timestampSeconds: number; timestampMicroseconds: number } }) => ts.push(p.header.timestampSeconds * 1e6 + p.header.timestampMicroseconds));
      parser.on('error', reject);
      parser.on('end', () => resolve(ts));
    });
  },
};

test('the corpus against independent readers: tcpdump, tshark and pcap-parser count the same packets at the same times', async () => {
  let checked = 0;
  for (const e of entries) {
    if (!e.readers.length) continue;
    const file = join(CORPUS, e.file);
    const ours: number[] = [];
    const info = await readPcap(file, (p) => { ours.push(p.tsMicros); });
    // Packets of undecoded interfaces are skipped here and listed by tshark: compare the rest.
    const theirsAll = await Promise.all(e.readers.map((r) => READERS[r](file)));
    e.readers.forEach((r, k) => {
      const theirs = theirsAll[k]!;
      const skipped = info.interfaces.filter((i) => !i.decoded).reduce((n, i) => n + i.packets, 0);
      assert.is(theirs.length, ours.length + (r === 'tshark' ? skipped : 0), `${e.file}: ${r} packet count`);
      if (skipped) return;
      // Binary and ms resolutions convert with rounding of their own: within 1 µs, or 1 ms.
      const slack = /binary-ts/.test(e.file) ? 1 : 0;
      theirs.forEach((t, i) => {
        if (t !== null) assert.ok(Math.abs(t - ours[i]!) <= slack, `${e.file}: ${r} packet ${i + 1} at ${t}, ours ${ours[i]}`);
      });
    });
    checked++;
  }
  assert.ok(checked >= 15, `${checked} files checked`);
});

test.run();
