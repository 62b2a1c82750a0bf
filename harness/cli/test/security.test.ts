// Security properties of a run (issue 9):
//   - QMP sockets, VM logs and run directories are not readable by other users (0600 / 0700),
//     checked with stat on a live run;
//   - no shell strings are built from scenario input: injection is tried through `--set`
//     values, scenario names, scenario files and interface / netns names; each is refused with
//     an error that names the field, or (where free text is allowed) runs without effect, and
//     the marker file never appears; and no module can reach a shell at all;
//   - sudo is used only for the listed commands (privileged() refuses everything else);
//   - traffic never leaves the run's namespaces: while scenarios run, tcpdump in the root
//     netns sees no packet of 192.168.100.0/24 or 192.168.200.0/24.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requirePrivilege } from '../../../fixtures/privilege.js';
import { engineArgs, engineBackend } from '../../vm/engine.js';
import { findScenarios, loadScenarioFile } from '../../scenario/catalogue.js';
import { isRoot, PRIVILEGED_COMMANDS, privileged, resolveTool, runPrivileged } from '../../net/exec.js';
import { InvalidNameError, runNames, validateName } from '../../net/names.js';
import { runScenario } from '../../run/runner.js';
import { applyOverrides, InputError } from '../../scenario/scenario.js';
import { createTopology } from '../../net/topology.js';
import type { Scenario, ScenarioResult, VmBackend, VmHandle, VmSpec } from '../../scenario/types.js';
import { recordingBackend, runLeftovers } from './run-inspect.js';
import { runCli } from './run-cli.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const BIN = join(ROOT, 'bin/switchover.js');
/** A marker only this run uses, plus the conventional /tmp/pwned (checked when it did not exist before). */
const MARKER = join(tmpdir(), `switchover-pwned-${randomBytes(4).toString('hex')}`);
const PWNED = '/tmp/pwned';
const pwnedBefore = existsSync(PWNED);
/** The VMs of every live run here, per run, for the final leftover check. */
const liveRuns: VmHandle[][] = [];

/** `backend` with its launches recorded in liveRuns. */
function recorded(backend: VmBackend): VmBackend {
  const rec = recordingBackend(backend);
  liveRuns.push(rec.launched);
  return rec.backend;
}

function payloads(): string[] {
  return [
    `$(touch ${MARKER})`, `\`touch ${MARKER}\``, `; touch ${MARKER}`, `| touch ${MARKER}`, `&& touch ${MARKER}`,
    `x\ntouch ${MARKER}`, `$(touch ${PWNED})`, `; touch ${PWNED}`, `' ; touch ${MARKER} ; '`, `" ; touch ${MARKER} ; "`,
  ];
}

function assertNoMarker(): void {
  assert.not.ok(existsSync(MARKER), `${MARKER} exists: scenario input reached a shell`);
  if (!pwnedBefore) assert.not.ok(existsSync(PWNED), `${PWNED} exists: scenario input reached a shell`);
}

async function base(): Promise<Scenario> {
  const [s] = await findScenarios(['netpass-bridge-ping']);
  return s!;
}

/** The CLI with an argument array (no shell here either). */
const cli = (args: string[]) => runCli(args);

// ---- sudo ------------------------------------------------------------------------------------

test('privileged() allows exactly the listed commands and refuses every other', () => {
  assert.equal([...PRIVILEGED_COMMANDS].sort(), ['bridge', 'ip', 'kill', 'nft', 'tc', 'tcpdump'], 'the sudo list changed: review it');
  for (const cmd of PRIVILEGED_COMMANDS) {
    const argv = privileged([cmd, '--version']);
    assert.equal(argv, isRoot() ? [cmd, '--version'] : ['sudo', '-n', cmd, '--version']);
  }
  const refused = [[], ['sh', '-c', 'id'], ['bash'], ['sudo', 'ip'], ['/usr/sbin/ip', 'link'], ['ip;id'], ['IP'], ['rm', '-rf', '/'],
    ['node', BIN, 'vm'], ['qemu-system-x86_64'], ['env', 'ip'], ['ping'], ['sysctl'], [' ip'], ['ip ']];
  for (const argv of refused) {
    assert.throws(() => privileged(argv), /refusing to run .* with privilege: only ip, bridge, tc, nft, tcpdump, kill are allowed/,
      `privileged(${JSON.stringify(argv)})`);
  }
});

/** Source files under `dir`, recursively; tests are left out (they spell refused commands on purpose). */
function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'test' || e.name === 'node_modules' ? [] : sources(rel);
    return /\.(ts|js|mjs)$/.test(e.name) && !e.name.endsWith('.d.ts') ? [rel] : [];
  });
}

test('no module can reach a shell: no shell option, no exec/execSync, no sh -c', () => {
  const files = ['harness', 'engine', 'bin', 'fixtures', 'scripts', 'scenarios'].flatMap(sources);
  assert.ok(files.length > 40, `found only ${files.length} source files under ${ROOT}`);
  const forbidden: Array<[RegExp, string]> = [
    [/\bshell\s*:\s*(true|['"`])/, 'a child_process shell option'],
    [/import\s*\{[^}]*\b(exec|execSync)\b[^}]*\}\s*from\s*['"](node:)?child_process['"]/, 'exec/execSync (they run a shell)'],
    [/['"](\/bin\/)?(ba|da)?sh['"]\s*,\s*['"]-c['"]/, 'sh -c'],
  ];
  const hits: string[] = [];
  for (const f of files) {
    const text = readFileSync(join(ROOT, f), 'utf8');
    for (const [re, what] of forbidden) if (re.test(text)) hits.push(`${f}: ${what}`);
  }
  assert.equal(hits, []);
});

// ---- injection through scenario input -------------------------------------------------------

test('--set values with shell metacharacters are refused with an error naming the field', async () => {
  const s = await base();
  const fields = ['mem', 'interval', 'layout', 'transport', 'queues', 'hops', 'capabilities', 'param.downtime-limit',
    'cont-delay', 'netpass', 'name', 'traffic.flows[0].kind', 'migration.local', 'topology.layout'];
  for (const key of fields) {
    for (const p of payloads()) {
      let err: unknown;
      try {
        applyOverrides(s, [`${key}=${p}`]);
      } catch (e) {
        err = e;
      }
      assert.instance(err, InputError, `--set ${key}=${JSON.stringify(p)} was accepted`);
      const msg = (err as InputError).message;
      assert.match(msg, /expected|unknown/, `--set ${key}=${JSON.stringify(p)}: unclear error: ${msg}`);
      assert.ok(msg.includes(`--set ${key}=`), `the error names the setting: ${msg}`);
    }
  }
  // Keys are input too.
  for (const p of payloads()) {
    assert.throws(() => applyOverrides(s, [`${p}=1`]), (e: unknown) => e instanceof InputError, `--set key ${JSON.stringify(p)}`);
  }
  assertNoMarker();
});

test('scenario names with shell metacharacters are refused, by name and in a file, before anything runs', async () => {
  for (const p of payloads()) {
    await findScenarios([`netpass${p}`]).then(
      () => assert.unreachable(`scenario name ${JSON.stringify(p)} was accepted`),
      (e: Error) => assert.match(e.message, /unknown scenario|expected a \.ts, \.js, \.mjs or \.json|cannot read the scenario file/),
    );
  }
  const dir = mkdtempSync(join(tmpdir(), 'switchover-sec-'));
  try {
    for (const [i, p] of payloads().entries()) {
      const file = join(dir, `s${i}.json`);
      writeFileSync(file, JSON.stringify({ name: `x${p}`, description: 'injection through the name' }), { mode: 0o600 });
      await loadScenarioFile(file).then(
        () => assert.unreachable(`a scenario file named ${JSON.stringify(p)} was accepted`),
        (e: Error) => assert.match(e.message, /name: expected a name of lowercase letters, digits and "-"/),
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assertNoMarker();
});

test('interface, netns and run names with metacharacters are refused before any command runs', () => {
  for (const p of [...payloads(), '-x', '--help', 'a b', 'tap0\n', '.', '..', 'a/b', 'x'.repeat(16)]) {
    assert.throws(() => validateName('TAP interface', p), (e: unknown) => e instanceof InvalidNameError, `name ${JSON.stringify(p)}`);
  }
  assert.throws(() => runNames('$(id)'), /invalid run id/);
  const spec: VmSpec = {
    name: 'src', netns: 'so-abcdef-h', runDir: '/tmp/x', tap: { ifname: 'tap0', queues: 1, vhost: false },
    mac: '52:54:00:12:34:56', ip: '192.168.100.2/24', memMB: 64, dirtyRate: 0,
  };
  for (const p of payloads()) {
    assert.throws(() => engineArgs({ ...spec, tap: { ...spec.tap, ifname: `t${p}` } }), /invalid TAP interface name/);
    assert.throws(() => engineArgs({ ...spec, name: `v${p}` }), /invalid VM name/);
  }
  assertNoMarker();
});

if (!requirePrivilege('security tests on a live run (netns, TAP, tcpdump, engine VMs)')) {
  test.skip('live-run security checks: need root or passwordless sudo', () => undefined);
} else {
  test('createTopology refuses a hostile run id before creating anything', async () => {
    await createTopology({ layout: 'bridge', queues: 1, runId: `ab; touch ${MARKER}` }).then(
      () => assert.unreachable('a hostile run id was accepted'),
      (e: Error) => assert.match(e.message, /invalid run id/),
    );
    assertNoMarker();
  });

  test('a run whose free-text field carries shell syntax runs normally and executes nothing', async () => {
    // description is free text by design (one line, no control characters): it must stay data.
    const r = await cli(['run', 'netpass-bridge-ping', '--set', `description=$(touch ${MARKER}); \`touch ${MARKER}\` | touch ${PWNED}`,
      '--set', 'duration=800', '--set', 'migrate-after=200']);
    assert.ok(r.code === 0 || r.code === 1, `exit ${r.code}: ${r.stderr.slice(-2000)}`);
    assertNoMarker();
  });

  test('--set with a hostile value on the command line exits 2 with the field named', async () => {
    const r = await cli(['run', 'netpass-bridge-ping', '--set', `layout=bridge; touch ${MARKER}`]);
    assert.is(r.code, 2, `exit ${r.code}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /--set layout=bridge; touch .*: topology\.layout: expected one of/);
    const named = await cli(['run', `netpass-bridge-ping;touch ${MARKER}`]);
    assert.is(named.code, 2, `exit ${named.code}: ${named.stderr}`);
    assert.match(named.stderr, /unknown scenario|cannot read the scenario file: ENOENT/);
    assertNoMarker();
  });

  test('QMP sockets, VM logs and the run directory are private on a live run (0600 / 0700)', async () => {
    const seen: string[] = [];
    const modes: Array<{ path: string; mode: number; want: number }> = [];
    const checking: VmBackend = {
      name: 'engine',
      probe: () => engineBackend.probe(),
      async launch(spec) {
        const vm = await engineBackend.launch(spec);
        const qmp = join(spec.runDir, `${spec.name}.qmp`);
        assert.ok(lstatSync(qmp).isSocket(), `${qmp} is a socket`);
        modes.push({ path: spec.runDir, mode: statSync(spec.runDir).mode & 0o777, want: 0o700 });
        modes.push({ path: qmp, mode: lstatSync(qmp).mode & 0o777, want: 0o600 });
        modes.push({ path: vm.logPath, mode: statSync(vm.logPath).mode & 0o777, want: 0o600 });
        seen.push(spec.name);
        return vm;
      },
    };
    const [s] = await findScenarios(['netpass-bridge-ping']);
    const r = await runScenario(applyOverrides(s!, ['duration=800', 'migrate-after=200']), { backend: recorded(checking) });
    assert.ok(seen.length >= 2, `VMs launched: ${seen.join(', ')}; verdict ${r.verdict} ${r.reason ?? ''}`);
    for (const m of modes) {
      assert.is((m.mode & 0o077), 0, `${m.path} is mode ${m.mode.toString(8)}: readable or writable by others`);
      assert.is(m.mode, m.want, `${m.path} is mode ${m.mode.toString(8)}, expected ${m.want.toString(8)}`);
    }
  });

  test('traffic never leaves the run namespaces: the root netns sees no guest or client packet', async () => {
    const filter = ['net', '192.168.100.0/24', 'or', 'net', '192.168.200.0/24'];
    const [file, ...args] = privileged(['tcpdump', '-i', 'any', '-n', '-l', '-p', ...filter]);
    const dump = spawn(resolveTool(file!), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    dump.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    dump.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    const exited = new Promise<void>((resolve) => dump.on('close', () => resolve()));
    try {
      for (let i = 0; i < 100 && !/listening on/.test(err); i++) await new Promise((res) => setTimeout(res, 50));
      assert.match(err, /listening on/, `tcpdump in the root netns did not start: ${err}`);
      const results: ScenarioResult[] = [];
      for (const name of ['netpass-bridge-ping', 'baseline-routed-ping']) {
        const [s] = await findScenarios([name]);
        const rec = recordingBackend(engineBackend);
        liveRuns.push(rec.launched);
        const r = await runScenario(applyOverrides(s!, ['duration=1000', 'migrate-after=300']), { backend: rec.backend });
        assert.ok(r.traffic.some((f) => f.sent > 0), `${name}: no traffic was sent (verdict ${r.verdict} ${r.reason ?? ''})`);
        assert.ok(rec.launched.every((v) => /^so-[0-9a-f]{6}-h$/.test(v.spec.netns)), 'VMs ran inside the run netns');
        results.push(r);
      }
      // Let tcpdump print what it may still hold.
      await new Promise((res) => setTimeout(res, 500));
      const lines = out.split('\n').filter(Boolean);
      assert.equal(lines.slice(0, 10), [], `${lines.length} packet(s) of the run networks seen in the root netns`);
      assert.ok(results.every((r) => r.traffic.reduce((n, f) => n + f.received, 0) > 100), 'the runs really exchanged traffic');
    } finally {
      if (dump.exitCode === null) await runPrivileged(['kill', '-TERM', String(dump.pid)], { allowFail: true });
      await exited;
    }
  });

  test('nothing of the live runs above is left behind', async () => {
    assert.ok(liveRuns.length >= 3, `${liveRuns.length} live runs recorded`);
    for (const launched of liveRuns) assert.equal(await runLeftovers(launched), []);
  });
}

test.run();
