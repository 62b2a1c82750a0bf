// Issue 18, bad input: each defect's reproduction, asserting the right behaviour. Every command
// here must be refused before anything is built, so none needs a network: each CLI run gets a
// private TMPDIR, and a run dir appearing in it would mean a topology was started.
//   D1  intervalMs 1e-300 (file and --set); bounds on every number; a ping that cannot start is
//       an error; a result without the scenario's flows never passes
//   D2/D3  output paths under /proc, a directory, a missing parent: exit 2, one line, nothing made
//   D7  baseline save never follows a planted symlink
//   D8  analyze --t0 1e300
//   D9  a run without root or sudo leaves no run dir
//   D10 undecoded link types are named; zeros after the records are reported, not read
//   D11 a 1 MB unknown key: bounded CPU and memory, a clipped message
//   D12 throw 42, an import error, --repeat -1, --shard -1/4, analyze DIR without captures
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import {
  chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { saveBaseline } from '../../verdict/baseline.js';
import { loadScenarioFile } from '../../scenario/catalogue.js';
import { start, whichTool } from '../../net/exec.js';
import { OutputError, writeOutput } from '../output-paths.js';
import { SCENARIO_SCHEMA, defineScenario } from '../../scenario/scenario.js';
import { InputError, type Schema } from '../../scenario/schema.js';
import { PingError, pingStarted, startPing } from '../../traffic/ping.js';
import { checkFlowsCaptured, verdictOf } from '../../verdict/verdict.js';
import { fakeResult } from '../../report/test/fake-result.js';
import { runCli, type CliResult } from './run-cli.js';

const FIXTURES = fileURLToPath(new URL('../../../../fixtures/pcaps/', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'switchover-badinput-'));
/** TMPDIR of every CLI run here: a run dir in it means a topology was started. */
const runTmp = join(work, 'tmp');
mkdirSync(runTmp);

async function cli(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const r = await runCli(argv, { cwd: work, env: { TMPDIR: runTmp, ...env }, timeoutMs: 60_000 });
  assert.not.ok(r.timedOut, `switchover ${argv.join(' ')} did not finish (spinning?)`);
  return r;
}

function nothingBuilt(what: string): void {
  const runs = readdirSync(runTmp).filter((n) => /^switchover-[0-9a-f]{6}$/.test(n));
  assert.equal(runs, [], `${what}: a run dir was created, so a topology was started`);
}

/** Exit 2 with exactly one line on stderr, matching `message`. */
function refused(r: CliResult, message: RegExp, what: string): void {
  assert.is(r.code, 2, `${what}: exit ${r.code}; ${r.stderr}`);
  assert.is(r.stderr.trimEnd().split('\n').length, 1, `${what}: one line, got:\n${r.stderr}`);
  assert.match(r.stderr, message, what);
  nothingBuilt(what);
}

// ---- D1 ---------------------------------------------------------------------------------

test('D1: intervalMs 1e-300 is refused, from a file and from --set, before anything is built', async () => {
  writeFileSync(join(work, 't.json'), '{"name":"tiny2","description":"d","traffic":{"flows":[{"kind":"ping","intervalMs":1e-300}]},"expect":{"lost":0}}');
  refused(await cli(['run', './t.json']),
    /^switchover: \.\/t\.json: traffic\.flows\[0\]\.intervalMs: expected an integer from 1 to 1000 \(ms\), got 1e-300$/m, 'file');
  refused(await cli(['run', 'baseline-bridge-ping', '--set', 'interval=1e-300']),
    /^switchover: --set interval=1e-300: traffic\.flows\[0\]\.intervalMs: expected an integer from 1 to 1000 \(ms\), got 1e-300$/m, '--set');
  refused(await cli(['run', 'baseline-bridge-ping', '--set', 'interval=0.5']), /expected an integer from 1 to 1000 \(ms\), got 0\.5/, 'sub-ms');
});

test('D1: every number in the scenario schema has a lower and an upper bound', () => {
  const numbers: string[] = [];
  const walk = (s: Schema, path: string): void => {
    if (s.type === 'number') {
      numbers.push(path);
      assert.ok(Number.isFinite(s.min) && Number.isFinite(s.max) && s.min <= s.max, `${path}: bounds ${s.min}..${s.max}`);
    } else if (s.type === 'array') walk(s.items, `${path}[]`);
    else if (s.type === 'object') for (const [k, f] of Object.entries(s.fields)) walk(f.schema, path ? `${path}.${k}` : k);
    else if (s.type === 'union') for (const [k, v] of Object.entries(s.variants)) walk(v, `${path}<${k}>`);
  };
  walk(SCENARIO_SCHEMA, '');
  assert.ok(numbers.length > 20, `numbers found: ${numbers.join(', ')}`);
});

test('D1: a ping that cannot start is an error, never "some packets lost"', async () => {
  // The real iputils ping with the count the old harness passed: "invalid argument", exit 1.
  const topo = { spawn: () => start(['ping', '-c', '1.06e+304', '127.0.0.1']) };
  const run = startPing(topo as never, { dst: '127.0.0.1', intervalMs: 1, count: 1 });
  await run.result.then(
    () => assert.unreachable('a ping that exited with "invalid argument" gave a result'),
    (e: Error) => {
      assert.instance(e, PingError);
      assert.match(e.message, /did not start \(exit code 1\): (\/\S+\/)?ping: invalid argument: '1\.06e\+304'/);
    });
  assert.ok(pingStarted('PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.\n'));
  assert.throws(() => startPing(topo as never, { dst: '127.0.0.1', intervalMs: 1e-300, count: 1 }), /whole intervalMs >= 1/);
  assert.throws(() => startPing(topo as never, { dst: '127.0.0.1', intervalMs: 1, count: 1.06e304 }), /integer count from 1 to 2\^53/);
});

test('D1: a result without the flows the scenario asked for can never pass', () => {
  const ping = defineScenario({ name: 'p', description: 'd', expect: { lost: 0 } });
  const none = { ...fakeResult(), traffic: [] };
  const checks = checkFlowsCaptured(ping.traffic.flows, none);
  assert.equal(checks.map((c) => [c.name, c.ok]), [['ping flows captured', false]]);
  assert.is(verdictOf(checks), 'fail');
  assert.ok(checkFlowsCaptured(ping.traffic.flows, fakeResult()).every((c) => c.ok), 'a captured ping flow counts');
  const udp = defineScenario({ name: 'u', description: 'd', traffic: { flows: [{ kind: 'udp', direction: 'both' }, { kind: 'udp' }] } });
  const oneUdp = { ...fakeResult(), traffic: [{ ...fakeResult().traffic[0]!, kind: 'udp' as const }] };
  assert.equal(checkFlowsCaptured(udp.traffic.flows, oneUdp).map((c) => [c.expected, c.actual, c.ok]), [['>= 3 with packets', '1', false]]);
  const emptyFlow = { ...fakeResult(), traffic: [{ ...fakeResult().traffic[0]!, sent: 0 }] };
  assert.not.ok(checkFlowsCaptured(ping.traffic.flows, emptyFlow)[0]!.ok, 'a flow with nothing sent is not captured');
});

// ---- D2 / D3 ----------------------------------------------------------------------------

test('D2/D3: unusable output paths exit 2 with one line before anything is built; nothing is created', async () => {
  const dir = join(work, 'a-dir');
  mkdirSync(dir);
  const cases: Array<[string[], RegExp]> = [
    [['run', 'baseline-bridge-ping', '--keep-pcaps', '/proc/x'], /^switchover: --keep-pcaps \/proc\/x: cannot create files in \/proc \(ENOENT\)/],
    [['run', 'baseline-bridge-ping', '--json', '/proc/x'], /^switchover: --json \/proc\/x: cannot create files in \/proc/],
    [['run', 'baseline-bridge-ping', '--json', dir], /^switchover: --json .*a-dir: is a directory: give a file name/],
    [['run', 'baseline-bridge-ping', '--junit', '/proc/x'], /^switchover: --junit \/proc\/x: cannot create files in \/proc/],
    [['baseline', 'save', '/proc/x.json', 'baseline-bridge-ping'], /^switchover: baseline save \/proc\/x\.json: cannot create files in \/proc/],
    [['run', 'baseline-bridge-ping', '--report', '/nonexistent/dir/r.html'],
      /^switchover: --report \/nonexistent\/dir\/r\.html: directory \/nonexistent\/dir does not exist: create it first \(mkdir -p \/nonexistent\/dir\)$/m],
    [['run', 'baseline-bridge-ping', '--keep-pcaps', '/nonexistent/dir/pcaps'], /directory \/nonexistent\/dir does not exist/],
  ];
  for (const [argv, message] of cases) refused(await cli(argv), message, argv.join(' '));
  assert.not.ok(existsSync('/nonexistent'), '/nonexistent was created');
});

test('D3: an output that cannot be written after the run keeps its text in a named copy', async () => {
  const err = await writeOutput('--json', '/proc/version', (f) => writeFileSync(f, '{"results":[]}\n')).then(
    () => undefined, (e: unknown) => e);
  assert.instance(err, OutputError);
  const e = err as OutputError;
  assert.match(e.message, /^--json \/proc\/version: cannot write \(EIO\); the output is saved in \/.*\/version$/);
  assert.is(readFileSync(e.savedTo!, 'utf8'), '{"results":[]}\n');
  rmSync(join(e.savedTo!, '..'), { recursive: true, force: true });
});

// ---- D7 ---------------------------------------------------------------------------------

test('D7: baseline save writes through no planted symlink, at the old temp name or at the target', async () => {
  const dir = join(work, 'd7');
  mkdirSync(dir);
  const victim = join(dir, 'victim');
  writeFileSync(victim, 'precious\n');
  const out = join(dir, 'baseline.json');
  // The old predictable temp name, pointing at a file the attacker wants overwritten.
  symlinkSync(victim, `${out}.${process.pid}.tmp`);
  await saveBaseline([fakeResult()], out);
  assert.is(readFileSync(victim, 'utf8'), 'precious\n', 'the symlink at OUT.<pid>.tmp was followed');
  assert.ok(lstatSync(out).isFile());
  // A symlink at the target itself is replaced, never written through.
  const linked = join(dir, 'linked.json');
  symlinkSync(victim, linked);
  await saveBaseline([fakeResult()], linked);
  assert.is(readFileSync(victim, 'utf8'), 'precious\n', 'the symlink at the target was followed');
  assert.ok(lstatSync(linked).isFile() && readFileSync(linked, 'utf8').includes('switchover-baseline'));
  assert.equal(readdirSync(dir).filter((n) => n.startsWith('.switchover-baseline-')), [], 'no temp dir is left');
});

// ---- D8 ---------------------------------------------------------------------------------

test('D8: analyze --t0 1e300 is refused, with and without --json', async () => {
  const pcap = join(FIXTURES, 'ping-drop-window.pcap');
  for (const extra of [[], ['--json']]) {
    const r = await cli(['analyze', '--t0', '1e300', pcap, ...extra]);
    assert.is(r.code, 2, r.stderr);
    assert.is(r.stdout, '');
    assert.match(r.stderr, /^switchover analyze: --t0 "1e300" is out of range: expected epoch microseconds from 0 to 4294967296000000/);
    assert.not.match(r.stderr, /RangeError/);
  }
  assert.match((await cli(['analyze', '--in-flight-window', '1e300', pcap])).stderr, /--in-flight-window "1e300" is out of range/);
  assert.is((await cli(['analyze', '--t0', '1700000000000000', pcap, '--json'])).code, 0, 'a real epoch still works');
});

// ---- D9 ---------------------------------------------------------------------------------

test('D9: a run without root or sudo exits 2 and leaves no run dir', async () => {
  const runuser = whichTool('runuser');
  if (process.getuid?.() !== 0 || !runuser) {
    console.warn('skipping D9: needs root and runuser to run as nobody');
    return;
  }
  const own = mkdtempSync(join(tmpdir(), 'switchover-nobody-'));
  chownSync(own, 65534, 65534);
  const r = await new Promise<{ code: number | null; err: string }>((resolve) => {
    const c = spawn(runuser, ['-u', 'nobody', '--', process.execPath, join(FIXTURES, '../../bin/switchover.js'), 'run', 'netpass-bridge-ping'],
      { env: { ...process.env, TMPDIR: own }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr!.on('data', (d) => { err += d; });
    c.on('close', (code) => resolve({ code, err }));
  });
  try {
    assert.is(r.code, 2, r.err);
    assert.equal(readdirSync(own), [], 'the failed run left its run dir');
  } finally {
    rmSync(own, { recursive: true, force: true });
  }
});

// ---- D10 --------------------------------------------------------------------------------

function withLinkType(linkType: number): string {
  const data = readFileSync(join(FIXTURES, 'ping-drop-window.pcap'));
  const copy = Buffer.from(data);
  copy.writeUInt32LE(linkType, 20);
  const file = join(work, `linktype-${linkType}.pcap`);
  writeFileSync(file, copy);
  return file;
}

test('D10: captures of link types it does not decode are named, not read as "no flows"', async () => {
  // C_HDLC, ARCNET (BSD, Linux), IPNET, IPoIB, DSA tag (Broadcom).
  for (const [linkType, name] of [[104, 'Cisco HDLC'], [7, 'ARCNET'], [129, 'Linux ARCNET'], [226, 'IPNET'], [242, 'IP over InfiniBand'], [281, '']] as const) {
    const r = await cli(['analyze', withLinkType(linkType)]);
    assert.is(r.code, 2, `${linkType}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, new RegExp(`link type ${linkType}${name ? ` \\(${name}\\)` : ''} is not decoded, so its packets cannot be analysed`));
    assert.not.match(r.stdout, /no ICMP echo/);
  }
});

test('D10: 1 MiB of zeros after the records is reported and not read as 65,536 packets at 1970', async () => {
  const good = readFileSync(join(FIXTURES, 'ping-drop-window.pcap'));
  const padded = join(work, 'padded.pcap');
  writeFileSync(padded, Buffer.concat([good, Buffer.alloc(1 << 20)]));
  const clean = JSON.parse((await cli(['analyze', join(FIXTURES, 'ping-drop-window.pcap'), '--json'])).stdout) as { packets: number; endMs: number };
  const r = await cli(['analyze', padded, '--json']);
  assert.is(r.code, 0, r.stderr);
  const a = JSON.parse(r.stdout) as { packets: number; startMs: number; endMs: number; trailing?: { offset: number; bytes: number; reason: string } };
  assert.is(a.packets, clean.packets);
  assert.is(a.endMs, clean.endMs);
  assert.equal(a.trailing, { offset: good.length, bytes: 1 << 20, reason: 'original length 0' });
  const table = await cli(['analyze', padded]);
  assert.match(table.stdout, new RegExp(`warning: the 1048576 bytes from offset ${good.length} are not pcap records \\(original length 0\\); they were not read`));
  assert.not.match(table.stdout, /over -/);
});

// ---- D11 --------------------------------------------------------------------------------

test('D11: a 1 MB unknown key costs little CPU and memory, and the error quotes a little of it', async () => {
  const file = join(work, 'big-key.json');
  writeFileSync(file, JSON.stringify({ name: 'big', description: 'd', ['k'.repeat(1 << 20)]: 1, topology: { ['x'.repeat(1 << 20)]: 1 } }));
  const cpu = process.cpuUsage();
  const rss = process.memoryUsage().rss;
  const err = await loadScenarioFile(file).then(() => undefined, (e: unknown) => e);
  const used = process.cpuUsage(cpu);
  assert.instance(err, InputError);
  const message = (err as Error).message;
  assert.ok(message.length < 600, `message of ${message.length} characters`);
  assert.match(message, /k{60}… \(1048576 characters\): unknown field; known fields: name, description, topology/);
  const cpuMs = (used.user + used.system) / 1000;
  assert.ok(cpuMs < 2_000, `${cpuMs.toFixed(0)} ms of CPU (the issue saw 19.5 s)`);
  const grownMb = (process.memoryUsage().rss - rss) / 2 ** 20;
  assert.ok(grownMb < 100, `RSS grew ${grownMb.toFixed(0)} MB (the issue saw 466 MB)`);
  console.log(`  D11: 1 MB key refused in ${cpuMs.toFixed(0)} ms CPU, RSS +${grownMb.toFixed(0)} MB, message ${message.length} chars`);
  const set = await cli(['run', 'baseline-bridge-ping', '--set', `${'s'.repeat(100_000)}=1`]);
  refused(set, /unknown setting "s{60}"… \(100000 characters\)/, '100 kB --set key');
  assert.ok(set.stderr.length < 600, `--set message of ${set.stderr.length} characters`);
});

// ---- D12 --------------------------------------------------------------------------------

test('D12: throw 42 in a .ts scenario is named; an import error names the file the user wrote', async () => {
  writeFileSync(join(work, 'throws.ts'), 'throw 42;\n');
  refused(await cli(['run', './throws.ts']), /^switchover: \.\/throws\.ts: cannot load: it threw 42$/m, 'throw 42');
  writeFileSync(join(work, 'imports.ts'), "import x from './missing.js';\nexport default x;\n");
  const r = await cli(['run', './imports.ts']);
  refused(r, new RegExp(`^switchover: \\./imports\\.ts: cannot load: Cannot find module '${join(work, 'missing.js')}' imported from \\./imports\\.ts$`, 'm'), 'import');
  assert.not.match(r.stderr, /switchover-scenario-/, 'the temp copy is not named');
});

test('D12: --repeat -1 and --shard -1/4 get their own messages, not "argument is ambiguous"', async () => {
  const repeat = await cli(['run', 'baseline-bridge-ping', '--repeat', '-1']);
  assert.is(repeat.code, 2);
  assert.match(repeat.stderr, /^switchover: --repeat -1: expected an integer 1\.\.1000$/m);
  const shard = await cli(['run', '--shard', '-1/4']);
  assert.is(shard.code, 2);
  assert.match(shard.stderr, /^switchover: --shard -1\/4: expected K\/N with whole numbers, e.g\. --shard 1\/4$/m);
  for (const r of [repeat, shard]) assert.not.match(r.stderr, /ambiguous/);
  nothingBuilt('negative numbers');
});

test('D12: a directory with no capture in it, given to analyze, is named', async () => {
  // A folder is read as its *.pcap and *.pcapng files (issue 15): this one holds none.
  const dir = join(work, 'no-captures');
  mkdirSync(dir);
  const r = await cli(['analyze', dir]);
  assert.is(r.code, 2);
  assert.is(r.stderr, `switchover analyze: ${dir} holds no *.pcap or *.pcapng file; give capture files, or a folder of them\n`);
});

test.after(() => rmSync(work, { recursive: true, force: true }));
test.run();
