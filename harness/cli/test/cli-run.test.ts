// `switchover run` end to end on the engine backend, as a user runs it: real netns, TAPs,
// tcpdump, ping and two engine VMs, judged from the pcaps. Also the CLI's refusals of bad
// input (exit 2, nothing started) and teardown on SIGINT.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { requirePrivilege } from '../../../fixtures/privilege.js';
import type { JsonReport } from '../../report/json.js';

const BIN = new URL('../../../../bin/switchover.js', import.meta.url).pathname;
const privileged = requirePrivilege('switchover run end-to-end tests');
const out = mkdtempSync(join(tmpdir(), 'switchover-cli-'));

function cli(args: string[], timeoutMs = 240_000): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: timeoutMs });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const netnsList = (): string[] => spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout
  .split('\n').map((l) => l.split(' ')[0]!).filter(Boolean);

test('an unknown scenario is refused with exit 2 and a did-you-mean, before any VM starts', () => {
  const r = cli(['run', 'netpass-bridge-pingg']);
  assert.is(r.code, 2);
  assert.match(r.stderr, /unknown scenario "netpass-bridge-pingg"; did you mean "netpass-bridge-ping"\?/);
});

test('a bad --set is refused with exit 2 naming the key', () => {
  const r = cli(['run', 'baseline-bridge-ping', '--set', 'interval=fast']);
  assert.is(r.code, 2);
  assert.match(r.stderr, /interval/);
  assert.match(r.stderr, /"fast"/);
});

test('a bad scenario file is refused with file, field, expected and got', () => {
  const file = join(out, 'bad.json');
  writeFileSync(file, JSON.stringify({ name: 'bad', description: 'x', topology: { layout: 'star' } }));
  const r = cli(['run', file]);
  assert.is(r.code, 2);
  assert.match(r.stderr, /bad\.json/);
  assert.match(r.stderr, /topology\.layout/);
  assert.match(r.stderr, /"star"/);
});

if (privileged) {
  test('netpass and local lose nothing where their baselines lose packets, both layouts; JSON, JUnit and HTML are written', () => {
    const json = join(out, 'results.json');
    const junit = join(out, 'junit.xml');
    const report = join(out, 'report.html');
    const pcaps = join(out, 'pcaps');
    const pairs = [
      ['baseline-bridge-ping', 'netpass-bridge-ping'], ['baseline-routed-ping', 'netpass-routed-ping'],
      ['baseline-bridge-udp', 'netpass-bridge-udp'], ['new-tap-ping', 'local-ping'], ['new-tap-ping', 'local-4-queues'],
    ];
    const names = [...new Set(pairs.flat()), 'local-ping-vhost'];
    const r = cli(['run', ...names, '--json', json, '--junit', junit, '--report', report, '--keep-pcaps', pcaps]);
    const results = (JSON.parse(readFileSync(json, 'utf8')) as JsonReport).results;
    const byName = new Map(results.map((x) => [x.scenario, x]));
    // On a loaded machine a run may not be judgeable: then the harness must say so (exit 2,
    // `error`, naming the bottleneck), never fail or pass it. Any other error is a defect.
    const unjudged = new Set(results.filter((x) => x.verdict === 'error').map((x) => x.scenario));
    for (const x of results) if (x.verdict === 'error') assert.match(x.reason ?? '', /bottleneck/, `${x.scenario}: ${x.reason}`);
    assert.is(r.code, unjudged.size ? 2 : 0, `exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    const base = byName.get('baseline-bridge-ping')!;
    const np = byName.get('netpass-bridge-ping')!;
    for (const x of [base, np]) {
      if (unjudged.has(x.scenario)) continue;
      assert.is(x.verdict, 'pass', `${x.scenario}: ${x.reason}`);
      assert.is(x.backend, 'engine');
      assert.is(x.migration.status, 'completed');
      assert.ok(x.migration.downtimeMs > 0);
      assert.ok(x.migration.transferredBytes > 0);
      assert.ok(x.traffic.length >= 1 && x.traffic[0]!.sent > 100);
      assert.ok(x.pcaps?.every((p) => existsSync(p)), 'kept pcaps exist');
    }
    const lost = (x: typeof base): number => x.traffic.reduce((s, f) => s + f.lost, 0);
    // The same settings, one side with the fix: the difference is the point of the feature.
    for (const [off, on] of pairs) {
      const a = byName.get(off!)!, b = byName.get(on!)!;
      if (unjudged.has(off!) || unjudged.has(on!)) continue;
      assert.is(a.verdict, 'pass', `${off}: ${a.reason}`);
      assert.is(b.verdict, 'pass', `${on}: ${b.reason}`);
      assert.ok(lost(a) > 0, `${off} loses packets`);
      assert.is(lost(b), 0, `${on} loses none`);
    }
    const vhost = byName.get('local-ping-vhost')!;
    assert.is(vhost.verdict, 'unsupported');
    assert.match(vhost.reason!, /vhost/);
    // How many frames hit a 1-5 ms stop window varies (often 1-3, sometimes none); none may drop.
    if (!unjudged.has(np.scenario)) assert.is(np.netpass.dropped, 0, 'netpass dropped nothing');
    assert.ok(np.netpass.forwarded <= np.netpass.cached, 'netpass forwarded only what it cached');
    assert.ok(base.announces.some((a) => a.kind === 'rarp'), 'the destination announced itself');
    assert.match(readFileSync(junit, 'utf8'), /<testcase [^>]*name="netpass-bridge-ping"/);
    assert.match(readFileSync(report, 'utf8'), /netpass-bridge-ping/);
  });

  test('the HTML report of that real run, in Chromium: timeline and lost marks match the JSON', async () => {
    const results = (JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as JsonReport).results;
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      await page.goto(pathToFileURL(join(out, 'report.html')).href);
      for (const r of results) {
        const section = page.locator(`section[data-scenario="${r.scenario}"]`);
        assert.is(await section.getAttribute('data-verdict'), r.verdict);
        if (r.verdict === 'unsupported') continue; // nothing ran: no timeline to draw
        assert.is(await section.locator('svg[data-timeline]').count(), 1);
        assert.is(await section.locator('rect.downtime').count(), 1, `${r.scenario}: downtime marked`);
        assert.ok(await section.locator('.phase').count() >= 4, `${r.scenario}: migration phases drawn`);
        for (const [i, f] of r.traffic.entries()) {
          const lost = await section.locator(`.pkt[data-flow="${i}"][data-state="lost"]`)
            .evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-seq'))));
          assert.equal(lost.sort((a, b) => a - b), [...f.lostSeqs].sort((a, b) => a - b), `${r.scenario} flow ${i}: red marks = lost seqs`);
        }
      }
      const shot = new URL('../../../../out/report-real-run.png', import.meta.url).pathname;
      mkdirSync(dirname(shot), { recursive: true });
      await page.screenshot({ path: shot, fullPage: true });
      assert.ok(existsSync(shot));
    } finally {
      await browser.close();
    }
  });

  test('gating: --shard, --repeat and --baseline; a regression against the baseline exits 1', () => {
    // A baseline saved from the real run above, then doctored to claim baseline-bridge-ping
    // lost nothing: the same scenario now "regresses" (it loses packets by design).
    const saved = join(out, 'baseline.json');
    const s = cli(['baseline', 'save', saved, '--from', join(out, 'results.json')]);
    assert.is(s.code, 0, s.stderr);
    const base = JSON.parse(readFileSync(saved, 'utf8')) as { entries: Array<{ scenario: string; lost: number }> };
    for (const e of base.entries) if (e.scenario === 'baseline-bridge-ping') e.lost = 0;
    writeFileSync(saved, JSON.stringify(base));
    const r = cli(['run', 'baseline-bridge-ping', '--repeat', '2', '--baseline', saved]);
    assert.is(r.code, 1, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /baseline-bridge-ping/);
    assert.match(r.stdout, /2 runs, \d+ passed \(\d+%\)/, 'repeat statistics are printed');
    assert.match(r.stdout, /loss|lost/i, 'the regression names the loss');
    // --shard 2/21 of the whole catalogue is exactly one scenario, always the same one.
    const list = cli(['list']).stdout.trim().split('\n').map((l) => l.split(/\s+/)[0]!).sort();
    const shard = cli(['run', '--shard', `2/${list.length}`, '--json', join(out, 'shard.json'), '--set', 'traffic.durationMs=600']);
    const names = (JSON.parse(readFileSync(join(out, 'shard.json'), 'utf8')) as JsonReport).results.map((x) => x.scenario);
    assert.equal(names, [list[1]], shard.stderr);
  });

  test('the QEMU backend: a real guest migrates under ping; netpass and local are unsupported on 7.2, naming what is missing', () => {
    const json = join(out, 'qemu.json');
    // An idle guest: QEMU 7.2 under TCG corrupts a guest that dirties its RAM while migrating
    // (the destination's kernel panics within seconds in about half the runs; 10.0 does not),
    // which the harness reports as a failed run, not what this test is about.
    const r = cli(['run', 'baseline-bridge-ping', 'netpass-bridge-ping', 'local-ping', '--backend', 'qemu', '--set', 'dirty-rate=0', '--json', json]);
    assert.is(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const results = (JSON.parse(readFileSync(json, 'utf8')) as JsonReport).results;
    const [base, np, local] = ['baseline-bridge-ping', 'netpass-bridge-ping', 'local-ping'].map((n) => results.find((x) => x.scenario === n)!);
    assert.is(base!.verdict, 'pass', base!.reason);
    assert.is(base!.migration.status, 'completed');
    assert.ok(base!.accelerator === 'tcg' || base!.accelerator === 'kvm');
    assert.ok(base!.traffic[0]!.sent > 100 && base!.traffic[0]!.received > 100, 'the pcap holds the real guest\'s echo replies');
    assert.is(np!.verdict, 'unsupported');
    assert.match(np!.reason!, /netpass/);
    assert.is(local!.verdict, 'unsupported');
    assert.match(local!.reason!, /local|incoming-fds|UDP/);
  });

  test('SIGINT mid-run tears everything down: no netns, VM, tcpdump or run dir is left', async () => {
    const child = spawn(process.execPath, [BIN, 'run', 'ping-pong-10'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const deadline = Date.now() + 60_000;
    while (!/migrating/.test(err) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.match(err, /migrating/, 'the run reached migration');
    child.kill('SIGINT');
    const code = await exited;
    assert.is(code, 130);
    const runId = /run ([0-9a-f]{6})/.exec(err)?.[1];
    assert.ok(runId, 'the run printed its id');
    assert.equal(netnsList().filter((n) => n.includes(runId!)), [], 'no netns of the run is left');
    assert.not.ok(existsSync(join(tmpdir(), `switchover-${runId}`)), 'the run dir is removed');
    const procs = spawnSync('pgrep', ['-af', 'switchover.js vm|tcpdump'], { encoding: 'utf8' }).stdout
      .split('\n').filter((l) => l && !l.includes('pgrep'));
    assert.equal(procs.filter((l) => l.includes(runId!)), []);
  });

  test('`run ... | head -1`: with stdout and stderr closed early the run still finishes, writes its JSON and tears down', async () => {
    // Both ends go to one pipe that is closed after its first line, as `2>&1 | head -1` does.
    // It used to crash on EPIPE, and its crash report on the closed stderr crashed again, for ever.
    const json = join(out, 'closed-pipe.json');
    const child = spawn(process.execPath, [BIN, 'run', 'netpass-bridge-ping', '--set', 'duration=600', '--json', json], { stdio: ['ignore', 'pipe', 'pipe'] });
    let first = '';
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await new Promise<void>((resolve) => child.stderr.once('data', (d: Buffer) => { first = d.toString(); resolve(); }));
    child.stdout.destroy();
    child.stderr.destroy();
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    const code = await exited;
    clearTimeout(timer);
    const runId = /run ([0-9a-f]{6})/.exec(first)?.[1];
    assert.is(code, 0, 'exit code of a passing run');
    const report = JSON.parse(readFileSync(json, 'utf8')) as JsonReport;
    assert.is(report.results[0]!.verdict, 'pass');
    assert.equal(netnsList().filter((n) => /^so-/.test(n) && (!runId || n.includes(runId))), [], 'no netns of the run is left');
  });
}

test.after(() => rmSync(out, { recursive: true, force: true }));
test.run();
