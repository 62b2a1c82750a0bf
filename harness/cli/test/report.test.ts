// `switchover report compare`: the table and the HTML page from two result files, --help, and
// exit 2 with a message that says what to do for each kind of bad input.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { reportCommand } from '../report.js';
import { writeJsonReport } from '../../report/json.js';
import { fakeResult } from '../../report/test/fake-result.js';
import { runCli, runInProcess } from './run-cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'swreport-'));
const fileA = join(tmp, 'a.json');
const fileB = join(tmp, 'b.json');
writeJsonReport(fileA, [fakeResult({ scenario: 'baseline-x', lost: 12, downtimeMs: 40 }), fakeResult({ scenario: 'y' })], { packets: false });
writeJsonReport(fileB, [fakeResult({ scenario: 'netpass-x', lost: 0, downtimeMs: 44 }), fakeResult({ scenario: 'y', lost: 1 })], { packets: false });

const run = (argv: string[]) => runInProcess(reportCommand, argv);

test('compare: the table, and with --html the page', async () => {
  const html = join(tmp, 'compare.html');
  const r = await run(['compare', fileA, fileB, '--html', html]);
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /^y\s+engine\s+pass\s+pass\s+0\s+1\s+\+1\s/m);
  assert.match(r.out, /no partner in B for A's baseline-x \[engine\]/);
  assert.match(r.out, new RegExp(`compare view written to ${html}`));
  assert.match(readFileSync(html, 'utf8'), /<section class="pair" id="pair-0" data-pair="0" data-scenario-a="y"/);
});

test('compare --pair: renamed scenarios line up', async () => {
  const r = await run(['compare', fileA, fileB, '--pair', 'baseline-:netpass-']);
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /^baseline-x → netpass-x\s+engine\s+pass\s+pass\s+12\s+0\s+-12\s.*\s40\.0\s+44\.0\s+\+4\.0$/m);
  assert.match(r.out, /not named by --pair: 1 scenario\(s\) of A/);
});

test('--help describes every option', async () => {
  for (const argv of [['compare', '--help'], ['--help']]) {
    const r = await run(argv);
    assert.is(r.code, 0);
    assert.match(r.out, /^usage: switchover report compare A\.json B\.json \[options\]/);
    assert.match(r.out, /--pair FROM:TO\s+pair A's scenario FROM<rest> with B's TO<rest>.*; repeatable/);
    assert.match(r.out, /--html FILE\s+also write an HTML page/);
  }
});

test('bad input: exit 2 and what to do', async () => {
  const cases: Array<[string[], RegExp]> = [
    [[], /switchover report: expected a report kind: compare\nusage: switchover report compare/],
    [['diff', fileA, fileB], /unknown report "diff": expected compare/],
    [['compare', fileA], /expected two result files \(A\.json B\.json\), got 1/],
    [['compare', fileA, fileB, '--htm', 'x'], /has no option --htm; did you mean --html\?/],
    [['compare', fileA, fileB, '--pair', 'baseline-'], /--pair baseline-: expected FROM:TO/],
    [['compare', fileA, join(tmp, 'nope.json')], /nope\.json: no such file: give a file written by `switchover run --json FILE`/],
    [['compare', fileA, fileB, '--pair', 'zzz-:netpass-'], /no scenario of A matches a --pair FROM prefix with a partner in B/],
    [['compare', fileA, fileB, '--html', join(tmp, 'no-dir', 'c.html')], /--html .*no-dir.*does not exist: create it first/],
  ];
  for (const [argv, message] of cases) {
    const r = await run(argv);
    assert.is(r.code, 2, argv.join(' '));
    assert.match(r.err, message, argv.join(' '));
    assert.is(r.out, '', `${argv.join(' ')}: nothing on stdout`);
  }
  const other = join(tmp, 'other.json');
  writeJsonReport(other, [fakeResult({ scenario: 'z' })]);
  assert.match((await run(['compare', fileA, other])).err, /no scenario name and backend is in both files; pair differing names with --pair FROM:TO/);
  assert.not.ok(existsSync(join(tmp, 'no-dir')), 'no directory made for --html');
});

test('the switchover command dispatches `report`', async () => {
  const r = await runCli(['report', 'compare', fileA, fileB]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /^y\s+engine/m);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
